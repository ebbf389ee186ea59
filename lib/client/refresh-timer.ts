/** setTimeout fires at once for delays past 2^31 − 1 ms (a token valid for a month). */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * When to refresh the token in place: a third of the time left before
 * `expires_at` ahead (at most a minute ahead), and after a failed refresh,
 * halfway to the expiry. Past it, the server closes with 4005 and the client
 * reconnects with a new token.
 */
export class RefreshTimer {
  readonly #now: () => number
  readonly #refresh: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  #expiresAt = 0

  constructor (now: () => number, refresh: () => void) {
    this.#now = now
    this.#refresh = refresh
  }

  /** After `connected` or `refreshed`: `expiresAt` in unix seconds. */
  schedule (expiresAt: number): void {
    this.#expiresAt = expiresAt
    const left = expiresAt * 1000 - this.#now()
    this.#start(left - Math.min(60_000, left / 3))
  }

  /** After a refresh that failed (refused, store unavailable, getToken threw). */
  retry (): void {
    const left = this.#expiresAt * 1000 - this.#now()
    if (left > 1000) this.#start(left / 2)
  }

  cancel (): void {
    clearTimeout(this.#timer)
  }

  #start (delayMs: number): void {
    this.cancel()
    this.#timer = setTimeout(this.#refresh, Math.min(MAX_TIMER_MS, Math.max(0, delayMs)))
  }
}
