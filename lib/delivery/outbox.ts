import { WebSocket } from 'ws'
import type { Connection } from '../connection/connection.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { GatewayStats } from '../stats.js'

export interface OutboxOptions {
  /** A socket with more unsent bytes than this is a slow consumer. */
  maxBufferedBytes: number
  /** Called once for a slow consumer; it must take the connection out and terminate it. */
  onSlowConsumer: (connection: Connection) => void
  stats: GatewayStats
}

/**
 * Writes encoded events to sockets, cheaply and with bounded memory.
 *
 * - The frame is built once per event; each recipient gets the same Buffer.
 * - Writes to one socket within a tick are corked and leave in one `writev`
 *   when the tick ends: the syscall, not JSON, is most of a delivery's cost.
 * - A socket whose unsent bytes would pass the cap is cut off at once rather
 *   than buffered without bound.
 */
export class Outbox {
  readonly #maxBufferedBytes: number
  readonly #onSlowConsumer: (connection: Connection) => void
  readonly #stats: GatewayStats
  #corked: Connection[] = []
  readonly #flush = (): void => this.flush()

  constructor (options: OutboxOptions) {
    this.#maxBufferedBytes = options.maxBufferedBytes
    this.#onSlowConsumer = options.onSlowConsumer
    this.#stats = options.stats
  }

  /** Queues `event` for `connection`; false if the connection is gone or was cut off. */
  send (connection: Connection, event: EncodedEvent): boolean {
    // Closing sockets (ours or the peer's close frame) take nothing more after their close frame.
    if (connection.socket.readyState !== WebSocket.OPEN) {
      this.#stats.dropped++
      return false
    }
    if (connection.bufferedBytes + event.frame.length > this.#maxBufferedBytes) {
      this.#stats.dropped++
      this.#onSlowConsumer(connection)
      return false
    }
    const transport = connection.transport
    if (transport === undefined) {
      connection.socket.send(event.payload)
    } else {
      if (!connection.corked) {
        connection.corked = true
        transport.cork()
        if (this.#corked.push(connection) === 1) process.nextTick(this.#flush)
      }
      transport.write(event.frame)
    }
    connection.messagesOut++
    this.#stats.messagesOut++
    return true
  }

  /** Uncorks every socket written to since the last flush. */
  flush (): void {
    const corked = this.#corked
    if (corked.length === 0) return
    this.#corked = []
    for (const connection of corked) {
      connection.corked = false
      connection.transport?.uncork()
    }
  }
}
