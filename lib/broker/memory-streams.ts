import { randomBytes } from 'node:crypto'
import type { StreamAppend, StreamEntry, StreamLimits, StreamRead } from './broker.js'

interface MemoryStream {
  epoch: string
  top: number
  entries: StreamEntry[]
  expiresAt: number
}

const SWEEP_INTERVAL_MS = 1000

/** A new stream life's name: 8 characters of `A-Z a-z 0-9 _ -`. */
export function newEpoch (): string {
  return randomBytes(6).toString('base64url')
}

/**
 * Streams kept in this process (embedded mode), with the semantics of the
 * Redis ones: the last `size` events each, gone `ttlSeconds` after the last
 * append. A stream that expired is forgotten whole, epoch included, so an id
 * issued before answers `epoch_changed`. Memory is bounded by the streams
 * active within one TTL, each at most `size` events.
 */
export class MemoryStreams {
  readonly #limits: StreamLimits
  readonly #streams = new Map<string, MemoryStream>()
  readonly #sweeper: NodeJS.Timeout

  constructor (limits: StreamLimits) {
    this.#limits = limits
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS).unref()
  }

  /** Appends the event; returns its id and the bytes to publish. */
  append (event: StreamAppend): { id: string, message: Buffer } {
    const stream = this.#open(event.stream)
    const offset = ++stream.top
    const id = `${stream.epoch}:${offset}`
    const payload = Buffer.from(event.payload.head + id + event.payload.tail)
    stream.entries.push({ offset, channel: event.channel, payload, ackNode: event.ackNode })
    if (stream.entries.length > this.#limits.size) stream.entries.shift()
    stream.expiresAt = Date.now() + this.#limits.ttlSeconds * 1000
    return { id, message: Buffer.concat([Buffer.from(event.header.head + id + event.header.tail), payload]) }
  }

  read (name: string, since: number | undefined): StreamRead {
    const stream = this.#open(name)
    const entries = since === undefined ? [] : stream.entries.filter((entry) => entry.offset > since)
    return { epoch: stream.epoch, top: stream.top, entries }
  }

  close (): void {
    clearInterval(this.#sweeper)
  }

  #open (name: string): MemoryStream {
    let stream = this.#streams.get(name)
    if (stream === undefined || stream.expiresAt <= Date.now()) {
      stream = { epoch: newEpoch(), top: 0, entries: [], expiresAt: Date.now() + this.#limits.ttlSeconds * 1000 }
      this.#streams.set(name, stream)
    }
    return stream
  }

  #sweep (): void {
    const now = Date.now()
    for (const [name, stream] of this.#streams) if (stream.expiresAt <= now) this.#streams.delete(name)
  }
}
