// The Redis deployments of the failover scenario, of the run's own on free
// loopback ports (the machine's shared Redis is never touched): a Sentinel-
// managed primary/replica pair, and a Redis Cluster of three masters with a
// replica each. Every redis-server is started by bench/lib/redis-server.js's
// spawnRedis: tracked (killAll ends it) and under setpriv --pdeathsig, so it
// dies with the orchestrator even after a SIGKILL. Every wait is bounded.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { freePort, spawnRedis } from '../../bench/lib/redis-server.js'
import { sleep } from '../../bench/lib/rpc.js'

const run = promisify(execFile)
const SENTINEL_MASTER = 'realtime'
// Quick to fail over: a primary silent for 500 ms is down (quorum 1, one Sentinel).
const DOWN_AFTER_MS = 500
const FAILOVER_TIMEOUT_MS = 3000
const CLUSTER_NODE_TIMEOUT_MS = 1000

/** The servers of one deployment and their directory. */
class Servers {
  processes = new Map()

  constructor (name) {
    this.dir = mkdtempSync(join(tmpdir(), `stress-${name}-`))
  }

  spawn (port, args) {
    const server = spawnRedis(args)
    server.stderr.resume()
    this.processes.set(port, server)
  }

  /** `redis-cli -p <port> <command>`'s output; a call to a frozen server gives up after 1 s. */
  async cli (port, command) {
    return (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], { timeout: 1000 })).stdout
  }

  /** Retries `command` on `port` until `accept` takes its reply, at most `timeoutMs`. */
  async waitFor (port, command, accept, what, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs
    let last = ''
    while (Date.now() < deadline) {
      try {
        const reply = await this.cli(port, command)
        if (accept(reply)) return reply
        last = reply
      } catch (error) {
        last = error.message
      }
      await sleep(50)
    }
    throw new Error(`timed out waiting for redis-server on ${port} ${what}: ${last.trim().slice(0, 200)}`)
  }

  /** SIGKILL, SIGSTOP or SIGCONT to the server on `port`. */
  signal (port, signal) {
    this.processes.get(port).kill(signal)
  }

  stop () {
    for (const server of this.processes.values()) {
      if (server.exitCode === null && server.signalCode === null) {
        server.kill('SIGCONT')
        server.kill('SIGKILL')
      }
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

const DATA = (dir) => ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--dir', dir]

/** A primary, one replica and one Sentinel (quorum 1). */
export class OwnSentinel {
  static async start () {
    const servers = new Servers('sentinel')
    const deployment = new OwnSentinel(servers)
    try {
      const [primary, replica, sentinel] = [await freePort(), await freePort(), await freePort()]
      deployment.sentinelPort = sentinel
      servers.spawn(primary, ['--port', String(primary), ...DATA(servers.dir)])
      servers.spawn(replica, ['--port', String(replica), '--replicaof', '127.0.0.1', String(primary), ...DATA(servers.dir)])
      await servers.waitFor(replica, ['INFO', 'replication'], (reply) => reply.includes('master_link_status:up'), 'to replicate')
      const config = join(servers.dir, 'sentinel.conf')
      writeFileSync(config, [
        `port ${sentinel}`,
        'bind 127.0.0.1',
        `dir ${servers.dir}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary} 1`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${SENTINEL_MASTER} ${FAILOVER_TIMEOUT_MS}`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`
      ].join('\n') + '\n')
      servers.spawn(sentinel, [config, '--sentinel', '--loglevel', 'warning'])
      await servers.waitFor(sentinel, ['SENTINEL', 'replicas', SENTINEL_MASTER], (reply) => reply.includes(String(replica)), 'to know the replica')
      return deployment
    } catch (error) {
      servers.stop()
      throw error
    }
  }

  constructor (servers) {
    this.servers = servers
  }

  /** What stress/node.js builds its Sentinel client from. */
  get clientConfig () {
    return { sentinels: [{ host: '127.0.0.1', port: this.sentinelPort }], name: SENTINEL_MASTER }
  }

  /** The port Sentinel names as the primary now. */
  async primaryPort () {
    const reply = await this.servers.cli(this.sentinelPort, ['SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER])
    return Number(reply.trim().split('\n')[1])
  }

  /** Resolves with the new primary's port once Sentinel names another than `port` and that one answers as a master. */
  async waitForFailoverFrom (port, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      try {
        const now = await this.primaryPort()
        if (now !== port && (await this.servers.cli(now, ['ROLE'])).startsWith('master')) return now
      } catch {}
      await sleep(50)
    }
    throw new Error(`Sentinel did not fail over from ${port} within ${timeoutMs} ms`)
  }

  /** The names of the clients connected to the server on `port` (CLIENT LIST). */
  async clientNames (port) {
    return (await this.servers.cli(port, ['CLIENT', 'LIST'])).split('\n').map((line) => /name=(\S*)/.exec(line)?.[1]).filter(Boolean)
  }

  signal (port, signal) { this.servers.signal(port, signal) }
  stop () { this.servers.stop() }
}

/** Three masters with a replica each; a dead master's replica is promoted within a few seconds. */
export class OwnRedisCluster {
  static async start () {
    const servers = new Servers('cluster')
    const deployment = new OwnRedisCluster(servers)
    try {
      for (let index = 0; index < 6; index++) deployment.ports.push(await freePort())
      for (const port of deployment.ports) {
        servers.spawn(port, [
          '--port', String(port),
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(servers.dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS),
          ...DATA(servers.dir)
        ])
      }
      for (const port of deployment.ports) await servers.waitFor(port, ['PING'], (reply) => reply.trim() === 'PONG', 'to accept connections')
      await run('redis-cli', ['--cluster', 'create', ...deployment.ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 20_000 })
      for (const port of deployment.ports) {
        await servers.waitFor(port, ['CLUSTER', 'INFO'], (reply) => reply.includes('cluster_state:ok'), 'to report cluster_state:ok')
        // Every replica linked to its master, so that it can be promoted.
        await servers.waitFor(port, ['INFO', 'replication'], (reply) => reply.includes('role:master') || reply.includes('master_link_status:up'), 'to be linked to its master')
      }
      return deployment
    } catch (error) {
      servers.stop()
      throw error
    }
  }

  ports = []

  constructor (servers) {
    this.servers = servers
  }

  /** What stress/node.js builds its Cluster client from. */
  get clientConfig () {
    return { cluster: [{ host: '127.0.0.1', port: this.ports[0] }] }
  }

  /** The slot of each of `keys`. */
  async slotsOf (keys) {
    const client = new Redis({ host: '127.0.0.1', port: this.ports[0], maxRetriesPerRequest: 1 })
    client.on('error', () => {})
    try {
      const pipeline = client.pipeline()
      for (const key of keys) pipeline.cluster('KEYSLOT', key)
      return (await pipeline.exec()).map(([error, slot]) => { if (error !== null) throw error; return Number(slot) })
    } finally {
      client.disconnect()
    }
  }

  /** The port of the master serving `slot` now, asking the live nodes (not `dead`). */
  async masterOfSlot (slot, dead) {
    for (const port of this.ports) {
      if (port === dead) continue
      try {
        // redis-cli prints each range as: start, end, master ip, master port, master id, then replicas.
        const lines = (await this.servers.cli(port, ['CLUSTER', 'SLOTS'])).trim().split('\n')
        for (let index = 0; index + 3 < lines.length; index++) {
          const [start, end] = [Number(lines[index]), Number(lines[index + 1])]
          if (lines[index + 2] === '127.0.0.1' && Number.isInteger(start) && Number.isInteger(end) && start <= slot && slot <= end) return Number(lines[index + 3])
        }
      } catch {}
    }
    throw new Error(`no master serves slot ${slot}`)
  }

  /** The slots the master on `port` serves now. */
  async slotsServedBy (port) {
    const slots = new Set()
    const lines = (await this.servers.cli(port, ['CLUSTER', 'SLOTS'])).trim().split('\n')
    for (let index = 0; index + 3 < lines.length; index++) {
      const [start, end] = [Number(lines[index]), Number(lines[index + 1])]
      if (lines[index + 2] === '127.0.0.1' && Number(lines[index + 3]) === port && Number.isInteger(start) && Number.isInteger(end)) {
        for (let slot = start; slot <= end; slot++) slots.add(slot)
      }
    }
    return slots
  }

  /** Resolves with the promoted master's port once a live node other than `dead` serves `slot` and the cluster is ok. */
  async waitForPromotion (slot, dead, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs
    const alive = this.ports.find((port) => port !== dead)
    while (Date.now() < deadline) {
      try {
        const info = await this.servers.cli(alive, ['CLUSTER', 'INFO'])
        const master = await this.masterOfSlot(slot, dead)
        if (info.includes('cluster_state:ok') && master !== dead) return master
      } catch {}
      await sleep(50)
    }
    throw new Error(`no replica took over slot ${slot} from ${dead} within ${timeoutMs} ms`)
  }

  /** Subscribers (SSUBSCRIBE) of `channels` on the server on `port`. */
  async shardSubscribers (port, channels) {
    const lines = (await this.servers.cli(port, ['PUBSUB', 'SHARDNUMSUB', ...channels])).trim().split('\n')
    let total = 0
    for (let index = 1; index < lines.length; index += 2) total += Number(lines[index])
    return total
  }

  signal (port, signal) { this.servers.signal(port, signal) }
  stop () { this.servers.stop() }
}
