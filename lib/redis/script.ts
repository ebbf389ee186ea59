import { createHash } from 'node:crypto'
import type { CommandArg, Send } from './send.js'

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

  /**
   * The whole script (EVAL), every time: never answered NOSCRIPT, so nothing
   * sent after it can run before it. (An EVALSHA answered NOSCRIPT is sent
   * again as EVAL once that answer is back, behind whatever was sent
   * meanwhile.) For a rare command whose order with what follows matters.
   */
  async runWhole (send: Send, keys: string[], args: CommandArg[]): Promise<unknown> {
    return await send('eval', [this.#source, keys.length, ...keys, ...args])
  }

  /** Runs it by its SHA, each command sent by `send` (throughClient, or sendNow for a batch's). */
  async run (send: Send, keys: string[], args: CommandArg[]): Promise<unknown> {
    try {
      return await send('evalsha', [this.#sha, keys.length, ...keys, ...args])
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error
      return await this.runWhole(send, keys, args)
    }
  }
}
