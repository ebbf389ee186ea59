import type { Appended, Broker, StreamAppend, StreamLimits, StreamRead } from './broker.js'
import { MemoryStreams } from './memory-streams.js'

/**
 * Embedded mode: one process is the whole deployment and listens to every
 * topic, so a published message goes straight (synchronously) to this node's
 * handler, as Redis would echo it. The link is never down. With history on,
 * streams live in memory; an append and its publish happen in one
 * synchronous step, so nothing can come between them.
 */
export class LoopbackBroker implements Broker {
  /* c8 ignore next: the node sets the handler before it publishes anything */
  #handler: (topic: string, message: Buffer) => void = () => {}
  readonly #streams: MemoryStreams | undefined
  readonly linkDown = false
  readonly state = 'none'

  constructor (history?: StreamLimits) {
    this.#streams = history === undefined ? undefined : new MemoryStreams(history)
  }

  async publish (topic: string, message: Buffer): Promise<void> {
    this.#handler(topic, message)
  }

  async append (topic: string, event: StreamAppend): Promise<Appended> {
    const { id, message } = this.#history().append(event)
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
  }

  #history (): MemoryStreams {
    // The node asks for streams only when history is on.
    /* c8 ignore next */
    if (this.#streams === undefined) throw new Error('history is off')
    return this.#streams
  }
}
