import { Disconnect, type Disconnection, ProtocolErrorCode, type ProtocolErrorCodeValue } from '../constants.js'
import type { Channel, ChannelCatalog } from '../channels/catalog.js'
import { parseClientMessage, type ClientMessage } from '../protocol/client-message.js'
import { notRecovered } from '../protocol/recovery.js'
import type { Connection } from './connection.js'
import type { ConnectionIndex } from './connection-index.js'

export interface ClientMessageLimits {
  /** Each socket's inbound messages: a bucket of `messageBurst`, refilled at `messagesPerSecond`. */
  messagesPerSecond: number
  messageBurst: number
  maxPayloadBytes: number
  maxSubscriptions: number
  /** Messages refused in a row by the rate limit before the socket is closed with 4006. */
  floodCloseAfter: number
  /** Invalid messages within `invalidWindowMs` before the socket is closed with 4503. */
  maxInvalidMessages: number
  invalidWindowMs: number
  /** Acks have a bucket of their own, this size and refill rate. */
  acksPerSecond: number
}

export interface ClientMessageContext {
  catalog: ChannelCatalog
  connections: ConnectionIndex
  limits: ClientMessageLimits
  reply: (connection: Connection, event: string, channel: string | null, data: unknown) => void
  close: (connection: Connection, disconnect: Disconnection) => void
  /** History on: subscribes with a position (and, with `since`, a replay); answers `subscribed` itself. */
  subscribeWithHistory: ((connection: Connection, channel: Channel, since: string | undefined) => void) | undefined
  /** History on: a cumulative ack. */
  ack: (connection: Connection, channel: Channel, id: string) => void
  /** A new token for the socket; answers `refreshed` or an error itself. */
  refresh: (connection: Connection, token: string) => void
}

/**
 * Answers one client frame per README's client-message table. A bad message gets an
 * `error` event and never closes the socket by itself; a flood (4006), a
 * client that keeps sending garbage (4503) and an oversized frame (1009) do.
 * While the socket catches up on history (its `connected` or a `subscribed`
 * with replay not sent yet), its messages wait and are handled in order after.
 */
export function handleClientFrame (context: ClientMessageContext, connection: Connection, data: Buffer, isBinary: boolean): void {
  connection.countIn()
  // `ws` enforces maxPayload itself when this plugin registered it; this covers a user's own @fastify/websocket.
  if (data.length > context.limits.maxPayloadBytes) {
    context.close(connection, Disconnect.MESSAGE_TOO_BIG)
    return
  }
  const parsed = parseClientMessage(data, isBinary)
  const isAck = parsed.ok && parsed.message.event === 'ack'
  const bucket = isAck ? connection.ackRateLimit(context.limits.acksPerSecond) : connection.messageRateLimit(context.limits.messageBurst, context.limits.messagesPerSecond)
  if (!bucket.take()) {
    if (bucket.refusedInARow >= context.limits.floodCloseAfter) {
      context.close(connection, Disconnect.RATE_LIMITED)
    } else {
      replyError(context, connection, ProtocolErrorCode.RATE_LIMITED, 'Too many messages; slow down', null)
    }
    return
  }
  if (!parsed.ok) {
    refuse(context, connection, parsed.code, parsed.message, parsed.channel)
    return
  }
  // An ack never waits: it only reads what was sent, and order among acks of one channel does not matter.
  if (connection.busy && !isAck) connection.wait(parsed.message)
  else runClientMessage(context, connection, parsed.message)
}

/** Runs one admitted, well-formed client message. */
export function runClientMessage (context: ClientMessageContext, connection: Connection, message: ClientMessage): void {
  if (message.event === 'ping') {
    context.reply(connection, 'pong', null, { timestamp: Date.now() })
    return
  }
  if (message.event === 'refresh') {
    context.refresh(connection, message.token)
    return
  }
  const channel = context.catalog.get(message.channel)
  if (channel === undefined) {
    refuse(context, connection, ProtocolErrorCode.UNKNOWN_CHANNEL, 'Unknown channel', message.channel)
    return
  }
  if (message.event === 'ack') {
    context.ack(connection, channel, message.id)
    return
  }
  if (message.event === 'subscribe') {
    if (!connection.subscriptions.includes(channel.name) && connection.subscriptions.length >= context.limits.maxSubscriptions) {
      replyError(context, connection, ProtocolErrorCode.TOO_MANY_SUBSCRIPTIONS, `At most ${context.limits.maxSubscriptions} subscriptions per connection`, channel.name)
      return
    }
    if (context.subscribeWithHistory !== undefined) {
      context.subscribeWithHistory(connection, channel, message.since)
      return
    }
    context.connections.subscribe(connection, channel.name, channel.scope === 'global')
    const recovery = message.since === undefined ? {} : notRecovered()
    context.reply(connection, 'subscribed', channel.name, { subscriptions: [...connection.subscriptions], ...recovery })
    return
  }
  context.connections.unsubscribe(connection, channel.name)
  connection.positions?.forget(channel.name)
  context.reply(connection, 'unsubscribed', channel.name, { subscriptions: [...connection.subscriptions] })
}

/**
 * Answers a message that says the client speaks another protocol, and counts
 * it toward 4503. (Rate limits and the subscription cap do not count: those
 * are the client's business.)
 */
export function refuse (context: Pick<ClientMessageContext, 'reply' | 'close' | 'limits'>, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  replyError(context, connection, code, message, channel)
  if (connection.countInvalid(context.limits.invalidWindowMs) >= context.limits.maxInvalidMessages) {
    context.close(connection, Disconnect.PROTOCOL_VIOLATION)
  }
}

export function replyError (context: Pick<ClientMessageContext, 'reply'>, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  context.reply(connection, 'error', channel, { code, message })
}
