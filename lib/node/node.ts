import type { FastifyBaseLogger } from 'fastify'
import type { ChannelCatalog } from '../channels/catalog.js'
import { RedisBroker } from '../broker/redis.js'
import type { Hub } from '../hub/hub.js'
import type { RedisClient } from '../redis/client.js'
import type { GatewayStats } from '../stats.js'
import { Fencing } from './fencing.js'
import { RedisPresence } from './presence.js'

const LEAVE_TIMEOUT_MS = 1000

export interface ClusterOptions {
  redis: RedisClient
  keyPrefix: string
  nodeId: string
  hub: Hub
  catalog: ChannelCatalog
  heartbeatIntervalMs: number
  probeIntervalMs: number
  publishTimeoutMs: number
  stats: GatewayStats
  log: FastifyBaseLogger
}

export interface Cluster {
  broker: RedisBroker
  presence: RedisPresence
  stop: () => Promise<void>
}

/**
 * Wires a node into the cluster: the Redis broker, cross-node fencing of one
 * socket per user, and presence. One maintenance timer (every heartbeat
 * interval) refreshes presence and repairs lost takeover announcements.
 */
export function joinCluster (options: ClusterOptions): Cluster {
  const { hub, log } = options
  const broker = new RedisBroker({
    client: options.redis,
    keyPrefix: options.keyPrefix,
    nodeId: options.nodeId,
    hub,
    catalog: options.catalog,
    probeIntervalMs: options.probeIntervalMs,
    publishTimeoutMs: options.publishTimeoutMs,
    stats: options.stats,
    onTakeover: (userId, generation) => fencing.onAnnounced(userId, generation),
    log
  })
  const fencing = new Fencing({
    redis: options.redis,
    keyPrefix: options.keyPrefix,
    hub,
    listen: async (userId) => await broker.listen(userId),
    announce: async (userId, generation) => await broker.announceTakeover(userId, generation),
    log
  })
  const presence = new RedisPresence({
    redis: options.redis,
    keyPrefix: options.keyPrefix,
    nodeId: options.nodeId,
    connections: hub.connections,
    ttlMs: 2 * options.heartbeatIntervalMs,
    log
  })

  // While the subscriber's link is down, waiting would hold a socket's
  // `connected` until it is back; every socket here gets `resync` then instead.
  hub.announceWhen((connection) => broker.linkDown ? undefined : broker.listen(connection.userId))
  hub.connections.listen({
    added (connection) {
      presence.opened(connection)
      fencing.claim(connection).catch(() => {})
    },
    removed (connection) {
      presence.closed(connection)
      if (hub.connections.forUser(connection.userId) === undefined) {
        broker.unlisten(connection.userId)
        fencing.forget(connection.userId)
      }
    }
  })

  const maintain = async (): Promise<void> => {
    await Promise.all([presence.refresh(), fencing.repair()])
  }
  const maintenance = setInterval(() => {
    maintain().catch((error: Error) => log.debug({ err: error }, 'fastify-realtime: cluster maintenance failed'))
  }, options.heartbeatIntervalMs).unref()
  const relist = (): void => {
    presence.refresh().catch((error: Error) => log.debug({ err: error }, 'fastify-realtime: presence refresh failed'))
  }
  relist()
  // Redis may be back empty (restarted without persistence), and writes made
  // while it was away were lost: relist this node's sockets as soon as the
  // link is back, not at the next maintenance tick a heartbeat interval away.
  options.redis.on('ready', relist)

  return {
    broker,
    presence,
    async stop () {
      clearInterval(maintenance)
      options.redis.off('ready', relist)
      // Bounded: a borrowed client may queue forever while Redis is down; the TTL cleans up anyway.
      await Promise.race([presence.leave().catch(() => {}), new Promise((resolve) => setTimeout(resolve, LEAVE_TIMEOUT_MS).unref())])
      await broker.close()
    }
  }
}
