import type { Broker } from './broker.js'

/**
 * Embedded mode: one process is the whole deployment and listens to every
 * topic, so a published message goes straight (synchronously) to this node's
 * handler, as Redis would echo it. The link is never down.
 */
export class LoopbackBroker implements Broker {
  /* c8 ignore next: the node sets the handler before it publishes anything */
  #handler: (topic: string, message: Buffer) => void = () => {}
  readonly linkDown = false
  readonly state = 'none'

  async publish (topic: string, message: Buffer): Promise<void> {
    this.#handler(topic, message)
  }

  async subscribe (): Promise<void> {}

  unsubscribe (): void {}

  onMessage (handler: (topic: string, message: Buffer) => void): void {
    this.#handler = handler
  }

  onResubscribed (): void {}

  async close (): Promise<void> {}
}
