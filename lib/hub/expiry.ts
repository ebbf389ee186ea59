import type { Connection } from './connection.js'

const TICK_MS = 1000

/**
 * Closes sockets whose access token expires while they are connected. Sockets
 * are bucketed by expiry second and one timer looks at the due buckets once a
 * second, so the cost is per expiry, not per socket per tick.
 */
export class ExpiryWheel {
  readonly #buckets = new Map<number, Set<Connection>>()
  readonly #timer: NodeJS.Timeout
  readonly #onExpired: (connection: Connection) => void
  #checkedUpTo = Math.floor(Date.now() / 1000)

  constructor (onExpired: (connection: Connection) => void) {
    this.#onExpired = onExpired
    this.#timer = setInterval(() => this.#tick(), TICK_MS).unref()
  }

  add (connection: Connection): void {
    // Whole seconds: a backend may store a fractional expiry (time.time() + ttl).
    const second = Math.max(Math.ceil(connection.expiresAt), this.#checkedUpTo + 1)
    connection.placeInExpiryBucket(second)
    const bucket = this.#buckets.get(second)
    if (bucket === undefined) this.#buckets.set(second, new Set([connection]))
    else bucket.add(connection)
  }

  remove (connection: Connection): void {
    const second = connection.expiryBucket
    const bucket = this.#buckets.get(second)
    bucket?.delete(connection)
    if (bucket?.size === 0) this.#buckets.delete(second)
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  #tick (): void {
    const now = Math.floor(Date.now() / 1000)
    for (let second = this.#checkedUpTo + 1; second <= now; second++) {
      const bucket = this.#buckets.get(second)
      if (bucket === undefined) continue
      this.#buckets.delete(second)
      for (const connection of bucket) this.#onExpired(connection)
    }
    this.#checkedUpTo = now
  }
}
