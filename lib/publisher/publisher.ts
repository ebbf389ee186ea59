import type { BrokerWriter } from '../broker/broker.js'
import { RedisWriter } from '../broker/redis-writer.js'
import { ChannelCatalog } from '../channels/catalog.js'
import { FST_REALTIME_REDIS_UNAVAILABLE } from '../errors.js'
import { buildPublishApi, type PublishApi } from '../node/publish-api.js'
import { Sender } from '../node/sender.js'
import { createRedisClient, waitForRedis, warnIfResending } from '../redis/client.js'
import { RedisTokenStore } from '../tokens/redis-store.js'
import { normalizePublisherOptions, type PublisherOptions } from './options.js'

export interface RealtimePublisher extends Omit<PublishApi, 'revoke'> {
  tokens: {
    /** Deletes the token's key (the gateway's layout), then closes its open sockets on every node with 4501. */
    revoke: (token: string) => Promise<void>
  }
  /**
   * Stops publishing: later calls reject with FST_REALTIME_REDIS_UNAVAILABLE.
   * A client the publisher created from a URL is quit; one it was given is
   * left open for its owner.
   */
  close: () => Promise<void>
}

const NO_ACKS = 'a standalone publisher receives no acks; await one through a gateway node (app.realtime.publish or POST {prefix}/publish)'

/**
 * A publisher for the processes that do not run the gateway (job workers,
 * other services): the calls of `app.realtime` that send, with the same
 * checks and errors, over the same Redis wire (the node's Sender over a
 * RedisWriter). It writes only: no subscriber connection, so no `awaitAck`.
 * Resolves once its Redis is ready, or after a short wait (publishes are
 * refused with FST_REALTIME_REDIS_UNAVAILABLE until it is).
 */
export async function createPublisher (options: PublisherOptions): Promise<RealtimePublisher> {
  const normalized = normalizePublisherOptions(options)
  const { keyPrefix, history, logger } = normalized
  const owned = typeof normalized.redis === 'string'
  const client = typeof normalized.redis === 'string' ? createRedisClient(normalized.redis, 'fastify-realtime:publisher', logger) : normalized.redis
  if (!owned) warnIfResending(client, logger)
  const writer = new RedisWriter({ client, publishTimeoutMs: normalized.publishTimeoutMs, history })
  let closed = false
  const open = (): void => {
    if (closed) throw new FST_REALTIME_REDIS_UNAVAILABLE('the publisher is closed')
  }
  const broker: BrokerWriter = {
    publish: async (topic, message) => { open(); await writer.publish(topic, message) },
    publishOnce: async (topic, message, once) => { open(); return await writer.publishOnce(topic, message, once) },
    append: async (topic, event) => { open(); return await writer.append(topic, event) }
  }
  const sender = new Sender({ broker, keyPrefix, history: history !== undefined, idempotencyWindowSeconds: normalized.idempotencyWindowSeconds })
  const store = new RedisTokenStore(client, { keyPrefix, keyFor: normalized.keyFor })
  const { revoke, ...publishing } = buildPublishApi({
    catalog: new ChannelCatalog(normalized.channels),
    target: {
      publishToUser: async (userId, channel, event, key) => (await sender.send(channel, userId, event, key)).id,
      publishToChannel: async (channel, event, key) => (await sender.send(channel, undefined, event, key)).id,
      disconnectUser: async (userId, disconnect, finalEvent) => await sender.disconnectUser(userId, disconnect, finalEvent),
      revokeToken: async (tokenHash, userId) => await sender.revokeToken(tokenHash, userId)
    },
    history: history !== undefined,
    noAcks: NO_ACKS,
    forgetToken: async (token) => { open(); return await store.revoke(token) },
    onPublish: () => {}
  })
  await waitForRedis(client, logger, 'publishes are refused until it is')
  return {
    ...publishing,
    tokens: { revoke },
    async close () {
      if (closed) return
      closed = true
      writer.close()
      if (owned) await client.quit().catch(() => client.disconnect())
    }
  }
}
