import type { Connection } from './connection.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { Outbox } from './outbox.js'

interface DeliveryJob {
  targets: Connection[]
  event: EncodedEvent
  /** Only targets still subscribed to this channel at send time get it (null: always). */
  channel: string | null
  next: number
}

type Job = DeliveryJob | (() => void)

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
 */
export class Dispatcher {
  readonly #outbox: Outbox
  readonly #sliceSize: number
  readonly #sliceBytes: number
  readonly #queue: Job[] = []
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
      const end = this.#sendAll(targets, event, null, 0, targets.length)
      if (end === targets.length) {
        this.#onDelivered(event)
        return
      }
      // This turn wrote as many sockets as it may: the rest goes in the next ones.
      this.#enqueue({ targets, event, channel, next: end })
      return
    }
    this.#enqueue({ targets, event, channel, next: 0 })
  }

  then (action: () => void): void {
    if (this.#queue.length === 0) action()
    else this.#enqueue(action)
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
        job()
        continue
      }
      const written = this.#outbox.bytesThisTurn
      // A turn writes at least one socket, so an event larger than the byte slice still goes out.
      const fitting = Math.max(Math.floor((this.#sliceBytes - written) / job.event.frame.length), written === 0 ? 1 : 0)
      if (fitting <= 0) break
      const end = this.#sendAll(job.targets, job.event, job.channel, job.next, Math.min(job.targets.length, job.next + fitting))
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
   * stops at `sliceSize` sockets.
   */
  #sendAll (targets: Connection[], event: EncodedEvent, channel: string | null, from: number, to: number): number {
    for (let index = from; index < to; index++) {
      const connection = targets[index]
      if (this.#outbox.socketsThisTurn >= this.#sliceSize && !connection.corked) return index
      if (channel === null || connection.subscriptions.includes(channel)) this.#outbox.send(connection, event)
    }
    return to
  }
}
