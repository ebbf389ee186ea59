import { once } from 'node:events'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { Redis, type Cluster } from 'ioredis'
import { FST_REALTIME_INVALID_OPTION } from '../errors.js'
import type { RealtimeOptions } from '../options.js'

export type RedisClient = Redis | Cluster

/** A Redis client and whether the plugin owns it (and so must close it). */
export interface RedisConnection {
  client: RedisClient
  owned: boolean
}

const STARTUP_WAIT_MS = 2000

/**
 * Turns the `redis` option into a client. A URL makes a client the plugin owns;
 * an ioredis instance or an @fastify/redis namespace is borrowed and left open
 * on close, as @fastify/redis itself does for clients passed to it.
 */
export function connectRedis (fastify: FastifyInstance, option: NonNullable<RealtimeOptions['redis']>, log: FastifyBaseLogger): RedisConnection {
  if (typeof option === 'string') {
    // No offline queue: while Redis is down a command must fail at once (the
    // handshake answers 503) rather than wait in memory for a reconnect.
    const client = new Redis(option, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: 'fastify-realtime' })
    client.on('error', (error: Error) => log.warn({ err: error }, 'fastify-realtime: Redis connection error'))
    return { client, owned: true }
  }
  if ('namespace' in option || !('status' in option)) {
    const namespace = (option as { namespace?: string }).namespace
    const decorated = (fastify as unknown as { redis?: RedisClient & Record<string, RedisClient> }).redis
    const client = namespace === undefined ? decorated : decorated?.[namespace]
    if (client === undefined || typeof (client as Redis).get !== 'function') {
      throw new FST_REALTIME_INVALID_OPTION('redis', `no @fastify/redis client${namespace === undefined ? '' : ` in namespace "${namespace}"`} is registered`)
    }
    return { client, owned: false }
  }
  return { client: option as RedisClient, owned: false }
}

/**
 * Gives a fresh connection a moment to come up so the first handshakes after
 * `ready()` do not see 503; a Redis that is down at boot does not stop the
 * server (handshakes answer 503 until it is back).
 */
export async function waitForRedis (client: RedisClient, log: FastifyBaseLogger): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'wait') client.connect().catch(() => {})
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), STARTUP_WAIT_MS).unref()
  try {
    await once(client, 'ready', { signal: controller.signal })
  } catch {
    log.warn('fastify-realtime: Redis is not ready yet; handshakes answer 503 until it is')
  } finally {
    clearTimeout(timer)
  }
}

export function isRedisReady (client: RedisClient): boolean {
  return client.status === 'ready'
}
