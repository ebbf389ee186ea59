import { formatId, type EventPosition, type StreamPosition } from '../protocol/recovery.js'

const NONE: readonly EventPosition[] = []

/** At most this many awaited events per socket; the oldest give way (their publishers time out). */
const MAX_AWAITED = 1024

/**
 * History on: what one socket has of each stream. Per channel, the position
 * after which its next event follows (the last one sent, or the position it
 * was given), so an event that reaches the socket twice (live and in a
 * replay) goes out once, and one from before its position not at all; the
 * last acknowledged id; and the sent events whose publisher awaits an ack.
 * Events of one stream reach a node in stream order, so comparing offsets
 * within an epoch is enough.
 */
export class StreamPositions {
  readonly #next = new Map<string, StreamPosition>()
  readonly #acked = new Map<string, StreamPosition>()
  #awaited: EventPosition[] = []
  #userTop: StreamPosition | undefined

  /** Outbox: true if the event is new on its channel for this socket, and records it as sent. */
  take (event: EventPosition): boolean {
    const last = this.#next.get(event.channel)
    if (last !== undefined && last.epoch === event.epoch && event.offset <= last.offset) return false
    this.#next.set(event.channel, event)
    if (event.ackNode !== '') {
      if (this.#awaited.push(event) > MAX_AWAITED) this.#awaited.shift()
    }
    return true
  }

  /** The socket's position on `channel`: live events after it follow. */
  place (channel: string, position: StreamPosition): void {
    this.#next.set(channel, position)
  }

  positionOf (channel: string): StreamPosition | undefined {
    return this.#next.get(channel)
  }

  /** Unsubscribed: nothing more of the channel is sent, awaited or acked. */
  forget (channel: string): void {
    this.#next.delete(channel)
    this.#acked.delete(channel)
    this.#awaited = this.#awaited.filter((event) => event.channel !== channel)
  }

  /** The newest position of the user's stream this socket's node has seen (from a read, or a live event on any of its channels). */
  get userTop (): StreamPosition | undefined {
    return this.#userTop
  }

  noteUserTop (position: StreamPosition): void {
    this.#userTop = newer(this.#userTop, position)
  }

  /** Events may have been missed: the next subscribe reads the user's stream again. */
  forgetUserTop (): void {
    this.#userTop = undefined
  }

  /**
   * A cumulative ack of everything up to `position` on `channel`. Ignored
   * (returns nothing) unless the socket was sent that far on the channel;
   * otherwise returns the awaited events it acknowledges.
   */
  ack (channel: string, position: StreamPosition): readonly EventPosition[] {
    const sent = this.#next.get(channel)
    if (sent === undefined || sent.epoch !== position.epoch || position.offset > sent.offset) return NONE
    const acked = this.#acked.get(channel)
    if (acked !== undefined && acked.epoch === position.epoch && acked.offset >= position.offset) return NONE
    this.#acked.set(channel, position)
    // The usual case, acks at every event with nobody awaiting them: nothing to scan or allocate.
    if (this.#awaited.length === 0) return NONE
    const done: EventPosition[] = []
    const left: EventPosition[] = []
    for (const event of this.#awaited) {
      if (event.channel === channel && event.epoch === position.epoch && event.offset <= position.offset) done.push(event)
      else left.push(event)
    }
    this.#awaited = left
    return done
  }

  /** The last acknowledged id per channel (diagnostics). */
  acked (): Record<string, string> {
    return Object.fromEntries(Array.from(this.#acked, ([channel, position]) => [channel, formatId(position)]))
  }
}

/** The later of two positions of one stream; a position of another epoch replaces the old one. */
export function newer (current: StreamPosition | undefined, position: StreamPosition): StreamPosition {
  if (current === undefined || current.epoch !== position.epoch || position.offset > current.offset) return position
  return current
}
