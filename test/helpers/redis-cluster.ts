import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisProcesses, run } from './redis-processes.js'
import { freePorts } from './redis-server.js'

const CREATE_TIMEOUT_MS = 20_000

export interface OwnRedisClusterOptions {
  /** Replicas per master (default 0). */
  replicas?: number
  /** `cluster-node-timeout`: how soon a dead master's replica is promoted (default 2000). */
  nodeTimeoutMs?: number
}

/**
 * A Redis Cluster of three masters of the test's own (with `replicas` each, for
 * failover tests), each on a free loopback port with its state in a fresh
 * temporary directory, so a test can use sharded pub/sub without touching the
 * machine's shared Redis.
 */
export class OwnRedisCluster {
  readonly ports: number[]
  readonly #processes: RedisProcesses

  private constructor (ports: number[], processes: RedisProcesses) {
    this.ports = ports
    this.#processes = processes
  }

  /** Starting nodes for an ioredis `Cluster`. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }))
  }

  /** Starts the servers, joins them with `redis-cli --cluster create` and waits for `cluster_state:ok` (and every replica linked) on each. */
  static async start ({ replicas = 0, nodeTimeoutMs = 2000 }: OwnRedisClusterOptions = {}): Promise<OwnRedisCluster> {
    const processes = await RedisProcesses.create('redis-cluster', { cliTimeoutMs: replicas === 0 ? 2000 : 1000 })
    const ports = await freePorts(3 * (1 + replicas))
    const cluster = new OwnRedisCluster(ports, processes)
    try {
      for (const port of ports) {
        processes.spawn([
          '--port', String(port),
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(processes.dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          '--save', '',
          '--appendonly', 'no',
          '--bind', '127.0.0.1',
          '--dir', processes.dir
        ])
      }
      for (const port of ports) await processes.waitFor(port, ['PING'], (reply) => reply.trim() === 'PONG', 'to accept connections')
      await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: CREATE_TIMEOUT_MS })
      for (const port of ports) await processes.waitFor(port, ['CLUSTER', 'INFO'], (reply) => reply.includes('cluster_state:ok'), 'to report cluster_state:ok')
      // Every replica linked to its master, so that it can be promoted.
      if (replicas > 0) {
        for (const port of ports) await processes.waitFor(port, ['INFO', 'replication'], (reply) => reply.includes('role:master') || reply.includes('master_link_status:up'), 'to be linked to its master')
      }
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  /** The port of the master serving `key`'s slot now. */
  async masterOf (key: string): Promise<number> {
    const slot = Number(await this.#processes.cli(this.ports[0], ['CLUSTER', 'KEYSLOT', key]))
    for (const port of this.ports) {
      try {
        // redis-cli prints each range as: start, end, master ip, master port, master id, then replicas.
        const lines = (await this.#processes.cli(port, ['CLUSTER', 'SLOTS'])).trim().split('\n')
        for (let index = 0; index + 3 < lines.length; index++) {
          const [start, end] = [Number(lines[index]), Number(lines[index + 1])]
          if (lines[index + 2] === '127.0.0.1' && start <= slot && slot <= end && Number.isInteger(start) && Number.isInteger(end)) return Number(lines[index + 3])
        }
      } catch {}
    }
    throw new Error(`no master serves ${key}`)
  }

  /** The ports of the nodes that are replicas now (killing one leaves every slot served: no failover). */
  async replicas (): Promise<number[]> {
    const replicas: number[] = []
    for (const port of this.ports) {
      // ROLE's first line: master, slave or sentinel.
      if ((await this.#processes.cli(port, ['ROLE'])).startsWith('slave')) replicas.push(port)
    }
    return replicas
  }

  /** Waits until a live node other than `dead` serves `key`'s slot and the cluster is ok again; returns its port. */
  async waitForPromotion (key: string, dead: number, ms = 15_000): Promise<number> {
    const deadline = Date.now() + ms
    const alive = this.ports.filter((port) => port !== dead)
    while (Date.now() < deadline) {
      try {
        const info = await this.#processes.cli(alive[0], ['CLUSTER', 'INFO'])
        const master = await this.masterOf(key)
        if (info.includes('cluster_state:ok') && master !== dead) return master
      } catch {}
      await sleep(50)
    }
    throw new Error(`no replica took over ${key} from ${dead} within ${ms} ms`)
  }

  /** Sends `signal` (SIGKILL, SIGSTOP, SIGCONT) to the server on `port`. */
  async signal (port: number, signal: NodeJS.Signals): Promise<void> {
    await this.#processes.signal(port, signal)
  }

  /** The process id of the server on `port` (ask before stopping it: a stopped server cannot say). */
  async pid (port: number): Promise<number> {
    return await this.#processes.pid(port)
  }

  /** Kills the servers and waits until they and their directory are gone. */
  async stop (): Promise<void> {
    await this.#processes.stop()
  }
}
