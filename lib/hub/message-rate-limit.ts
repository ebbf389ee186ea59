/**
 * A token bucket: `burst` at once, refilled at `perSecond`. Refilled lazily on
 * each take, so an idle socket costs nothing. Each socket has one for its
 * inbound messages; the handshake gate has one for the node's handshakes.
 */
export class MessageRateLimit {
  readonly #capacity: number
  readonly #perMs: number
  #tokens: number
  #refilledAt: number
  #refusedInARow = 0

  constructor (burst: number, perSecond: number, now = performance.now()) {
    this.#capacity = burst
    this.#perMs = perSecond / 1000
    this.#tokens = burst
    this.#refilledAt = now
  }

  /** Takes one token; false when the bucket is empty. */
  take (now = performance.now()): boolean {
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#refilledAt) * this.#perMs)
    this.#refilledAt = now
    if (this.#tokens < 1) {
      this.#refusedInARow++
      return false
    }
    this.#tokens -= 1
    this.#refusedInARow = 0
    return true
  }

  /** Messages refused since the last one taken (a flood closes the socket). */
  get refusedInARow (): number {
    return this.#refusedInARow
  }
}
