// The redis-server (and Sentinel) processes of one test's own Redis
// deployment (test/helpers/redis-cluster.ts, redis-sentinel.ts): spawned so
// that none outlives its test, waited for with bounded retries, signalled by
// port, stopped together with their directory.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

export const run = promisify(execFile)

const ATTEMPT_DELAY_MS = 50
const STOP_TIMEOUT_MS = 5000

/**
 * Runs redis-server until its stdin (a pipe from this process) closes, then
 * kills it and removes the deployment's directory. The pipe closes when
 * `stop()` ends it and also when this process dies in any way, SIGKILL
 * included (tap kills a test file that times out), so no server outlives its test.
 */
const GUARDED_SERVER = 'redis-server "$@" & server=$!; cat > /dev/null; kill -9 $server; wait $server; rm -rf "$REDIS_DIR"'

export class RedisProcesses {
  /** A fresh temporary directory, for the servers' state and config files. */
  readonly dir: string
  readonly #cliTimeoutMs: number
  readonly #guards: ChildProcess[] = []

  private constructor (dir: string, cliTimeoutMs: number) {
    this.dir = dir
    this.#cliTimeoutMs = cliTimeoutMs
  }

  /** `redis-cli` calls time out after `cliTimeoutMs`. */
  static async create (name: string, { cliTimeoutMs = 2000 } = {}): Promise<RedisProcesses> {
    return new RedisProcesses(await mkdtemp(join(tmpdir(), `rt-${name}-`)), cliTimeoutMs)
  }

  /** Starts `redis-server <args>`, guarded; one that cannot start shows up as `waitFor` failing. */
  spawn (args: string[]): void {
    const guard = spawn('sh', ['-c', GUARDED_SERVER, 'sh', ...args], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, REDIS_DIR: this.dir } })
    guard.on('error', () => {})
    guard.stdin?.on('error', () => {})
    this.#guards.push(guard)
  }

  /** `redis-cli -p <port> <command>`'s output. */
  async cli (port: number, command: string[]): Promise<string> {
    return (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: this.#cliTimeoutMs })).stdout
  }

  /** Retries `command` on `port` until `accept` takes its reply, at most `attempts` times. */
  async waitFor (port: number, command: string[], accept: (reply: string) => boolean, what: string, attempts = 200): Promise<void> {
    let last = ''
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        const reply = await this.cli(port, command)
        if (accept(reply)) return
        last = reply
      } catch (error) {
        last = (error as Error).message
      }
      await sleep(ATTEMPT_DELAY_MS)
    }
    throw new Error(`timed out waiting for redis-server on ${port} ${what}: ${last.trim()}`)
  }

  /** Sends `signal` (SIGKILL, SIGSTOP, SIGCONT) to the server on `port`. */
  async signal (port: number, signal: NodeJS.Signals): Promise<void> {
    process.kill(await this.pid(port), signal)
  }

  /** The process id of the server on `port`, asked of the server itself (so only while it answers). */
  async pid (port: number): Promise<number> {
    return Number(/process_id:(\d+)/.exec(await this.cli(port, ['INFO', 'server']))?.[1])
  }

  /** Kills every server and waits until they and the directory are gone. */
  async stop (): Promise<void> {
    await Promise.all(this.#guards.map(async (guard) => {
      if (guard.exitCode !== null || guard.signalCode !== null) return
      const exited = once(guard, 'exit')
      guard.stdin?.end()
      const timer = setTimeout(() => guard.emit('error', new Error(`redis-server guard ${String(guard.pid)} did not exit`)), STOP_TIMEOUT_MS)
      try {
        await exited
      } finally {
        clearTimeout(timer)
      }
    }))
    await rm(this.dir, { recursive: true, force: true })
  }
}
