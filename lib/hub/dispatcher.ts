import type { Connection } from './connection.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { Outbox } from './outbox.js'

interface DeliveryJob {
  targets: Connection[]
  event: EncodedEvent
  /** Only targets still subscribed to this channel at send time get it (null: always). */
  channel: string | null
  next: number
  /** Increasing with every job queued: a socket written ahead of the queue through it skips it (see #writeAhead). */
  seq: number
}

type Job = DeliveryJob | (() => void)

/**
 * How many queued recipients are looked through to write one socket ahead
 * of the queue (see Dispatcher), about 30 µs here: behind a burst of
 * fan-outs to every socket, an event to one socket waits its turn instead.
 */
const CATCH_UP_SCAN_LIMIT = 100_000

/**
 * How many queued recipients one turn of the event loop looks through in
 * all to write sockets ahead, about 0.3 ms here: against a turn's slice of
 * writes (2,000 sockets, over 10 ms), little, and room for dozens of events
 * to single users during a fan-out to 15,000 sockets (one look through the
 * queue each). Past it, the next event to one socket waits its turn.
 */
const CATCH_UP_TURN_LIMIT = 1_000_000

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
 * fan-out to every other socket: while the budgets allow (the turn's
 * sockets and bytes, CATCH_UP_SCAN_LIMIT, CATCH_UP_TURN_LIMIT), that socket
 * is first written what the queue holds for it, in order, and then the
 * event, and the queued jobs skip it later (`Connection.caughtUpThrough`).
 * Only order per socket matters; a queued action keeps everything behind it,
 * so nothing overtakes a close.
 */
export class Dispatcher {
  readonly #outbox: Outbox
  readonly #sliceSize: number
  readonly #sliceBytes: number
  readonly #queue: Job[] = []
  /** Actions (closes) in the queue: while there is one, nothing is written ahead of it. */
  #queuedActions = 0
  /** Recipients the queued jobs have yet to write. */
  #queuedRecipients = 0
  /** Queued recipients looked through this turn to write sockets ahead (reset when the turn ends). */
  #scannedThisTurn = 0
  readonly #endScanTurn = (): void => { this.#scannedThisTurn = 0 }
  /** The sequence number of the next job queued. */
  #nextSeq = 0
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
      // Targets chosen in this very tick are still subscribed: no check per recipient. It comes
      // after every queued job, as the job it becomes if it does not fit this turn.
      const end = this.#sendAll(targets, event, null, 0, targets.length, this.#nextSeq)
      if (end === targets.length) {
        this.#onDelivered(event)
        return
      }
      // This turn wrote as many sockets as it may: the rest goes in the next ones.
      this.#enqueue({ targets, event, channel, next: end, seq: this.#nextSeq++ })
      return
    }
    if (targets.length === 1 && fits && this.#writeAhead(targets[0] as Connection, event, channel)) return
    this.#enqueue({ targets, event, channel, next: 0, seq: this.#nextSeq++ })
  }

  /** Whether the turn's socket budget lets `connection` be written (one already written this turn takes more). */
  #mayWrite (connection: Connection): boolean {
    return connection.writtenThisTurn || this.#outbox.socketsThisTurn < this.#sliceSize
  }

  /**
   * Writes `event` to `connection` ahead of the queue: first what the queued
   * jobs hold for it, in order; they skip it when they reach it. False, and
   * nothing written, while an action is queued or where the turn's budgets
   * (sockets, bytes, recipients looked through) do not allow it.
   */
  #writeAhead (connection: Connection, event: EncodedEvent, channel: string | null): boolean {
    if (this.#queuedActions > 0 || !this.#mayWrite(connection)) return false
    const scan = this.#queuedRecipients + this.#queue.length
    if (scan > CATCH_UP_SCAN_LIMIT || this.#scannedThisTurn + scan > CATCH_UP_TURN_LIMIT) return false
    if (this.#scannedThisTurn === 0) process.nextTick(this.#endScanTurn)
    this.#scannedThisTurn += scan
    const due: EncodedEvent[] = []
    let bytes = event.frame.length
    // No action is queued (checked above): every job is a delivery.
    for (const job of this.#queue as DeliveryJob[]) {
      if (job.seq <= connection.caughtUpThrough || job.targets.indexOf(connection, job.next) === -1) continue
      if (!wants(connection, job.channel)) continue
      due.push(job.event)
      bytes += job.event.frame.length
    }
    if (this.#outbox.bytesThisTurn + bytes > this.#sliceBytes) return false
    for (const queued of due) this.#outbox.send(connection, queued)
    connection.caughtUpThrough = this.#nextSeq - 1
    if (wants(connection, channel)) this.#outbox.send(connection, event)
    this.#onDelivered(event)
    return true
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
    if (typeof job !== 'function') this.#queuedRecipients += job.targets.length - job.next
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
      this.#queuedRecipients -= end - job.next
      job.next = end
      if (end < job.targets.length) break
      this.#queue.shift()
      this.#onDelivered(job.event)
    }
    this.#outbox.flush()
    if (this.#queue.length > 0) {
      this.#scheduled = true
      setImmediate(this.#pump)
    }
  }

  /**
   * Sends to `targets[from, to)`; returns where it stopped. The socket budget
   * counts sockets, not deliveries: a socket already written this turn takes
   * more frames into the same write, so a burst of events to the same sockets
   * goes out many events per turn (bounded by bytes), while a large fan-out
   * stops at `sliceSize` sockets. A socket written ahead through job `seq`
   * (or a later one) already has the event.
   */
  #sendAll (targets: Connection[], event: EncodedEvent, channel: string | null, from: number, to: number, seq: number): number {
    for (let index = from; index < to; index++) {
      const connection = targets[index] as Connection
      if (!this.#mayWrite(connection)) return index
      if (connection.caughtUpThrough >= seq) continue
      if (wants(connection, channel)) this.#outbox.send(connection, event)
    }
    return to
  }
}

/** Whether `connection` takes an event of `channel` now (null: always; else while it is subscribed). */
function wants (connection: Connection, channel: string | null): boolean {
  return channel === null || connection.subscriptions.includes(channel)
}
