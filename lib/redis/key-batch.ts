import type { RedisClient } from './client.js'
import { isCluster } from './client.js'
import { sendNow, type Send } from './send.js'
import { TurnBatch, type BatchTiming } from './turn-batch.js'

/**
 * Requests for one key each, answered by a command that takes many keys. On
 * one Redis, the keys asked for within one turn of the event loop (or as
 * `timing` says, see TurnBatch) go out as one command: a node accepting a storm of
 * handshakes makes one round trip and one write for many of them. On a Redis
 * Cluster the keys live on different shards, so each is its own command with
 * its own outcome (a client with `enableAutoPipelining` sends a turn's in one
 * write per shard), where a batch would fail all its keys for one shard's error.
 * A request may carry an argument for its key (`Arg`), handed to `many` in
 * the keys' order. `many` sends its commands with the `send` it is given
 * (sendNow: on one Redis at once, not behind the client's auto-pipeline).
 */
export function keyBatch<Output, Arg = void> (redis: RedisClient, many: (send: Send, keys: string[], args: Arg[]) => Promise<Output[]>, timing: BatchTiming = {}): (key: string, arg: Arg) => Promise<Output> {
  const send = sendNow(redis)
  if (isCluster(redis)) return async (key, arg) => (await many(send, [key], [arg]))[0] as Output
  const batch = new TurnBatch<{ key: string, arg: Arg }, Output>(
    async (requests) => await many(send, requests.map((request) => request.key), requests.map((request) => request.arg)),
    timing
  )
  // The batch's promise, handed on: a connect makes three of these requests, and each async layer costs an allocation.
  return (key, arg) => batch.add({ key, arg })
}

/** Reads one string key: null when it does not exist or holds another type (as MGET answers both). */
export type StringRead = (key: string) => Promise<string | null>

/** String reads that share one MGET per turn (see keyBatch): token lookups, fencing re-reads. */
export function batchedReads (redis: RedisClient, timing: BatchTiming = {}): StringRead {
  return keyBatch(redis, async (send, keys) => await send('mget', keys) as Array<string | null>, timing)
}
