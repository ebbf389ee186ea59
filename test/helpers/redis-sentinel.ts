import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from './redis-server.js'

const run = promisify(execFile)

export const SENTINEL_MASTER = 'realtime'
const CLI_TIMEOUT_MS = 1000
const DOWN_AFTER_MS = 500
const FAILOVER_TIMEOUT_MS = 3000

/**
 * Runs a server until its stdin (a pipe from this process) closes, then kills
 * it: the pipe closes on `stop()` and when this process dies in any way
 * (SIGKILL included), so no server outlives its test.
 */
const GUARDED = 'redis-server "$@" & server=$!; cat > /dev/null; kill -9 $server; wait $server'

/**
 * A primary, one replica and one Sentinel (quorum 1) of the test's own, on
 * free loopback ports, quick to fail over (`down-after-milliseconds` 500), so
 * a test can kill or freeze the primary without touching the shared Redis.
 */
export class OwnRedisSentinel {
  readonly sentinelPort: number
  /** Data ports: [the first primary, the first replica]. */
  readonly dataPorts: [number, number]
  readonly #dir: string
  readonly #guards: ChildProcess[] = []

  private constructor (sentinelPort: number, dataPorts: [number, number], dir: string) {
    this.sentinelPort = sentinelPort
    this.dataPorts = dataPorts
    this.#dir = dir
  }

  /** `sentinels` and `name` for an ioredis client. */
  get sentinelOptions (): { sentinels: Array<{ host: string, port: number }>, name: string } {
    return { sentinels: [{ host: '127.0.0.1', port: this.sentinelPort }], name: SENTINEL_MASTER }
  }

  static async start (): Promise<OwnRedisSentinel> {
    const dir = await mkdtemp(join(tmpdir(), 'rt-redis-sentinel-'))
    const ports: number[] = []
    while (ports.length < 3) {
      const port = await freePort()
      if (!ports.includes(port)) ports.push(port)
    }
    const [primary, replica, sentinel] = ports
    const pair = new OwnRedisSentinel(sentinel, [primary, replica], dir)
    try {
      const data = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
      pair.#spawn(['--port', String(primary), ...data])
      pair.#spawn(['--port', String(replica), '--replicaof', '127.0.0.1', String(primary), ...data])
      await pair.#waitFor(replica, ['INFO', 'replication'], (reply) => reply.includes('master_link_status:up'), 'to replicate')
      const config = join(dir, 'sentinel.conf')
      await writeFile(config, [
        `port ${sentinel}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary} 1`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${SENTINEL_MASTER} ${FAILOVER_TIMEOUT_MS}`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`
      ].join('\n') + '\n')
      pair.#spawn([config, '--sentinel'])
      await pair.#waitFor(sentinel, ['SENTINEL', 'replicas', SENTINEL_MASTER], (reply) => reply.includes(String(replica)), 'to know the replica')
      return pair
    } catch (error) {
      await pair.stop()
      throw error
    }
  }

  /** The port Sentinel names as the primary now. */
  async primaryPort (): Promise<number> {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(this.sentinelPort), 'SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER], { timeout: CLI_TIMEOUT_MS })
    return Number(stdout.trim().split('\n')[1])
  }

  /** Resolves once Sentinel names another primary than `port` and that one answers as a master. */
  async waitForFailoverFrom (port: number, ms = 15_000): Promise<number> {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      try {
        const now = await this.primaryPort()
        if (now !== port) {
          const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(now), 'ROLE'], { timeout: CLI_TIMEOUT_MS })
          if (stdout.startsWith('master')) return now
        }
      } catch {}
      await sleep(50)
    }
    throw new Error(`Sentinel did not fail over from ${port} within ${ms} ms`)
  }

  /** Sends `signal` to the redis-server on `port` (SIGKILL, SIGSTOP, SIGCONT). */
  async signal (port: number, signal: NodeJS.Signals): Promise<void> {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'INFO', 'server'], { timeout: CLI_TIMEOUT_MS })
    const pid = Number(/process_id:(\d+)/.exec(stdout)?.[1])
    process.kill(pid, signal)
  }

  /** Kills every server and removes the directory. */
  async stop (): Promise<void> {
    await Promise.all(this.#guards.map(async (guard) => {
      if (guard.exitCode !== null || guard.signalCode !== null) return
      const exited = once(guard, 'exit')
      guard.stdin?.end()
      await exited
    }))
    await rm(this.#dir, { recursive: true, force: true })
  }

  #spawn (args: string[]): void {
    const guard = spawn('sh', ['-c', GUARDED, 'sh', ...args], { stdio: ['pipe', 'ignore', 'ignore'] })
    // A server that cannot start shows up as the bounded wait failing.
    guard.on('error', () => {})
    guard.stdin?.on('error', () => {})
    this.#guards.push(guard)
  }

  async #waitFor (port: number, command: string[], accept: (reply: string) => boolean, what: string): Promise<void> {
    let last = ''
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: CLI_TIMEOUT_MS })
        if (accept(stdout)) return
        last = stdout
      } catch (error) {
        last = (error as Error).message
      }
      await sleep(50)
    }
    throw new Error(`timed out waiting for redis on ${port} ${what}: ${last.trim()}`)
  }
}
