import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from './redis-server.js'

const run = promisify(execFile)

const START_ATTEMPTS = 100
const ATTEMPT_DELAY_MS = 50
const CREATE_TIMEOUT_MS = 20_000
const CLI_TIMEOUT_MS = 2000
const STOP_TIMEOUT_MS = 5000

/**
 * Runs redis-server until its stdin (a pipe from this process) closes, then
 * kills it and removes the cluster's directory. The pipe closes when `stop()`
 * ends it and also when this process dies in any way, SIGKILL included (tap
 * kills a test file that times out), so no server outlives its test.
 */
const GUARDED_SERVER = 'redis-server "$@" & server=$!; cat > /dev/null; kill -9 $server; wait $server; rm -rf "$CLUSTER_DIR"'

/**
 * A Redis Cluster of three masters (no replicas) of the test's own, each on a
 * free loopback port with its state in a fresh temporary directory, so a test
 * can use sharded pub/sub without touching the machine's shared Redis.
 */
export class OwnRedisCluster {
  readonly ports: number[]
  readonly #dir: string
  readonly #processes: ChildProcess[] = []

  private constructor (ports: number[], dir: string) {
    this.ports = ports
    this.#dir = dir
  }

  /** Starting nodes for an ioredis `Cluster`. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }))
  }

  /** Starts three masters, joins them with `redis-cli --cluster create` and waits for `cluster_state:ok` on each. */
  static async start (): Promise<OwnRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'rt-redis-cluster-'))
    const ports: number[] = []
    // freePort releases the port at once: take three distinct ones.
    while (ports.length < 3) {
      const port = await freePort()
      if (!ports.includes(port)) ports.push(port)
    }
    const cluster = new OwnRedisCluster(ports, dir)
    try {
      for (const port of ports) cluster.#spawn(port)
      for (const port of ports) await cluster.#waitFor(port, (reply) => reply.trim() === 'PONG', ['PING'], 'to accept connections')
      await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: CREATE_TIMEOUT_MS })
      for (const port of ports) await cluster.#waitFor(port, (reply) => reply.includes('cluster_state:ok'), ['CLUSTER', 'INFO'], 'to report cluster_state:ok')
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  /** Kills the three servers and waits until they and their directory are gone. */
  async stop (): Promise<void> {
    await Promise.all(this.#processes.map(async (guard) => {
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
    await rm(this.#dir, { recursive: true, force: true })
  }

  #spawn (port: number): void {
    const guard = spawn('sh', ['-c', GUARDED_SERVER, 'sh',
      '--port', String(port),
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(this.#dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', '2000',
      '--save', '',
      '--appendonly', 'no',
      '--bind', '127.0.0.1',
      '--dir', this.#dir
    ], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, CLUSTER_DIR: this.#dir } })
    // A server that cannot start shows up as the bounded wait failing.
    guard.on('error', () => {})
    guard.stdin?.on('error', () => {})
    this.#processes.push(guard)
  }

  async #waitFor (port: number, accept: (reply: string) => boolean, command: string[], what: string): Promise<void> {
    let last = ''
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      try {
        const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: CLI_TIMEOUT_MS })
        if (accept(stdout)) return
        last = stdout
      } catch (error) {
        last = (error as Error).message
      }
      await sleep(ATTEMPT_DELAY_MS)
    }
    throw new Error(`timed out waiting for redis-server on ${port} ${what}: ${last.trim()}`)
  }
}
