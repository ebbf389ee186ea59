import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { Redis } from 'ioredis'

/** A free loopback TCP port. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** `count` distinct free loopback TCP ports (freePort releases each at once: the same one may come twice). */
export async function freePorts (count: number): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < count) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  return ports
}

/**
 * A redis-server of the test's own, on a free port, that the test may freeze
 * (SIGSTOP), thaw and kill without touching the machine's shared Redis.
 */
export class OwnRedis {
  readonly port: number
  #process: ChildProcess | undefined

  private constructor (port: number) {
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  static async start (port?: number): Promise<OwnRedis> {
    const redis = new OwnRedis(port ?? await freePort())
    await redis.restart()
    return redis
  }

  /** (Re)starts the server on the same port and waits until it accepts connections. */
  async restart (): Promise<void> {
    this.#process = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await this.#answers()) return
      await sleep(50)
    }
    throw new Error(`redis-server on ${this.port} did not start`)
  }

  freeze (): void {
    this.#process?.kill('SIGSTOP')
  }

  thaw (): void {
    this.#process?.kill('SIGCONT')
  }

  async kill (): Promise<void> {
    const child = this.#process
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await once(child, 'exit')
  }

  async #answers (): Promise<boolean> {
    const { connect } = await import('node:net')
    return await new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
  }
}

/** A connected client of `url` without an offline queue: a command while Redis is down fails at once. Disconnected at teardown. */
export async function failFastClient (t: Test, url: string): Promise<Redis> {
  const connection = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  t.teardown(() => connection.disconnect())
  await once(connection, 'ready')
  return connection
}

/**
 * How many times the servers ran each command since the last call, summed
 * (`INFO commandstats`, reset after reading; the INFO and CONFIG of this call
 * left out). The counts include the commands scripts ran.
 */
export async function commandCounts (servers: Redis | Redis[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const server of Array.isArray(servers) ? servers : [servers]) {
    const info = await server.info('commandstats')
    await server.config('RESETSTAT')
    for (const [, name, calls] of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) counts[name as string] = (counts[name as string] ?? 0) + Number(calls)
  }
  delete counts.info
  delete counts.config
  return counts
}
