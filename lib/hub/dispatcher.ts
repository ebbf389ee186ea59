import type { Connection } from './connection.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { Outbox } from './outbox.js'

interface DeliveryJob {
  targets: Connection[]
  event: EncodedEvent
  /** Only targets still subscribed to this channel at send time get it (null: always). */
  channel: string | null
  next: number
  /** Increasing with every job queued: a socket brought up to date through it skips it (see #catchUp). */
  seq: number
}

type Job = DeliveryJob | (() => void)

/** At most this many queued recipients are looked through to write one socket ahead (about 25 µs). */
const CATCH_UP_SCAN_LIMIT = 100_000

/**
 * Fans events out in publish order without starving the event loop.
 *
 * Small deliveries go out synchronously. A turn of the event loop writes at
 * most `sliceSize` sockets (each in one write, however many events it got)
 * and `sliceBytes` bytes; the rest of a large
 * fan-out, or of a burst of publishes made within one turn, waits for the
 * next turns (`setImmediate`), so heartbeats, handshakes and readers keep
 * running, and what a burst holds in memory is bounded by a turn's worth.
 * Everything published meanwhile queues behind it, so each socket still sees
 * events in publish order; `then()` runs an action (a close after a forced
 * logout) once everything queued before it has been written.
 *
 * An event to one socket (a user's payment status) does not wait for a
 * fan-out to every other socket: while the turn's budget allows, that socket
 * is first written what the queue holds for it, in order, and then the
 * event, and the queued jobs skip it later. Only order per socket matters;
 * a queued action keeps everything behind it, so nothing overtakes a close.
 */
export class Dispatcher {
  readonly #outbox: Outbox
  readonly #sliceSize: number
  readonly #sliceBytes: number
  readonly #queue: Job[] = []
  /** Actions (closes) in the queue: while there is one, nothing is written ahead of it. */
  #queuedActions = 0
  #nextSeq = 0
  /** Sockets written ahead of the queue, with the last job they are up to date through; empty once it drains. */
  readonly #caughtUp = new Map<Connection, number>()
  #scheduled = false
  readonly #pump = (): void => this.#drain()

  readonly #onDelivered: (event: EncodedEvent) => void

  /** `onDelivered` runs once per event, when its last recipient has been written. */
  constructor (outbox: Outbox, slice: { sockets: number, bytes: number }, onDelivered: (event: EncodedEvent) => void) {
    this.#outbox = outbox
    this.#sliceSize = slice.sockets
    this.#sliceBytes = slice.bytes
    this.#onDelivered = onDelivered
  }

  deliver (targets: Connection[], event: EncodedEvent, channel: string | null): void {
    const fits = targets.length <= this.#sliceSize && this.#outbox.bytesThisTurn + targets.length * event.frame.length <= this.#sliceBytes
    if (this.#queue.length === 0 && fits) {
      // Targets chosen in this very tick are still subscribed: no check per recipient.
      const end = this.#sendAll(targets, event, null, 0, targets.length, -1)
      if (end === targets.length) {
        this.#onDelivered(event)
        return
      }
      // This turn wrote as many sockets as it may: the rest goes in the next ones.
      this.#enqueue({ targets, event, channel, next: end, seq: this.#nextSeq++ })
      return
    }
    const only = targets[0] as Connection
    if (targets.length === 1 && fits && this.#mayCatchUp(only)) {
      this.#catchUp(only)
      if (channel === null || only.subscriptions.includes(channel)) this.#outbox.send(only, event)
      this.#onDelivered(event)
      return
    }
    this.#enqueue({ targets, event, channel, next: 0, seq: this.#nextSeq++ })
  }

  /**
   * Whether `connection` may be written ahead of the queue: no action queued,
   * room in the turn's socket budget, and queued jobs small enough to look
   * through (a burst of fan-outs to every socket waits its turn instead).
   */
  #mayCatchUp (connection: Connection): boolean {
    if (this.#queuedActions > 0 || !this.#mayWrite(connection)) return false
    let remaining = 0
    for (const job of this.#queue as DeliveryJob[]) remaining += job.targets.length - job.next
    return remaining <= CATCH_UP_SCAN_LIMIT
  }

  /** Whether the turn's socket budget lets `connection` be written (one already written this turn takes more). */
  #mayWrite (connection: Connection): boolean {
    return connection.corked || this.#outbox.socketsThisTurn < this.#sliceSize
  }

  /** Writes `connection` what the queued jobs (no action among them) hold for it, in order; they skip it when they reach it. */
  #catchUp (connection: Connection): void {
    let through = this.#caughtUp.get(connection) ?? -1
    for (const job of this.#queue as DeliveryJob[]) {
      if (job.seq <= through) continue
      through = job.seq
      if (job.targets.indexOf(connection, job.next) === -1) continue
      if (job.channel === null || connection.subscriptions.includes(job.channel)) this.#outbox.send(connection, job.event)
    }
    this.#caughtUp.set(connection, through)
  }

  then (action: () => void): void {
    if (this.#queue.length === 0) {
      action()
      return
    }
    this.#queuedActions++
    this.#enqueue(action)
  }

  #enqueue (job: Job): void {
    this.#queue.push(job)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#pump)
    }
  }

  #drain (): void {
    this.#scheduled = false
    while (this.#queue.length > 0) {
      const job = this.#queue[0]
      if (typeof job === 'function') {
        this.#queue.shift()
        this.#queuedActions--
        job()
        continue
      }
      const written = this.#outbox.bytesThisTurn
      // A turn writes at least one socket, so an event larger than the byte slice still goes out.
      const fitting = Math.max(Math.floor((this.#sliceBytes - written) / job.event.frame.length), written === 0 ? 1 : 0)
      if (fitting <= 0) break
      const end = this.#sendAll(job.targets, job.event, job.channel, job.next, Math.min(job.targets.length, job.next + fitting), job.seq)
      job.next = end
      if (end < job.targets.length) break
      this.#queue.shift()
      this.#onDelivered(job.event)
    }
    this.#outbox.flush()
    if (this.#queue.length > 0) {
      this.#scheduled = true
      setImmediate(this.#pump)
    } else {
      this.#caughtUp.clear()
    }
  }

  /**
   * Sends to `targets[from, to)`; returns where it stopped. The socket budget
   * counts sockets, not deliveries: a socket already written this turn takes
   * more frames into the same write, so a burst of events to the same sockets
   * goes out many events per turn (bounded by bytes), while a large fan-out
   * stops at `sliceSize` sockets. A socket caught up through job `seq` (or
   * a later one) already has the event.
   */
  #sendAll (targets: Connection[], event: EncodedEvent, channel: string | null, from: number, to: number, seq: number): number {
    const caughtUp = this.#caughtUp.size === 0 ? undefined : this.#caughtUp
    for (let index = from; index < to; index++) {
      const connection = targets[index] as Connection
      if (!this.#mayWrite(connection)) return index
      if (caughtUp !== undefined && (caughtUp.get(connection) ?? -1) >= seq) continue
      if (channel === null || connection.subscriptions.includes(channel)) this.#outbox.send(connection, event)
    }
    return to
  }
}
