import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { FST_REALTIME_INVALID_OPTION } from '../errors.js'

export type RedisClient = Redis | Cluster

/**
 * What the `redis` option accepts. Declared here, where it is turned into a
 * client, so that this module needs nothing of the options module (which
 * depends on it).
 */
export type RedisOption = string | RedisClient | { namespace?: string }

/** Whether the client is a Redis Cluster's (keys on different shards, sharded pub/sub). */
export function isCluster (client: RedisClient): client is Cluster {
  return client instanceof Cluster || (client as { isCluster?: boolean }).isCluster === true
}

/** A Redis client and whether the plugin owns it (and so must close it). */
export interface RedisConnection {
  client: RedisClient
  owned: boolean
}

const STARTUP_WAIT_MS = 2000
const COMMAND_TIMEOUT_MS = 2000

/**
 * Turns the `redis` option into a client. A URL makes a client the plugin owns;
 * an ioredis instance or an @fastify/redis namespace is borrowed and left open
 * on close, as @fastify/redis itself does for clients passed to it.
 */
export function connectRedis (fastify: FastifyInstance, option: RedisOption, log: FastifyBaseLogger): RedisConnection {
  if (typeof option === 'string') return { client: createRedisClient(option, 'fastify-realtime', log), owned: true }
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
 * A client for a URL, set for publishing (the gateway's, and the standalone
 * publisher's): its owner quits it.
 */
export function createRedisClient (url: string, connectionName: string, log: Pick<FastifyBaseLogger, 'warn'>): Redis {
  // No offline queue: while Redis is down a command must fail at once (the
  // handshake answers 503) rather than wait in memory for a reconnect.
  const client = new Redis(url, {
    enableOfflineQueue: false,
    // A command in flight when the link drops may have run: sent again after
    // the reconnect, a PUBLISH would be delivered twice. So it is not sent
    // again, and it fails at the drop: with a retry allowed, ioredis would
    // keep it through a quick reconnect and then drop it unanswered, and every
    // auto-pipelined command after it would wait behind it until the command
    // timeout (a Redis restart would stall publishes and handshakes that long).
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    // A frozen Redis keeps the link up; fail commands instead of piling them up.
    commandTimeout: COMMAND_TIMEOUT_MS,
    // Commands issued in the same tick (a burst of publishes) leave in one write.
    enableAutoPipelining: true,
    connectionName
  })
  client.on('error', (error: Error) => log.warn({ err: error }, 'fastify-realtime: Redis connection error'))
  return client
}

/**
 * Gives a fresh connection a moment to come up so the first handshakes after
 * `ready()` do not see 503; a Redis that is down at boot does not stop the
 * server (handshakes answer 503 until it is back).
 */
export async function waitForRedis (client: RedisClient, log: Pick<FastifyBaseLogger, 'warn'>, late = 'handshakes answer 503 until it is'): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'wait') client.connect().catch(() => {})
  // Connection errors are expected while it retries; only the deadline ends the wait.
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => { client.off('ready', onReady); resolve(false) }, STARTUP_WAIT_MS)
    function onReady (): void {
      clearTimeout(timer)
      resolve(true)
    }
    client.once('ready', onReady)
  })
  if (!ready) log.warn(`fastify-realtime: Redis is not ready yet; ${late}`)
}

/**
 * The settings of a borrowed client under which ioredis sends a publish again
 * later on its own: a Redis re-sends what was in flight when its link dropped
 * (it may have run: delivered twice); a Cluster also retries a command whose
 * node went away, after a delay, behind the publishes made meanwhile (out of
 * order, and after the caller was told the outcome is unknown). Each with the
 * value that turns it off.
 */
export function resendingOptions (client: RedisClient): Record<string, number | boolean> {
  const wanted: Record<string, number | boolean> = {}
  if (!isCluster(client)) {
    if (client.options.autoResendUnfulfilledCommands !== false) wanted.autoResendUnfulfilledCommands = false
    return wanted
  }
  const { retryDelayOnFailover, retryDelayOnClusterDown, redisOptions } = client.options
  if (retryDelayOnFailover !== 0) wanted.retryDelayOnFailover = 0
  if (retryDelayOnClusterDown !== 0) wanted.retryDelayOnClusterDown = 0
  if (redisOptions?.autoResendUnfulfilledCommands !== false) wanted['redisOptions.autoResendUnfulfilledCommands'] = false
  return wanted
}

/** Logs, for a client passed in, each setting `resendingOptions` names (nothing for a client of our own). */
export function warnIfResending (client: RedisClient, log: Pick<FastifyBaseLogger, 'warn'>): void {
  const resending = resendingOptions(client)
  if (Object.keys(resending).length === 0) return
  log.warn({ options: resending }, 'fastify-realtime: the Redis client passed in may send a publish again later, twice or out of order; set these options')
}

export function isRedisReady (client: RedisClient): boolean {
  return client.status === 'ready'
}

export type ComponentState = 'ready' | 'connecting' | 'down' | 'none'

/** An ioredis status as health reports it. */
export function componentState (status: string): ComponentState {
  if (status === 'ready') return 'ready'
  return status === 'end' || status === 'close' ? 'down' : 'connecting'
}
