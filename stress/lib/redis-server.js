// A redis-server of the run's own on a free loopback port (the machine's
// shared Redis is never stopped or flushed): killed, restarted and frozen by
// the scenarios, killed when the orchestrator exits.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
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

  constructor (port) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
  }

  static async start () {
    const redis = new OwnRedis(await freePort())
    await redis.restart()
    return redis
  }

  /** (Re)starts on the same port, empty (no persistence), and waits until it accepts connections. */
  async restart () {
    const server = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
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
