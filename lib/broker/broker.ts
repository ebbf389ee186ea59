import type { ComponentState } from '../redis/client.js'

/**
 * Moves bytes between the nodes of a deployment, by topic, and knows nothing
 * of what they mean (the node decodes them). Two transports share these
 * semantics: the loopback of embedded mode (one process) and Redis pub/sub
 * (classic, or sharded on a Redis Cluster).
 *
 * Pub/sub is at-most-once: a transport that lost its link says so
 * (`linkDown`) and calls `onResubscribed` once every topic is back, so the
 * node can tell its sockets that events may have been missed.
 */
export interface Broker {
  /** Hands `message` to every node subscribed to `topic`, this one included. */
  publish (topic: string, message: Buffer): Promise<void>
  /** Resolves once this node receives `topic`; a failed subscribe is retried until it lands. */
  subscribe (topic: string): Promise<void>
  unsubscribe (topic: string): void
  /** Every message of a subscribed topic, in the order the transport received them. Never awaited. */
  onMessage (handler: (topic: string, message: Buffer) => void): void
  /** After a lost link, once every topic is subscribed again (`reason` says what happened). */
  onResubscribed (handler: (reason: string) => void): void
  /** The link is down: messages published now are lost, and `onResubscribed` follows its return. */
  readonly linkDown: boolean
  /** For `/health`. */
  readonly state: ComponentState
  close (): Promise<void>
}
