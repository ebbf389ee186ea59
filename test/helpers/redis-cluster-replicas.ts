import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from './redis-server.js'

const run = promisify(execFile)
const CLI_TIMEOUT_MS = 1000
const NODE_TIMEOUT_MS = 1000

/** As in redis-cluster.ts: the server dies with the pipe from this process, however this process ends. */
const GUARDED = 'redis-server "$@" & server=$!; cat > /dev/null; kill -9 $server; wait $server'

/**
 * A Redis Cluster of three masters, each with one replica, of the test's own
 * (cluster-node-timeout 1 s, so a dead master's replica is promoted within a
 * few seconds). For failover tests; test/helpers/redis-cluster.ts is the
 * cheaper one without replicas.
 */
export class OwnRedisClusterWithReplicas {
  readonly ports: number[]
  readonly #dir: string
  readonly #guards: ChildProcess[] = []

  private constructor (ports: number[], dir: string) {
    this.ports = ports
    this.#dir = dir
  }

  get startupNodes (): Array<{ host: string, port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }))
  }

  static async start (): Promise<OwnRedisClusterWithReplicas> {
    const dir = await mkdtemp(join(tmpdir(), 'rt-redis-cluster-replicas-'))
    const ports: number[] = []
    while (ports.length < 6) {
      const port = await freePort()
      if (!ports.includes(port)) ports.push(port)
    }
    const cluster = new OwnRedisClusterWithReplicas(ports, dir)
    try {
      for (const port of ports) {
        cluster.#spawn(['--port', String(port), '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(NODE_TIMEOUT_MS), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--dir', dir])
      }
      for (const port of ports) await cluster.#waitFor(port, ['PING'], (reply) => reply.trim() === 'PONG')
      await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 20_000 })
      for (const port of ports) await cluster.#waitFor(port, ['CLUSTER', 'INFO'], (reply) => reply.includes('cluster_state:ok'))
      // Every replica linked to its master, so that it can be promoted.
      for (const port of ports) {
        await cluster.#waitFor(port, ['INFO', 'replication'], (reply) => reply.includes('role:master') || reply.includes('master_link_status:up'))
      }
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  /** The port of the master serving `key`'s slot now. */
  async masterOf (key: string): Promise<number> {
    const { stdout: slot } = await run('redis-cli', ['-p', String(this.ports[0]), 'CLUSTER', 'KEYSLOT', key], { timeout: CLI_TIMEOUT_MS })
    for (const port of this.ports) {
      try {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'CLUSTER', 'SLOTS'], { timeout: CLI_TIMEOUT_MS })
        // redis-cli prints each range as: start, end, master ip, master port, master id, then replicas.
        const lines = stdout.trim().split('\n')
        for (let index = 0; index + 3 < lines.length; index++) {
          const [start, end] = [Number(lines[index]), Number(lines[index + 1])]
          if (lines[index + 2] === '127.0.0.1' && start <= Number(slot) && Number(slot) <= end && Number.isInteger(start) && Number.isInteger(end)) return Number(lines[index + 3])
        }
      } catch {}
    }
    throw new Error(`no master serves ${key}`)
  }

  /** Waits until a live node other than `dead` serves `key`'s slot and the cluster is ok again; returns its port. */
  async waitForPromotion (key: string, dead: number, ms = 15_000): Promise<number> {
    const deadline = Date.now() + ms
    const alive = this.ports.filter((port) => port !== dead)
    while (Date.now() < deadline) {
      try {
        const { stdout } = await run('redis-cli', ['-p', String(alive[0]), 'CLUSTER', 'INFO'], { timeout: CLI_TIMEOUT_MS })
        const master = await this.masterOf(key)
        if (stdout.includes('cluster_state:ok') && master !== dead) return master
      } catch {}
      await sleep(50)
    }
    throw new Error(`no replica took over ${key} from ${dead} within ${ms} ms`)
  }

  async kill (port: number): Promise<void> {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'INFO', 'server'], { timeout: CLI_TIMEOUT_MS })
    process.kill(Number(/process_id:(\d+)/.exec(stdout)?.[1]), 'SIGKILL')
  }

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
    guard.on('error', () => {})
    guard.stdin?.on('error', () => {})
    this.#guards.push(guard)
  }

  async #waitFor (port: number, command: string[], accept: (reply: string) => boolean): Promise<void> {
    let last = ''
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const { stdout } = await run('redis-cli', ['-p', String(port), ...command], { timeout: CLI_TIMEOUT_MS })
        if (accept(stdout)) return
        last = stdout
      } catch (error) {
        last = (error as Error).message
      }
      await sleep(50)
    }
    throw new Error(`timed out waiting for redis on ${port} (${command.join(' ')}): ${last.trim()}`)
  }
}
