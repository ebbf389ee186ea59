import { Command } from 'ioredis'
import { isCluster, type RedisClient } from './client.js'

export type CommandArg = string | number | Buffer

/** Sends one command (`name` and its arguments) and resolves its reply. */
export type Send = (name: string, args: CommandArg[]) => Promise<unknown>

/** The client's own path: auto-pipelined when the client is set so (the plugin's own client is). */
export function throughClient (client: RedisClient): Send {
  return async (name, args) => await client.call(name, ...args)
}

/**
 * At once: on one Redis, outside the client's auto-pipeline. For the
 * commands that a batch already gathered (see keyBatch), and for everything
 * else on the keys they read, which must keep its order with them. An
 * auto-pipelining client wraps each command of a turn in a pipeline (for a
 * lone command, costlier than the command itself), and sends its next
 * pipeline only once the previous one is answered: a turn's token lookups
 * and claims would wait a round trip behind the publishes of the turn
 * before, and a lookup sent at once could overtake a revocation made before
 * it but still waiting there. On a Redis Cluster through the client: each
 * key is its own command there, and auto-pipelining sends a turn's in one
 * write per shard, in order per shard.
 */
export function sendNow (client: RedisClient): Send {
  if (isCluster(client)) return throughClient(client)
  // As the client's own methods would build it (a borrowed client may prefix its keys).
  const keyPrefix = client.options.keyPrefix
  return async (name, args) => {
    const command = new Command(name, args, { replyEncoding: 'utf8', keyPrefix })
    client.sendCommand(command)
    return await command.promise
  }
}
