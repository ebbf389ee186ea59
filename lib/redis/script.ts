import { createHash } from 'node:crypto'
import type { RedisClient } from './client.js'

/**
 * A Lua script run by its SHA (EVALSHA), sent whole (EVAL) only when the
 * server does not know it yet: after a restart, a flush, or on a new shard.
 * ioredis routes both by the first key on a Redis Cluster.
 */
export class RedisScript {
  readonly #source: string
  readonly #sha: string

  /** The SHA1 that EVALSHA names it by. */
  get sha (): string {
    return this.#sha
  }

  constructor (source: string) {
    this.#source = source
    this.#sha = createHash('sha1').update(source).digest('hex')
  }

  async run (client: RedisClient, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args)
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error
      return await client.eval(this.#source, keys.length, ...keys, ...args)
    }
  }
}
