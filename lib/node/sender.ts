import type { BrokerWriter, Once, Repeated } from '../broker/broker.js'
import type { Disconnection } from '../constants.js'
import { eventTemplate } from '../protocol/server-event.js'
import { encodeControlMessage, encodeEventMessage, streamEventHeader, topicsFor, type ControlMessage } from './wire.js'

/** An event as `app.realtime` hands it over: its JSON (the envelope, without id) and when it was published. */
export interface OutgoingEvent {
  json: string
  publishedAt: number
}

/** What a publish did: sent (with its id while history is on, and how many nodes got it where Redis tells), or a repeat. */
export type Sent = { id: string | null, receivers: number | undefined } | Repeated

export interface SenderOptions {
  broker: BrokerWriter
  keyPrefix: string
  /** History on: events are appended to streams and carry ids. */
  history: boolean
  /** How long an idempotency record lives. */
  idempotencyWindowSeconds: number
}

/**
 * Turns a publish, a disconnect or a revocation into broker calls: which
 * topic, which stream, which idempotency record, which bytes. A gateway node
 * sends through one over its broker, the standalone publisher over a
 * RedisWriter, so both write exactly the same wire.
 */
export class Sender {
  readonly #broker: BrokerWriter
  readonly #topics: ReturnType<typeof topicsFor>
  readonly #history: boolean
  readonly #windowSeconds: number

  constructor (options: SenderOptions) {
    this.#broker = options.broker
    this.#topics = topicsFor(options.keyPrefix)
    this.#history = options.history
    this.#windowSeconds = options.idempotencyWindowSeconds
  }

  /**
   * Publishes an event on `channel`, to `userId` (a user channel) or to every
   * subscriber (a global one, `userId` undefined). With `idempotencyKey`, a
   * repeat within the window sends nothing. `ackNode`: the node that awaits
   * the client's ack (history on), '' for none.
   */
  async send (channel: string, userId: string | undefined, event: OutgoingEvent, idempotencyKey: string | undefined, ackNode = ''): Promise<Sent> {
    const topics = this.#topics
    const topic = userId === undefined ? topics.global(channel) : topics.user(userId)
    const once: Once | undefined = idempotencyKey === undefined
      ? undefined
      : { key: userId === undefined ? topics.globalOnce(channel, idempotencyKey) : topics.userOnce(userId, channel, idempotencyKey), windowSeconds: this.#windowSeconds }
    if (!this.#history) {
      const message = encodeEventMessage(channel, event.json, event.publishedAt)
      if (once === undefined) await this.#broker.publish(topic, message)
      else {
        const repeated = await this.#broker.publishOnce(topic, message, once)
        if (repeated !== undefined) return repeated
      }
      return { id: null, receivers: undefined }
    }
    const stream = userId === undefined ? topics.globalStream(channel) : topics.userStream(userId)
    return await this.#broker.append(topic, {
      stream, channel, payload: eventTemplate(event.json), header: streamEventHeader(channel, event.publishedAt, ackNode), ackNode, once
    })
  }

  /** Closes the user's socket, wherever it is, after `finalEvent` (on `finalEvent.channel`) if given. */
  async disconnectUser (userId: string, disconnect: Disconnection, finalEvent?: OutgoingEvent & { channel: string }): Promise<void> {
    const { code, reason } = disconnect
    const topic = this.#topics.user(userId)
    if (finalEvent !== undefined && this.#history) {
      // The event is kept in the user's stream like any other; the close follows it in the same step.
      const { channel } = finalEvent
      const then = encodeControlMessage({ type: 'disconnect', userId, code, reason })
      await this.#broker.append(topic, {
        stream: this.#topics.userStream(userId), channel, payload: eventTemplate(finalEvent.json), header: streamEventHeader(channel, finalEvent.publishedAt, ''), ackNode: '', then
      })
      return
    }
    await this.control(topic, { type: 'disconnect', userId, code, reason, finalEvent: finalEvent?.json, publishedAt: finalEvent?.publishedAt })
  }

  /** Closes every socket that authenticated with the token of `tokenHash` (the user `userId`'s, if known), on every node (4501). */
  async revokeToken (tokenHash: string, userId: string | undefined): Promise<void> {
    // An undefined userId is left out of the JSON.
    await this.control(this.#topics.control, { type: 'revoke', tokenHash, userId })
  }

  async control (topic: string, control: ControlMessage): Promise<void> {
    await this.#broker.publish(topic, encodeControlMessage(control))
  }
}
