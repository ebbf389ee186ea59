import type { Cluster, Redis } from 'ioredis'
import { isCluster, type RedisClient } from '../redis/client.js'

/**
 * The pub/sub commands the broker needs, over one Redis (classic
 * PUBLISH/SUBSCRIBE) or a Redis Cluster (sharded SPUBLISH/SSUBSCRIBE: classic
 * PUBLISH is broadcast to every shard of a cluster, sharded pub/sub is not).
 */
export interface PubSub extends PublishCommands {
  /** The connection that receives (a dedicated duplicate of the user's client). */
  readonly subscriber: RedisClient
  subscribe: (channels: string[]) => Promise<unknown>
  unsubscribe: (channels: string[]) => Promise<unknown>
  onMessage: (handler: (channel: string, message: Buffer) => void) => void
  close: () => void
}

/** How to publish over a client, without a subscriber: all a process that only publishes needs. */
export interface PublishCommands {
  publish: (channel: string, message: Buffer) => Promise<unknown>
  /** The command a script publishes with. */
  readonly publishCommand: 'publish' | 'spublish'
  /** A channel as a script must name it: the command would add the client's key prefix, a script does not. */
  scriptChannel: (channel: string) => string
}

export function publishCommands (publisher: RedisClient): PublishCommands {
  if (!isCluster(publisher)) {
    // The client's own promise, with no async layer around it: a publish is on the hot path.
    return { publish: (channel, message) => publisher.publish(channel, message), publishCommand: 'publish', scriptChannel: (channel) => channel }
  }
  // ioredis treats sharded channels as keys and adds the client's own keyPrefix to them.
  const clientPrefix = publisher.options.keyPrefix ?? ''
  return {
    publish: (channel, message) => publisher.spublish(channel, message),
    publishCommand: 'spublish',
    scriptChannel: (channel) => clientPrefix + channel
  }
}

export function createPubSub (publisher: RedisClient): PubSub {
  if (isCluster(publisher)) return shardedPubSub(publisher)
  return classicPubSub(publisher)
}

function classicPubSub (publisher: Redis): PubSub {
  // Unlike the publisher, the subscriber queues while disconnected and never
  // times a command out: a SUBSCRIBE must land once Redis is back. The broker
  // subscribes everything again itself after a reconnect: ioredis' own
  // resubscription leaves its SUBSCRIBE's promise unhandled, and a link that
  // drops again before Redis answers it turns into an unhandled rejection.
  const subscriber = publisher.duplicate({
    connectionName: 'fastify-realtime:subscriber',
    enableOfflineQueue: true,
    autoResubscribe: false,
    commandTimeout: undefined,
    maxRetriesPerRequest: null
  })
  return {
    ...publishCommands(publisher),
    subscriber,
    subscribe: async (channels) => await subscriber.subscribe(...channels),
    unsubscribe: async (channels) => await subscriber.unsubscribe(...channels),
    onMessage: (handler) => {
      subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => handler(channel.toString(), message))
    },
    close: () => subscriber.disconnect()
  }
}

/**
 * Where a new subscriber starts: the nodes the publisher knows now, not its
 * startup nodes. A subscriber is made again when the broker replaces one that
 * stopped receiving, typically during a failover; a startup node may be the
 * dead master by then, and a client that can start only from it never
 * connects (the node would stay deaf to every channel). None known yet (the
 * publisher has not connected): its startup nodes.
 */
function knownNodes (publisher: Cluster): Array<{ host?: string, port?: number }> {
  return publisher.nodes('all').map((node) => ({ host: node.options.host, port: node.options.port }))
}

function shardedPubSub (publisher: Cluster): PubSub {
  const subscriber = publisher.duplicate(knownNodes(publisher), { shardedSubscribers: true, enableOfflineQueue: true })
  // ioredis treats sharded channels as keys and adds the client's own keyPrefix to them.
  const clientPrefix = publisher.options.keyPrefix ?? ''
  return {
    ...publishCommands(publisher),
    subscriber,
    // Sharded channels live on different shards: one SSUBSCRIBE per channel, sent together.
    subscribe: async (channels) => await Promise.all(channels.map(async (channel) => await subscriber.ssubscribe(channel))),
    unsubscribe: async (channels) => await Promise.all(channels.map(async (channel) => await subscriber.sunsubscribe(channel))),
    onMessage: (handler) => {
      subscriber.on('smessageBuffer', (channel: Buffer, message: Buffer) => handler(channel.toString().slice(clientPrefix.length), message))
    },
    close: () => subscriber.disconnect()
  }
}
