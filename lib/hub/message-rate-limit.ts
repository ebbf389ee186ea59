import { monotonicMs, smallInteger } from './clock.js'

/**
 * A token bucket: `burst` at once, refilled at `perSecond`. Refilled lazily on
 * each take, so an idle socket costs nothing. Each socket has one for its
 * inbound messages (from its first message on); the handshake gate has one for
 * the node's handshakes.
 *
 * Counted in thousandths of a token over whole milliseconds, so that with a
 * whole `perSecond` every field is a small integer, stored in the object (a
 * fractional token count would be a separate 16-byte number per field).
 */
export class MessageRateLimit {
  /** Thousandths of a token. */
  readonly #capacity: number
  /** Thousandths of a token per millisecond: the rate per second. */
  readonly #perMs: number
  /** Thousandths of a token. */
  #tokens: number
  /** Whole ms of `performance.now()`. */
  #refilledAt: number
  #refusedInARow = 0

  constructor (burst: number, perSecond: number, now = monotonicMs()) {
    this.#capacity = smallInteger(burst * 1000)
    this.#perMs = smallInteger(perSecond)
    this.#tokens = this.#capacity
    this.#refilledAt = now
  }

  /** Takes one token; false when the bucket is empty. */
  take (now = monotonicMs()): boolean {
    this.#tokens = smallInteger(Math.min(this.#capacity, this.#tokens + (now - this.#refilledAt) * this.#perMs))
    this.#refilledAt = now
    if (this.#tokens < 1000) {
      this.#refusedInARow++
      return false
    }
    this.#tokens -= 1000
    this.#refusedInARow = 0
    return true
  }

  /** Messages refused since the last one taken (a flood closes the socket). */
  get refusedInARow (): number {
    return this.#refusedInARow
  }
}
