// A redis-server of the benchmark's own, for the history scenarios: on a free
// loopback port, no persistence, pinned to the load generator's core (core 1),
// so its INFO cpu counts only this measurement's commands and the server
// nodes keep core 0 to themselves. Killed with the run's other children.
import { createServer } from 'node:net'
import { execFileSync } from 'node:child_process'
import { Redis } from 'ioredis'
import { spawnPinned } from './children.js'
import { sleep } from './rpc.js'

let available
let deathSignal

/** `setpriv --pdeathsig KILL` where it exists: the kernel kills redis-server if the orchestrator dies, even by SIGKILL. */
function withDeathSignal (command, args) {
  if (deathSignal === undefined) {
    try {
      execFileSync('setpriv', ['--version'], { stdio: 'ignore' })
      deathSignal = true
    } catch {
      deathSignal = false
    }
  }
  return deathSignal ? ['setpriv', ['--pdeathsig', 'KILL', command, ...args]] : [command, args]
}

/** Whether `redis-server` can be started here (checked once). */
export function canStartRedis () {
  if (available === undefined) {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
      available = true
    } catch {
      available = false
    }
  }
  return available
}

export class OwnRedis {
  /** Starts one and resolves once it answers PING (a port taken meanwhile: tries another). */
  static async start () {
    let lastError
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort()
      const redis = new OwnRedis(port)
      try {
        await redis.#ready()
        return redis
      } catch (error) {
        lastError = error
        await redis.stop()
      }
    }
    throw lastError
  }

  #process
  #exited
  #stderr = ''

  constructor (port) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.#process = spawnPinned(...withDeathSignal('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']), { core: 1 })
    this.#process.stderr.on('data', (chunk) => { this.#stderr = (this.#stderr + chunk).slice(-2000) })
    this.#exited = new Promise((resolve) => this.#process.on('exit', resolve))
  }

  async #ready (timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.#process.exitCode !== null) throw new Error(`redis-server exited (${this.#process.exitCode}): ${this.#stderr.trim()}`)
      const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null })
      client.on('error', () => {}) // refused until it listens: the loop tries again
      try {
        await client.connect()
        if (await client.ping() === 'PONG') return
      } catch {
      } finally {
        client.disconnect()
      }
      await sleep(50)
    }
    throw new Error(`redis-server on port ${this.port} did not answer within ${timeoutMs} ms`)
  }

  /** used_cpu_sys + used_cpu_user so far, in seconds. */
  async cpuSeconds () {
    const client = new Redis(this.url, { maxRetriesPerRequest: 1 })
    try {
      return await redisCpuSeconds(client)
    } finally {
      client.disconnect()
    }
  }

  async stop () {
    if (this.#process.exitCode === null && this.#process.signalCode === null) this.#process.kill('SIGKILL')
    await this.#exited
  }
}

/** used_cpu_sys + used_cpu_user of the Redis server `client` talks to. */
export async function redisCpuSeconds (client) {
  const info = await client.info('cpu')
  const field = (name) => Number(info.match(new RegExp(`^${name}:([\\d.]+)`, 'm'))?.[1] ?? NaN)
  return field('used_cpu_sys') + field('used_cpu_user')
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}
