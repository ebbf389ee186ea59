import type { FastifyBaseLogger } from 'fastify'
import type { Connection, ConnectionInfo } from '../hub/connection.js'
import type { ConnectionIndex } from '../hub/connection-index.js'
import type { RedisClient } from '../redis/client.js'

/** A connection as cluster-wide diagnostics list it. */
export interface PresenceEntry extends ConnectionInfo {
  node_id: string
}

/** Who is connected, across every node of the deployment. */
export interface Presence {
  connectedUsers: () => Promise<string[]>
  connections: () => Promise<PresenceEntry[]>
}

/** Embedded mode: this process is the whole deployment. */
export class LocalPresence implements Presence {
  readonly #connections: ConnectionIndex
  readonly #nodeId: string

  constructor (connections: ConnectionIndex, nodeId: string) {
    this.#connections = connections
    this.#nodeId = nodeId
  }

  async connectedUsers (): Promise<string[]> {
    return this.#connections.userIds()
  }

  async connections (): Promise<PresenceEntry[]> {
    return Array.from(this.#connections, (connection) => ({ ...connection.describe(), node_id: this.#nodeId }))
  }
}

const WRITE_CHUNK = 500

/** A socket's value in its node's connections hash: what `/connections` lists for it. */
const presenceEntry = (connection: Connection): string => JSON.stringify(connection.describe())
/**
 * How long a presence change waits for others to share its write. Presence
 * is for diagnostics, read by people and dashboards: a tenth of a second
 * late costs nothing, and a reconnect storm's changes go out in a few writes.
 */
const WRITE_WAIT_MS = 100

/**
 * Cluster mode: each node keeps its connections in two Redis hashes that
 * expire unless refreshed, and announces itself in a sorted set scored by the
 * time its entries stop counting. Readers take the live nodes from the sorted
 * set and read their hashes, so a query never waits on another node, and a
 * crashed node's users drop out within `ttlMs` (two heartbeat intervals).
 *
 *   {keyPrefix}nodes                    ZSET  nodeId -> expiry (ms)
 *   {keyPrefix}node:{<nodeId>}:conns    HASH  connectionId -> connection JSON
 *   {keyPrefix}node:{<nodeId>}:users    HASH  userId -> connectionId
 */
export class RedisPresence implements Presence {
  readonly #redis: RedisClient
  readonly #keyPrefix: string
  readonly #nodeId: string
  readonly #connections: ConnectionIndex
  readonly #ttlMs: number
  readonly #log: FastifyBaseLogger
  /** Sockets opened (the connection) or closed (undefined) since the last write. */
  readonly #changedConnections = new Map<string, Connection | undefined>()
  readonly #changedUsers = new Set<string>()
  #scheduled = false
  /** A write is in flight: the next one waits for its answer. */
  #writing = false

  readonly #writeWaitMs: number

  constructor (options: { redis: RedisClient, keyPrefix: string, nodeId: string, connections: ConnectionIndex, ttlMs: number, log: FastifyBaseLogger, writeWaitMs?: number }) {
    this.#redis = options.redis
    this.#keyPrefix = options.keyPrefix
    this.#nodeId = options.nodeId
    this.#connections = options.connections
    this.#ttlMs = options.ttlMs
    this.#log = options.log
    this.#writeWaitMs = options.writeWaitMs ?? WRITE_WAIT_MS
  }

  #keys (nodeId: string): { conns: string, users: string } {
    // The hash tag keeps a node's two hashes in one Redis Cluster slot.
    const base = `${this.#keyPrefix}node:{${nodeId}}`
    return { conns: `${base}:conns`, users: `${base}:users` }
  }

  get #nodesKey (): string {
    return `${this.#keyPrefix}nodes`
  }

  opened (connection: Connection): void {
    this.#changedConnections.set(connection.id, connection)
    this.#changedUsers.add(connection.userId)
    this.#schedule()
  }

  closed (connection: Connection): void {
    this.#changedConnections.set(connection.id, undefined)
    this.#changedUsers.add(connection.userId)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#scheduled || this.#writing) return
    this.#scheduled = true
    setTimeout(() => { this.#writeChanges() }, this.#writeWaitMs)
  }

  /**
   * Writes what changed since the last write (WRITE_WAIT_MS ago at most) as
   * one pipeline: a reconnect storm of thousands of sockets costs a handful
   * of round trips, not one transaction per socket. One write is in flight at a time: what changes
   * meanwhile waits for it, so writes grow with the load. Each entry is written as it stands now, so a
   * socket opened and closed within the turn is only deleted, and a user
   * keeps the entry of whichever socket is theirs at the end.
   */
  #writeChanges (): void {
    this.#scheduled = false
    // Users change only with their sockets: nothing changed, nothing to write.
    if (this.#changedConnections.size === 0) return
    const keys = this.#keys(this.#nodeId)
    // Flat field, value, field, value… lists, as HSET takes them.
    const listed: string[] = []
    const gone: string[] = []
    for (const [id, connection] of this.#changedConnections) {
      if (connection === undefined) gone.push(id)
      else listed.push(id, presenceEntry(connection))
    }
    const users: string[] = []
    const usersGone: string[] = []
    for (const userId of this.#changedUsers) {
      const current = this.#connections.forUser(userId)
      if (current === undefined) usersGone.push(userId)
      else users.push(userId, current.id)
    }
    this.#changedConnections.clear()
    this.#changedUsers.clear()
    const pipeline = this.#redis.pipeline()
    if (gone.length > 0) pipeline.hdel(keys.conns, ...gone)
    if (usersGone.length > 0) pipeline.hdel(keys.users, ...usersGone)
    if (listed.length > 0) pipeline.hset(keys.conns, ...listed).pexpire(keys.conns, this.#ttlMs)
    if (users.length > 0) pipeline.hset(keys.users, ...users).pexpire(keys.users, this.#ttlMs)
    this.#writing = true
    pipeline.exec().catch((error: Error) => this.#failed(error)).finally(() => {
      this.#writing = false
      if (this.#changedConnections.size > 0) this.#schedule()
    })
  }

  /** Rewrites this node's hashes from the local connections and extends its lease. */
  async refresh (): Promise<void> {
    const keys = this.#keys(this.#nodeId)
    const connections = [...this.#connections]
    const transaction = this.#redis.multi().del(keys.conns, keys.users)
    for (let start = 0; start < connections.length; start += WRITE_CHUNK) {
      const chunk = connections.slice(start, start + WRITE_CHUNK)
      transaction.hset(keys.conns, Object.fromEntries(chunk.map((connection) => [connection.id, presenceEntry(connection)])))
      transaction.hset(keys.users, Object.fromEntries(chunk.map((connection) => [connection.userId, connection.id])))
    }
    await transaction.pexpire(keys.conns, this.#ttlMs).pexpire(keys.users, this.#ttlMs).exec()
    const now = Date.now()
    await this.#redis.multi()
      .zadd(this.#nodesKey, now + this.#ttlMs, this.#nodeId)
      .zremrangebyscore(this.#nodesKey, '-inf', now)
      .exec()
  }

  /** Takes this node out at once on a clean shutdown. */
  async leave (): Promise<void> {
    this.#changedConnections.clear()
    this.#changedUsers.clear()
    const keys = this.#keys(this.#nodeId)
    await this.#redis.del(keys.conns, keys.users)
    await this.#redis.zrem(this.#nodesKey, this.#nodeId)
  }

  async #liveNodes (): Promise<string[]> {
    return await this.#redis.zrangebyscore(this.#nodesKey, Date.now(), '+inf')
  }

  async connectedUsers (): Promise<string[]> {
    const nodes = await this.#liveNodes()
    const perNode = await Promise.all(nodes.map(async (nodeId) => await this.#redis.hkeys(this.#keys(nodeId).users)))
    return [...new Set(perNode.flat())]
  }

  async connections (): Promise<PresenceEntry[]> {
    const nodes = await this.#liveNodes()
    const perNode = await Promise.all(nodes.map(async (nodeId) => {
      const entries = await this.#redis.hvals(this.#keys(nodeId).conns)
      return entries.map((entry) => ({ ...JSON.parse(entry) as ConnectionInfo, node_id: nodeId }))
    }))
    return perNode.flat()
  }

  #failed (error: Error): void {
    // The next refresh rewrites everything; an outage loses nothing here for long.
    this.#log.debug({ err: error }, 'fastify-realtime: presence write failed')
  }
}
