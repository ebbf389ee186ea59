import { FST_REALTIME_OUTCOME_UNKNOWN, FST_REALTIME_REDIS_UNAVAILABLE } from '../errors.js'
import type { RedisClient } from '../redis/connection.js'
import { writeFailure } from '../redis/outcome.js'

export interface PublisherOptions {
  /** The client the commands go through; its status says whether anything can be written now. */
  client: RedisClient
  /** Hands one PUBLISH (SPUBLISH on a Redis Cluster) to the client. */
  send: (channel: string, message: Buffer) => Promise<unknown>
  /** Every publish settles within this. */
  timeoutMs: number
}

/**
 * Publishes so that a caller can act on a rejection. Within `timeoutMs`,
 * every publish ends one of three ways:
 *
 *   resolved                         Redis answered: the message went out to its subscribers
 *   FST_REALTIME_REDIS_UNAVAILABLE   nothing was written to Redis: a retry cannot duplicate it
 *   FST_REALTIME_OUTCOME_UNKNOWN     it may have reached Redis and may still be delivered
 *
 * A frozen Redis (or a link that silently stopped) keeps its TCP connection
 * open, so the client still says `ready` and would write every publish into
 * it, each to be delivered on the thaw after its caller heard "failed". So
 * once a publish has gone unanswered past its deadline the link counts as
 * stalled: later publishes are refused unwritten until the overdue ones are
 * settled (answered, or timed out by the client), or the client is on a new
 * connection.
 */
export class Publisher {
  readonly #options: PublisherOptions
  /** Publishes of the current connection past their deadline and not settled yet. */
  #overdue = 0
  /** Counts the client's connections: a command of an older one may never settle. */
  #connection = 0
  readonly #onReady = (): void => {
    this.#connection++
    this.#overdue = 0
  }

  constructor (options: PublisherOptions) {
    this.#options = options
    options.client.on('ready', this.#onReady)
  }

  async publish (channel: string, message: Buffer): Promise<void> {
    const { client, send, timeoutMs } = this.#options
    // Not even handed to the client: a borrowed one would hold it in its offline queue and send it later.
    if (client.status !== 'ready') throw new FST_REALTIME_REDIS_UNAVAILABLE(`the Redis client is ${client.status}`)
    if (this.#overdue > 0) throw new FST_REALTIME_REDIS_UNAVAILABLE('Redis has not answered an earlier publish yet')
    const connection = this.#connection
    let overdue = false
    const answered = send(channel, message)
    const settled = (): void => {
      if (overdue && connection === this.#connection) this.#overdue--
    }
    answered.then(settled, settled)
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        overdue = true
        if (connection === this.#connection) this.#overdue++
        reject(new FST_REALTIME_OUTCOME_UNKNOWN(`Redis did not answer within ${timeoutMs} ms`))
      }, timeoutMs).unref()
      answered.then(() => {
        clearTimeout(timer)
        resolve()
      }, (error: Error) => {
        clearTimeout(timer)
        reject(writeFailure(error))
      })
    })
  }

  close (): void {
    this.#options.client.off('ready', this.#onReady)
  }
}
