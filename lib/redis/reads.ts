import type { RedisClient } from './client.js'
import { isCluster } from './client.js'
import { TurnBatch } from './turn-batch.js'

/** Reads one string key: null when it does not exist or holds another type. */
export type StringRead = (key: string) => Promise<string | null>

/**
 * String reads that share one command. On one Redis, the keys read within one
 * turn of the event loop (or within `waitMs`, see TurnBatch) go out as one
 * MGET: a node accepting a storm of handshakes makes one round trip and one
 * write for many token lookups. On a Redis Cluster the keys live on different
 * shards, so each is its own GET with its own outcome (a client with
 * `enableAutoPipelining` sends a turn's in one write per shard), where a
 * batch would fail all its keys for one shard's error. Either way a key of
 * another type reads as null, as MGET answers it.
 */
export function batchedReads (redis: RedisClient, { waitMs = 0 }: { waitMs?: number } = {}): StringRead {
  if (isCluster(redis)) return async (key) => await redis.get(key).catch(nullIfWrongType)
  const batch = new TurnBatch<string, string | null>(async (keys) => await redis.mget(keys), { waitMs })
  return async (key) => await batch.add(key)
}

function nullIfWrongType (error: Error): null {
  if (error.message.startsWith('WRONGTYPE')) return null
  throw error
}
