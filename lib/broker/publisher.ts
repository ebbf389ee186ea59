import { FST_REALTIME_OUTCOME_UNKNOWN, FST_REALTIME_REDIS_UNAVAILABLE } from '../errors.js'
import type { RedisClient } from '../redis/client.js'
import { writeFailure } from '../redis/outcome.js'

export interface PublisherOptions {
  /** The client the commands go through; its status says whether anything can be written now. */
  client: RedisClient
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
 * once a publish has gone unanswered past its deadline the link is stalled:
 * later publishes are refused unwritten until Redis answers something on that
 * connection (a publish, or a PING sent behind the overdue ones), or the
 * client is on a new connection. A command the client timed out proves
 * nothing: its reply may still come. A link still stalled a further
 * `timeoutMs` later is given up: the client is made to reconnect, since
 * ioredis would stay on it until TCP notices, which a frozen or partitioned
 * primary may never let happen, even after Sentinel (or the Cluster) has
 * promoted a replica that a new connection would reach.
 */
export class Publisher {
  readonly #options: PublisherOptions
  #stalled = false
  /** The PING in flight on a stalled link; its answer reopens it. */
  #canary: Promise<unknown> | undefined
  /** Runs out a further `timeoutMs` into a stall, then drops the connection. */
  #giveUp: NodeJS.Timeout | undefined
  /** Counts the client's connections: an answer on an older one says nothing of the current one. */
  #connection = 0
  readonly #onReady = (): void => {
    this.#connection++
    this.#stalled = false
    this.#canary = undefined
    clearTimeout(this.#giveUp)
  }

  constructor (options: PublisherOptions) {
    this.#options = options
    options.client.on('ready', this.#onReady)
  }

  /** Runs `send`, one command that publishes (PUBLISH, SPUBLISH, or a script that publishes), under the rules above. */
  publish<T> (send: () => Promise<T>): Promise<T> {
    const { client, timeoutMs } = this.#options
    // Not even handed to the client: a borrowed one would hold it in its offline queue and send it later.
    if (client.status !== 'ready') return Promise.reject(new FST_REALTIME_REDIS_UNAVAILABLE(`the Redis client is ${client.status}`))
    if (this.#stalled) {
      this.#checkLink()
      return Promise.reject(new FST_REALTIME_REDIS_UNAVAILABLE('Redis has not answered an earlier publish yet'))
    }
    const connection = this.#connection
    // Not an async function: one promise per publish, on the hot path.
    return new Promise<T>((resolve, reject) => {
      // Thrown here, it rejects the promise before any deadline is set.
      const answered = send()
      const timer = setTimeout(() => {
        if (connection === this.#connection && !this.#stalled) {
          this.#stalled = true
          this.#checkLink()
          // Without reconnect, ioredis keeps the connection; with it, a Sentinel client asks for the primary again.
          this.#giveUp = setTimeout(() => { this.#options.client.disconnect(true) }, timeoutMs).unref()
        }
        reject(new FST_REALTIME_OUTCOME_UNKNOWN(`Redis did not answer within ${timeoutMs} ms`))
      }, timeoutMs).unref()
      answered.then((reply) => {
        clearTimeout(timer)
        this.#answered(connection)
        resolve(reply)
      }, (error: Error) => {
        clearTimeout(timer)
        reject(writeFailure(error))
      })
    })
  }

  close (): void {
    this.#options.client.off('ready', this.#onReady)
    clearTimeout(this.#giveUp)
  }

  #answered (connection: number): void {
    if (connection !== this.#connection) return
    this.#stalled = false
    clearTimeout(this.#giveUp)
  }

  /** One PING at a time, queued behind the overdue commands: answered, they were too. */
  #checkLink (): void {
    if (this.#canary !== undefined) return
    const connection = this.#connection
    const canary = this.#options.client.ping()
    this.#canary = canary
    canary.then(() => this.#answered(connection), () => {}).finally(() => {
      if (this.#canary === canary) this.#canary = undefined
    })
  }
}
