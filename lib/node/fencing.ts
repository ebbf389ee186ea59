import type { FastifyBaseLogger } from 'fastify'
import { Disconnect } from '../constants.js'
import type { Connection } from '../hub/connection.js'
import type { Hub } from '../hub/hub.js'
import type { Generations } from './generations.js'

export interface FencingOptions {
  generations: Generations
  hub: Hub
  /** Resolves once this node receives the user's pub/sub channel. */
  listen: (userId: string) => Promise<void>
  announce: (userId: string, generation: number) => Promise<void>
  log: FastifyBaseLogger
}

/**
 * One socket per user across nodes. Every connection claims a generation from
 * Redis as soon as it is accepted, while its node starts listening on the
 * user's channel; once listening, it reads the stored generation again (a newer
 * claim announced before it listened went unheard) and announces its own. A
 * node holding an older generation closes that socket with 4500. A socket
 * takes its generation back when it closes (one that had not announced yet
 * puts back the generation it replaced), so a claim that replaced none finds
 * no other socket of the user open and announces nothing: a connect after a
 * clean close costs no publish. Pub/sub is at-most-once (and a
 * crashed node takes back nothing, which only costs an announcement), so
 * `repair()` (run periodically) compares every local socket with the stored
 * generation and repairs a lost announcement.
 */
export class Fencing {
  readonly #options: FencingOptions
  /** Newest generation announced for a user whose local socket is still claiming. */
  readonly #announcedWhileClaiming = new Map<string, number>()
  /** Sockets claiming, with the generation their claim replaced (0: none, or not answered yet). */
  readonly #claiming = new WeakMap<Connection, number>()

  constructor (options: FencingOptions) {
    this.#options = options
  }

  async claim (connection: Connection): Promise<void> {
    const { hub, generations } = this.#options
    if (this.#claiming.has(connection)) return
    this.#claiming.set(connection, 0)
    try {
      // Claimed at once, in parallel with listening: generations must follow the
      // order in which connections came, and a claim that waited for the
      // subscription could land after a newer connection's and replace it.
      // The same wait the hub holds the socket's `connected` on: the broker answers both with one promise.
      const listening = this.#options.listen(connection.userId)
      listening.catch(() => {})
      const { generation, replaced } = await generations.claim(connection.userId)
      if (connection.closed) {
        // Closed before it had a generation to take back (see closed()).
        await this.#release(connection.userId, generation, replaced)
        return
      }
      this.#claiming.set(connection, replaced)
      connection.claimed(generation)
      if (this.#outbid(connection, generation)) return
      await listening
      // A newer claim announced before this node listened went unheard; it is in Redis.
      const stored = await generations.stored(connection.userId)
      // Closed meanwhile: its close took the generation back.
      if (connection.closed) return
      if (stored > generation) {
        hub.close(connection, Disconnect.REPLACED)
        return
      }
      if (replaced > 0) await this.#options.announce(connection.userId, generation)
    } catch (error) {
      // The periodic check claims again; the socket stays (an outage closes no socket).
      this.#options.log.warn({ err: error, connectionId: connection.id }, 'fastify-realtime: generation claim failed')
    } finally {
      this.#claiming.delete(connection)
    }
  }

  /**
   * A socket left this node: its generation goes, unless a newer claim
   * replaced it; one that had not announced yet puts back the generation it
   * replaced (that older socket may still be open elsewhere). A socket still
   * claiming takes it back once the claim answers.
   */
  closed (connection: Connection): void {
    if (connection.generation !== undefined) this.#release(connection.userId, connection.generation, this.#claiming.get(connection) ?? 0).catch(() => {})
    if (this.#options.hub.connections.forUser(connection.userId) === undefined) this.#announcedWhileClaiming.delete(connection.userId)
  }

  /** Whether a newer generation was announced while this socket was claiming (it then closes). */
  #outbid (connection: Connection, generation: number): boolean {
    const announced = this.#announcedWhileClaiming.get(connection.userId) ?? 0
    this.#announcedWhileClaiming.delete(connection.userId)
    if (announced <= generation) return false
    this.#options.hub.close(connection, Disconnect.REPLACED)
    return true
  }

  /**
   * A closed socket's generation must not stand: it may have landed after the
   * one of the user's newer socket, and would make every later claim announce.
   */
  async #release (userId: string, generation: number, replaced: number): Promise<void> {
    await this.#options.generations.release(userId, generation, replaced).catch((error: Error) => {
      this.#options.log.debug({ err: error }, 'fastify-realtime: generation release failed')
    })
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

  /**
   * Repairs lost announcements: closes local sockets older than the stored
   * generation, claims for those without one, and stores again the generation
   * of a socket whose key is gone or older (it outlived the key's TTL, or Redis
   * came back empty or from a replica behind): a claim elsewhere would
   * otherwise find none and not announce, and an older socket's generation,
   * stored again first, would stand over the newer one's.
   */
  async repair (): Promise<void> {
    const { hub, generations } = this.#options
    const connections = [...hub.connections]
    await Promise.all(connections.map(async (connection) => {
      const stored = await generations.stored(connection.userId)
      // A claim still in flight answers for its socket: the stored generation may be that very claim.
      if (this.#claiming.has(connection)) return
      if (connection.generation === undefined) {
        // Its first claim failed. A generation claimed after this socket connected
        // (generations are Redis time in µs) belongs to a newer connection.
        if (stored > connection.connectedAt * 1000) hub.close(connection, Disconnect.REPLACED)
        else await this.claim(connection)
        return
      }
      if (connection.closed) return
      if (stored > connection.generation) hub.close(connection, Disconnect.REPLACED)
      else if (stored < connection.generation) await generations.raise(connection.userId, connection.generation)
    }))
  }
}
