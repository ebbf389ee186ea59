import type { Resolution } from '../tokens/resolve-with-deadline.js'
import type { Connection } from './connection.js'

const CONCURRENCY = 100

/**
 * The second path of revocation. `tokens.revoke` closes sockets through a
 * message, which pub/sub may lose, and a backend may revoke by deleting the
 * key or writing `"revoked": true` itself. So every `intervalMs` the token of
 * every local socket is resolved again; an unknown or revoked one closes its
 * socket with 4501. A store that does not answer closes nothing (an outage
 * must not look like a logout).
 */
export class TokenRecheck {
  readonly #timer: NodeJS.Timeout | undefined
  #running = false

  constructor (
    intervalMs: number,
    readonly connections: () => Iterable<Connection>,
    /** Resolves the socket's token again: by its hash where the store can, by the token it kept otherwise. */
    readonly resolve: (connection: Connection) => Promise<Resolution>,
    readonly onRevoked: (connection: Connection) => void
  ) {
    if (intervalMs > 0) this.#timer = setInterval(() => { this.#sweep() }, intervalMs).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  async #sweep (): Promise<void> {
    // A slow store must not stack sweeps on top of each other.
    if (this.#running) return
    this.#running = true
    const pending = [...this.connections()]
    for (let start = 0; start < pending.length; start += CONCURRENCY) {
      await Promise.all(pending.slice(start, start + CONCURRENCY).map(async (connection) => {
        const { tokenDigest } = connection
        const resolution = await this.resolve(connection)
        // An expired token is the expiry wheel's to close (4005), not a revocation; and a
        // socket that refreshed its token meanwhile (a new digest) answers for the new one, not this one.
        const expired = connection.expiresAt * 1000 <= Date.now()
        if (resolution.outcome === 'invalid' && !expired && !connection.closed && connection.tokenDigest === tokenDigest) this.onRevoked(connection)
      }))
    }
    this.#running = false
  }
}
