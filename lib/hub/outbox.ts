import type { Socket } from 'node:net'
import { WebSocket } from 'ws'
import type { Connection } from './connection.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { GatewayStats } from '../stats.js'

export interface OutboxOptions {
  /** A socket with more unsent bytes than this, left from an earlier turn of the event loop, is a slow consumer. */
  maxBufferedBytes: number
  /** Called once for a slow consumer; it must take the connection out and terminate it. */
  onSlowConsumer: (connection: Connection) => void
  stats: GatewayStats
}

/**
 * Writes encoded events to sockets, cheaply and with bounded memory.
 *
 * - The frame is built once per event; each recipient gets the same Buffer
 *   (a socket sent several in one tick gets a copy of them, in one buffer).
 * - Frames to one socket within a tick are kept on the connection and leave
 *   in one write when the tick ends (concatenated when there are several):
 *   the syscall, not JSON, is most of a delivery's cost. They are not corked
 *   into the TCP socket: its stream would keep a request object per frame
 *   and build a `writev` of them, which costs more than copying small frames
 *   into one buffer, and a socket that gets one frame goes straight to its
 *   write. A close the hub starts writes the socket's frames first
 *   (`writeOut`); a socket that `ws` closed meanwhile (the peer's close
 *   frame, a frame it refused) or terminated takes nothing after its close
 *   frame: those frames are dropped and counted.
 * - A slow consumer is a socket whose peer does not read: bytes still unsent
 *   from an earlier turn (the kernel would not take them) over the cap. It is
 *   cut off at its next write rather than buffered without bound. Bytes
 *   written in the current turn do not count: a healthy reader may be sent a
 *   burst larger than the cap in one turn (the dispatcher bounds a turn's bytes).
 */
export class Outbox {
  readonly #maxBufferedBytes: number
  readonly #onSlowConsumer: (connection: Connection) => void
  readonly #stats: GatewayStats
  /** Connections with frames written this turn (`Connection.outgoing`). */
  #written: Connection[] = []
  #bytesThisTurn = 0
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
    const held = connection.held
    if (held !== undefined) {
      // `connected` has not gone out: it must be the first message, these follow it.
      held.events.push(event)
      held.bytes += event.frame.length
      if (held.bytes > this.#maxBufferedBytes) {
        this.#stats.dropped++
        this.#onSlowConsumer(connection)
        return false
      }
      return true
    }
    // History on: an event this socket already has on its channel (live and replayed), or from before its position, is not sent again.
    if (event.position !== undefined && connection.positions?.take(event.position) === false) return false
    const transport = connection.transport
    const outgoing = connection.outgoing
    // Checked at the first write of a turn: what is unsent then was written in an earlier one.
    if (outgoing === undefined && connection.bufferedBytes > this.#maxBufferedBytes) {
      this.#stats.dropped++
      this.#onSlowConsumer(connection)
      return false
    }
    if (transport === undefined) {
      connection.socket.send(event.payload)
    } else if (outgoing === undefined) {
      connection.outgoing = event.frame
      if (this.#written.push(connection) === 1) process.nextTick(this.#flush)
    } else if (Array.isArray(outgoing)) {
      outgoing.push(event.frame)
    } else {
      connection.outgoing = [outgoing, event.frame]
    }
    this.#bytesThisTurn += event.frame.length
    connection.countOut()
    this.#stats.messagesOut++
    return true
  }

  /** Holds what is sent to `connection` until `release` (its `connected` has not gone out). */
  hold (connection: Connection): void {
    if (connection.held === undefined) connection.hold(true)
  }

  /**
   * Lets what was held for `connection` go out, after `first` (its
   * `connected` or `subscribed`, and a replay); `between` runs before the
   * held events go (it places the socket's stream positions); only the held
   * events `keep` accepts go.
   */
  release (connection: Connection, first: EncodedEvent[], between?: () => void, keep?: (event: EncodedEvent) => boolean): void {
    const held = connection.hold(false)
    for (const event of first) this.send(connection, event)
    between?.()
    for (const event of held) if (keep === undefined || keep(event)) this.send(connection, event)
  }

  /** Sockets written to since the last flush: each costs a write syscall at the flush, however many frames it got. */
  get socketsThisTurn (): number {
    return this.#written.length
  }

  /** Frame bytes written since the last flush (this turn of the event loop). */
  get bytesThisTurn (): number {
    return this.#bytesThisTurn
  }

  /** Hands every socket written to since the last flush its frames, in one write each. */
  flush (): void {
    this.#bytesThisTurn = 0
    const written = this.#written
    if (written.length === 0) return
    this.#written = []
    for (const connection of written) this.writeOut(connection)
  }

  /**
   * Hands the frames written to `connection` this turn to its TCP socket now:
   * before the hub closes it, so its close frame follows them.
   */
  writeOut (connection: Connection): void {
    const outgoing = connection.outgoing
    if (outgoing === undefined) return
    connection.outgoing = undefined
    if (connection.socket.readyState !== WebSocket.OPEN) {
      // Closed by `ws` since (or terminated): nothing may follow its close frame.
      const frames = Array.isArray(outgoing) ? outgoing.length : 1
      this.#stats.messagesOut -= frames
      this.#stats.dropped += frames
      return
    }
    (connection.transport as Socket).write(Array.isArray(outgoing) ? Buffer.concat(outgoing) : outgoing)
  }
}
