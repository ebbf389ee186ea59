import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisProcesses } from './redis-processes.js'
import { freePorts } from './redis-server.js'

const SENTINEL_MASTER = 'realtime'
const DOWN_AFTER_MS = 500
const FAILOVER_TIMEOUT_MS = 3000

/**
 * A primary, one replica and one Sentinel (quorum 1) of the test's own, on
 * free loopback ports, quick to fail over (`down-after-milliseconds` 500), so
 * a test can kill or freeze the primary without touching the shared Redis.
 */
export class OwnRedisSentinel {
  readonly sentinelPort: number
  readonly #processes: RedisProcesses

  private constructor (sentinelPort: number, processes: RedisProcesses) {
    this.sentinelPort = sentinelPort
    this.#processes = processes
  }

  /** `sentinels` and `name` for an ioredis client. */
  get sentinelOptions (): { sentinels: Array<{ host: string, port: number }>, name: string } {
    return { sentinels: [{ host: '127.0.0.1', port: this.sentinelPort }], name: SENTINEL_MASTER }
  }

  static async start (): Promise<OwnRedisSentinel> {
    // Short: a cli call to a frozen server must not hold up the waits.
    const processes = await RedisProcesses.create('redis-sentinel', { cliTimeoutMs: 1000 })
    const dir = processes.dir
    const [primary, replica, sentinel] = await freePorts(3)
    const pair = new OwnRedisSentinel(sentinel, processes)
    try {
      const data = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
      processes.spawn(['--port', String(primary), ...data])
      processes.spawn(['--port', String(replica), '--replicaof', '127.0.0.1', String(primary), ...data])
      await processes.waitFor(replica, ['INFO', 'replication'], (reply) => reply.includes('master_link_status:up'), 'to replicate')
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
      processes.spawn([config, '--sentinel'])
      await processes.waitFor(sentinel, ['SENTINEL', 'replicas', SENTINEL_MASTER], (reply) => reply.includes(String(replica)), 'to know the replica')
      return pair
    } catch (error) {
      await pair.stop()
      throw error
    }
  }

  /** The port Sentinel names as the primary now. */
  async primaryPort (): Promise<number> {
    const reply = await this.#processes.cli(this.sentinelPort, ['SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER])
    return Number(reply.trim().split('\n')[1])
  }

  /** Resolves once Sentinel names another primary than `port` and that one answers as a master. */
  async waitForFailoverFrom (port: number, ms = 15_000): Promise<number> {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      try {
        const now = await this.primaryPort()
        if (now !== port) {
          if ((await this.#processes.cli(now, ['ROLE'])).startsWith('master')) return now
        }
      } catch {}
      await sleep(50)
    }
    throw new Error(`Sentinel did not fail over from ${port} within ${ms} ms`)
  }

  /** Sends `signal` (SIGKILL, SIGSTOP, SIGCONT) to the redis-server on `port`. */
  async signal (port: number, signal: NodeJS.Signals): Promise<void> {
    await this.#processes.signal(port, signal)
  }

  /** Kills every server and removes the directory. */
  async stop (): Promise<void> {
    await this.#processes.stop()
  }
}
