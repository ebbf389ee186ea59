// Parent side: starts pinned child processes, talks to them over IPC, and
// makes sure none survives the orchestrator.
import { spawn, execFileSync } from 'node:child_process'

const live = new Set()
let pinning
// $1: the limit wanted; the soft limit is raised to it, or to the hard limit when that is lower (never lowered).
const RAISE_FILE_LIMIT = 'want=$1; shift; hard=$(ulimit -Hn); if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi; [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ] && ulimit -n "$want"; exec "$@"'

/** Whether `taskset` can pin processes here (checked once). */
export function canPin () {
  if (pinning === undefined) {
    try {
      execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
      pinning = true
    } catch {
      pinning = false
    }
  }
  return pinning
}

/**
 * A Node child running `script` with --expose-gc, pinned to `core` when
 * taskset works. `runtime`: another JavaScript runtime's executable (Bun)
 * runs `script` instead, without Node's flags; it speaks the same IPC.
 * `fileLimit`: the child's open-file limit is raised to it first (or to the
 * hard limit, if that is lower). `request()` sends a command and waits for
 * its answer, never longer than `timeoutMs`.
 */
export class Child {
  #nextId = 1
  #pending = new Map()
  #ready
  #exited

  constructor (script, args, { core, name, nodeArgs: extraNodeArgs = [], runtime, fileLimit }) {
    this.name = name
    const runtimeArgs = runtime === undefined ? ['--expose-gc', ...extraNodeArgs, script, ...args] : [script, ...args]
    let [command, argv] = canPin() && core !== undefined
      ? ['taskset', ['-c', String(core), runtime ?? process.execPath, ...runtimeArgs]]
      : [runtime ?? process.execPath, runtimeArgs]
    // `ulimit -n` in a shell that then execs the child (same pid): no helper process stays behind.
    if (fileLimit !== undefined) [command, argv] = ['sh', ['-c', RAISE_FILE_LIMIT, 'sh', String(fileLimit), command, ...argv]]
    this.process = spawn(command, argv, { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] })
    live.add(this.process)
    this.#ready = new Promise((resolve, reject) => {
      this.process.on('message', (message) => {
        if (message?.type === 'ready') return resolve(message)
        const pending = this.#pending.get(message?.id)
        if (pending === undefined) return
        this.#pending.delete(message.id)
        clearTimeout(pending.timer)
        if (message.error !== undefined) pending.reject(new Error(`${this.name}: ${message.error}`))
        else pending.resolve(message.result)
      })
      this.#exited = new Promise((resolve) => {
        this.process.on('exit', (code, signal) => {
          live.delete(this.process)
          const error = new Error(`${this.name} exited (${signal ?? code})`)
          reject(error)
          for (const pending of this.#pending.values()) {
            clearTimeout(pending.timer)
            pending.reject(error)
          }
          this.#pending.clear()
          resolve()
        })
      })
    })
    this.#ready.catch(() => {})
  }

  /** Resolves with the child's `ready` message (its port, …). */
  ready (timeoutMs = 30_000) {
    return withTimeout(this.#ready, timeoutMs, `${this.name} did not start`)
  }

  request (cmd, args = {}, timeoutMs = 60_000) {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name}: "${cmd}" timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve, reject, timer })
      this.process.send({ id, cmd, ...args })
    })
  }

  /** Asks the child to shut down, then kills it if it has not exited in time. */
  async stop (timeoutMs = 10_000) {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return
    this.request('shutdown', {}, timeoutMs).catch(() => {})
    const killer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs)
    await this.#exited
    clearTimeout(killer)
  }

  kill () {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGKILL')
    return this.#exited
  }
}

/**
 * Spawns a plain (non-Node) process pinned to `core` when taskset works, and
 * tracks it like the Node children, so `killAll` ends it too.
 */
export function spawnPinned (command, args, { core } = {}) {
  const [file, argv] = canPin() && core !== undefined ? ['taskset', ['-c', String(core), command, ...args]] : [command, args]
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] })
  live.add(child)
  child.on('exit', () => live.delete(child))
  return child
}

/** Kills every child still running (on exit, on a signal, on a crash). */
export function killAll () {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

export function withTimeout (promise, ms, message) {
  let timer
  const timeout = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${message} (${ms} ms)`)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
