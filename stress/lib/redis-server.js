// A redis-server of the run's own on a free loopback port (the machine's
// shared Redis is never stopped or flushed): killed, restarted and frozen by
// the scenarios, killed when the orchestrator exits.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sleep } from '../../bench/lib/rpc.js'

const live = new Set()

export async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

export class OwnRedis {
  #process

  constructor (port, dir) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.dir = dir
  }

  /**
   * Without `persist`, nothing is kept on disk (every restart comes back
   * empty); with it, every write is fsynced to an append-only file in a
   * temporary directory, so a SIGKILLed server comes back with its data.
   */
  static async start ({ persist = false } = {}) {
    const redis = new OwnRedis(await freePort(), persist ? mkdtempSync(join(tmpdir(), 'stress-redis-')) : undefined)
    await redis.restart()
    return redis
  }

  /** (Re)starts on the same port, with its data unless `empty`, and waits until it accepts connections. */
  async restart ({ empty = false } = {}) {
    if (empty && this.dir !== undefined) rmSync(join(this.dir, 'appendonlydir'), { recursive: true, force: true })
    const persistence = this.dir === undefined
      ? ['--appendonly', 'no']
      : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir]
    const server = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' })
    this.#process = server
    live.add(server)
    // If the orchestrator dies without running its exit handlers (SIGKILL), its end of this pipe closes and the watchdog kills the server.
    const watchdog = spawn('sh', ['-c', 'cat > /dev/null; kill -CONT "$1"; kill -9 "$1"', 'sh', String(server.pid)], { stdio: ['pipe', 'ignore', 'ignore'] })
    watchdog.on('error', () => {})
    watchdog.stdin.on('error', () => {})
    server.once('exit', () => {
      live.delete(server)
      watchdog.kill('SIGKILL')
    })
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await answers(this.port)) return
      await sleep(50)
    }
    throw new Error(`redis-server on ${this.port} did not start`)
  }

  freeze () { this.#process?.kill('SIGSTOP') }
  thaw () { this.#process?.kill('SIGCONT') }

  async kill () {
    const child = this.#process
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await once(child, 'exit')
  }

  /** Kills it and removes its files. */
  async destroy () {
    await this.kill()
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Kills every redis-server this run started (on exit, on a signal). */
export function killRedisServers () {
  for (const child of live) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
  live.clear()
}

function answers (port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}
