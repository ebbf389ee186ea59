import type { ComponentState } from '../redis/client.js'

/** Text around an id the stream has not chosen yet: `head + id + tail`. */
export interface IdTemplate {
  head: string
  tail: string
}

/**
 * One event to keep in a stream and publish, in one step. The stream picks
 * its id, so the bytes come as templates: the stored (and delivered) event is
 * `payload` around the id, the message published to the topic is `header`
 * around the id, followed by the payload.
 */
export interface StreamAppend {
  /** The stream's key. */
  stream: string
  channel: string
  payload: IdTemplate
  header: IdTemplate
  /** Kept with the event: the node that awaits the client's ack of it, or ''. */
  ackNode: string
  /** Published right after the event, on the same topic, in the same step (a disconnect after a forced logout). */
  then?: Buffer
  /** An idempotent publish: checked and recorded in the same step as the append. */
  once?: Once
}

/**
 * Makes a publish idempotent: the first one with `key` within
 * `windowSeconds` goes out and is recorded under `key` (with its id when it
 * has one); a repeat within the window goes nowhere and answers that record.
 */
export interface Once {
  /** The record's key: a Redis key with the hash tag of the publish's topic. */
  key: string
  windowSeconds: number
}

/** A repeat of an idempotent publish: nothing was sent; `id` is the first publish's (null when it had none). */
export interface Repeated {
  repeated: true
  id: string | null
}

export interface Appended {
  /** The event's id: `<epoch>:<offset>`. */
  id: string
  /** How many nodes received the message, where the transport tells (Redis); undefined otherwise. */
  receivers: number | undefined
}

/** An event as a stream keeps it. */
export interface StreamEntry {
  offset: number
  channel: string
  payload: Buffer
  ackNode: string
}

/** A stream's state: its epoch, the offset of its last event, and its retained events after the offset asked for. */
export interface StreamRead {
  epoch: string
  top: number
  /** In stream order; retained events are contiguous, so the first one tells how far back the stream reaches. */
  entries: StreamEntry[]
}

/** What a stream keeps: the last `size` events, each stream for `ttlSeconds` after its last append. */
export interface StreamLimits {
  size: number
  ttlSeconds: number
  /** How long a stream's epoch and last offset outlive its events (Redis). */
  metaTtlSeconds: number
  /** A read Redis has not answered by then fails (the socket is told to come back). */
  readTimeoutMs: number
}

/**
 * The publishing half of a broker: all a process needs that sends to the
 * nodes without being one (the standalone publisher).
 */
export interface BrokerWriter {
  /** Hands `message` to every node subscribed to `topic`, this one included. */
  publish (topic: string, message: Buffer): Promise<void>
  /**
   * Publishes `message` unless `once.key` is recorded (within its window),
   * checking and recording in the same step: resolves undefined when it went
   * out, the record when it was a repeat.
   */
  publishOnce (topic: string, message: Buffer, once: Once): Promise<Repeated | undefined>
  /**
   * History on: appends an event to its stream and publishes it to `topic`,
   * atomically (no window where one exists without the other). With
   * `event.once`, a repeat appends and sends nothing and resolves the record.
   */
  append (topic: string, event: StreamAppend): Promise<Appended | Repeated>
}

/**
 * Moves bytes between the nodes of a deployment, by topic, and knows nothing
 * of what they mean (the node decodes them). Two transports share these
 * semantics: the loopback of embedded mode (one process) and Redis pub/sub
 * (classic, or sharded on a Redis Cluster).
 *
 * With history on it also keeps streams: each event appended to its stream
 * in the same step as its publish, with an id the stream assigns.
 *
 * Pub/sub is at-most-once: a transport that lost its link says so
 * (`linkDown`) and calls `onResubscribed` once every topic is back, so the
 * node can tell its sockets that events may have been missed.
 */
export interface Broker extends BrokerWriter {
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
  /** A stream's epoch and last offset and, with `since`, its retained events after that offset. */
  read (stream: string, since: number | undefined): Promise<StreamRead>
  close (): Promise<void>
}
