import type { FastifyBaseLogger } from 'fastify'
import { Disconnect } from '../constants.js'
import type { Connection } from '../hub/connection.js'
import type { Hub } from '../hub/hub.js'
import type { RedisClient } from '../redis/client.js'

/**
 * The newest generation for a user: greater than the stored one and than the
 * Redis server's clock in microseconds, so it keeps growing even after the key
 * expired. Formatted with %.0f because Lua would print a large number in
 * exponent form and lose digits.
 */
const CLAIM_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = redis.call('TIME')
local generation = math.max(current + 1, tonumber(now[1]) * 1000000 + tonumber(now[2]))
redis.call('SET', KEYS[1], string.format('%.0f', generation), 'PX', ARGV[1])
return generation
`

const GENERATION_TTL_MS = 24 * 60 * 60 * 1000

export interface FencingOptions {
  redis: RedisClient
  keyPrefix: string
  hub: Hub
  /** Resolves once this node receives the user's pub/sub channel. */
  listen: (userId: string) => Promise<void>
  announce: (userId: string, generation: number) => Promise<void>
  log: FastifyBaseLogger
}

/**
 * One socket per user across nodes. Every connection claims a generation from
 * Redis after its node listens on the user's channel, then announces it; a node
 * holding an older generation closes that socket with 4500. Because each node
 * listens before it claims, every newer claim's announcement reaches it. Pub/sub
 * is at-most-once, so `repair()` (run periodically) compares every local socket
 * with the stored generation and repairs a lost announcement.
 */
export class Fencing {
  readonly #options: FencingOptions
  /** Newest generation announced for a user whose local socket is still claiming. */
  readonly #announcedWhileClaiming = new Map<string, number>()
  readonly #claiming = new WeakSet<Connection>()

  constructor (options: FencingOptions) {
    this.#options = options
  }

  #key (userId: string): string {
    return `${this.#options.keyPrefix}gen:${userId}`
  }

  async claim (connection: Connection): Promise<void> {
    const { hub, redis } = this.#options
    if (this.#claiming.has(connection)) return
    this.#claiming.add(connection)
    try {
      await this.#options.listen(connection.userId)
      // A socket that closed meanwhile must not claim: its claim would beat its own replacement.
      if (connection.closed) return
      const generation = Number(await redis.eval(CLAIM_SCRIPT, 1, this.#key(connection.userId), GENERATION_TTL_MS))
      if (connection.closed) return
      connection.claimed(generation)
      const announced = this.#announcedWhileClaiming.get(connection.userId) ?? 0
      this.#announcedWhileClaiming.delete(connection.userId)
      if (announced > generation) {
        hub.close(connection, Disconnect.REPLACED)
        return
      }
      await this.#options.announce(connection.userId, generation)
    } catch (error) {
      // The periodic check claims again; the socket stays (an outage closes no socket).
      this.#options.log.warn({ err: error, connectionId: connection.id }, 'fastify-realtime: generation claim failed')
    } finally {
      this.#claiming.delete(connection)
    }
  }

  /** Another node (or this one) claimed `generation` for `userId`. */
  onAnnounced (userId: string, generation: number): void {
    const connection = this.#options.hub.connections.forUser(userId)
    if (connection === undefined) return
    if (connection.generation === undefined) {
      this.#announcedWhileClaiming.set(userId, Math.max(generation, this.#announcedWhileClaiming.get(userId) ?? 0))
    } else if (connection.generation < generation) {
      this.#options.hub.close(connection, Disconnect.REPLACED)
    }
  }

  forget (userId: string): void {
    this.#announcedWhileClaiming.delete(userId)
  }

  /** Repairs lost announcements: closes local sockets older than the stored generation, claims for those without one. */
  async repair (): Promise<void> {
    const { hub, redis } = this.#options
    const connections = [...hub.connections]
    await Promise.all(connections.map(async (connection) => {
      const stored = Number(await redis.get(this.#key(connection.userId)))
      if (connection.generation === undefined) {
        // Its first claim failed. A generation claimed after this socket connected
        // (generations are Redis time in µs) belongs to a newer connection.
        if (stored > connection.connectedAt * 1000) hub.close(connection, Disconnect.REPLACED)
        else await this.claim(connection)
        return
      }
      if (stored > connection.generation && !connection.closed) {
        hub.close(connection, Disconnect.REPLACED)
      }
    }))
  }
}
