import type { Connection } from '../connection/connection.js'
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
 * Small deliveries go out synchronously. A fan-out larger than `sliceSize`
 * sockets is sent in slices, yielding to the event loop (`setImmediate`)
 * between them so heartbeats, handshakes and other publishes keep running.
 * Everything published meanwhile queues behind it, so each socket still sees
 * events in publish order; `then()` runs an action (a close after a forced
 * logout) once everything queued before it has been written.
 */
export class Dispatcher {
  readonly #outbox: Outbox
  readonly #sliceSize: number
  readonly #queue: Job[] = []
  #scheduled = false
  readonly #pump = (): void => this.#drain()

  readonly #onDelivered: (event: EncodedEvent) => void

  /** `onDelivered` runs once per event, when its last recipient has been written. */
  constructor (outbox: Outbox, sliceSize: number, onDelivered: (event: EncodedEvent) => void) {
    this.#outbox = outbox
    this.#sliceSize = sliceSize
    this.#onDelivered = onDelivered
  }

  deliver (targets: Connection[], event: EncodedEvent, channel: string | null): void {
    if (this.#queue.length === 0 && targets.length <= this.#sliceSize) {
      // Targets chosen in this very tick are still subscribed: no check per recipient.
      this.#sendAll(targets, event, null, 0, targets.length)
      this.#onDelivered(event)
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
    let budget = this.#sliceSize
    while (this.#queue.length > 0 && budget > 0) {
      const job = this.#queue[0]
      if (typeof job === 'function') {
        this.#queue.shift()
        job()
        continue
      }
      const end = Math.min(job.targets.length, job.next + budget)
      this.#sendAll(job.targets, job.event, job.channel, job.next, end)
      budget -= end - job.next
      job.next = end
      if (end === job.targets.length) {
        this.#queue.shift()
        this.#onDelivered(job.event)
      }
    }
    this.#outbox.flush()
    if (this.#queue.length > 0) {
      this.#scheduled = true
      setImmediate(this.#pump)
    }
  }

  #sendAll (targets: Connection[], event: EncodedEvent, channel: string | null, from: number, to: number): void {
    for (let index = from; index < to; index++) {
      const connection = targets[index]
      if (channel === null || connection.subscriptions.includes(channel)) this.#outbox.send(connection, event)
    }
  }
}
