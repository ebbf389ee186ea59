import { createHash } from 'node:crypto'
import type { CommandArg, Send } from './send.js'

export interface RedisScriptOptions {
  /**
   * Sent whole (EVAL) every time instead of by its SHA, for a script whose
   * order with the commands sent after it matters: an EVALSHA answered
   * NOSCRIPT (Redis lost its scripts: a restart, a failover to a replica) is
   * sent again as EVAL once that answer is back, behind whatever was sent
   * meanwhile, and a whole script is never answered NOSCRIPT.
   */
  sentWhole?: boolean
}

/**
 * A Lua script run by its SHA (EVALSHA), sent whole (EVAL) only when the
 * server does not know it yet: after a restart, a flush, or on a new shard;
 * or always, when declared `sentWhole`. ioredis routes both by the first key
 * on a Redis Cluster.
 */
export class RedisScript {
  readonly #source: string
  readonly #sha: string
  readonly #sentWhole: boolean

  /** The SHA1 that EVALSHA names it by. */
  get sha (): string {
    return this.#sha
  }

  constructor (source: string, { sentWhole = false }: RedisScriptOptions = {}) {
    this.#source = source
    this.#sha = createHash('sha1').update(source).digest('hex')
    this.#sentWhole = sentWhole
  }

  /** Runs it, each command sent by `send` (throughClient, or sendNow for a batch's). */
  async run (send: Send, keys: string[], args: CommandArg[]): Promise<unknown> {
    if (this.#sentWhole) return await this.#runWhole(send, keys, args)
    try {
      return await send('evalsha', [this.#sha, keys.length, ...keys, ...args])
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error
      return await this.#runWhole(send, keys, args)
    }
  }

  async #runWhole (send: Send, keys: string[], args: CommandArg[]): Promise<unknown> {
    return await send('eval', [this.#source, keys.length, ...keys, ...args])
  }
}
