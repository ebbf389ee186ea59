import type { Appended, Broker, Once, Repeated, StreamAppend, StreamLimits, StreamRead } from './broker.js'
import { MemoryOnce } from './memory-once.js'
import { MemoryStreams } from './memory-streams.js'

/**
 * Embedded mode: one process is the whole deployment and listens to every
 * topic, so a published message goes straight (synchronously) to this node's
 * handler, as Redis would echo it. The link is never down. With history on,
 * streams live in memory; an append and its publish happen in one
 * synchronous step, so nothing can come between them. So do an idempotent
 * publish's check, publish and record (records in memory, at most `maxOnceKeys`).
 */
export class LoopbackBroker implements Broker {
  /* c8 ignore next: the node sets the handler before it publishes anything */
  #handler: (topic: string, message: Buffer) => void = () => {}
  readonly #streams: MemoryStreams | undefined
  readonly #once: MemoryOnce
  readonly linkDown = false
  readonly state = 'none'

  constructor (history: StreamLimits | undefined, maxOnceKeys: number) {
    this.#streams = history === undefined ? undefined : new MemoryStreams(history)
    this.#once = new MemoryOnce(maxOnceKeys)
  }

  async publish (topic: string, message: Buffer): Promise<void> {
    this.#handler(topic, message)
  }

  async publishOnce (topic: string, message: Buffer, once: Once): Promise<Repeated | undefined> {
    const seen = this.#once.seen(once)
    if (seen !== undefined) return { repeated: true, id: seen.id }
    this.#once.record(once, null)
    this.#handler(topic, message)
    return undefined
  }

  async append (topic: string, event: StreamAppend): Promise<Appended | Repeated> {
    const seen = event.once === undefined ? undefined : this.#once.seen(event.once)
    if (seen !== undefined) return { repeated: true, id: seen.id }
    const { id, message } = this.#history().append(event)
    if (event.once !== undefined) this.#once.record(event.once, id)
    this.#handler(topic, message)
    if (event.then !== undefined) this.#handler(topic, event.then)
    return { id, receivers: undefined }
  }

  async read (stream: string, since: number | undefined): Promise<StreamRead> {
    return this.#history().read(stream, since)
  }

  async subscribe (): Promise<void> {}

  unsubscribe (): void {}

  onMessage (handler: (topic: string, message: Buffer) => void): void {
    this.#handler = handler
  }

  onResubscribed (): void {}

  async close (): Promise<void> {
    this.#streams?.close()
    this.#once.close()
  }

  #history (): MemoryStreams {
    // The node asks for streams only when history is on.
    /* c8 ignore next */
    if (this.#streams === undefined) throw new Error('history is off')
    return this.#streams
  }
}
