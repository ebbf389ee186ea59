import { Disconnect, type Disconnection, ProtocolErrorCode, type ProtocolErrorCodeValue } from '../constants.js'
import type { ChannelCatalog } from '../channels/catalog.js'
import { parseClientMessage } from '../protocol/client-message.js'
import { notRecovered } from '../protocol/recovery.js'
import type { Connection } from './connection.js'
import type { ConnectionIndex } from './connection-index.js'

export interface ClientMessageLimits {
  maxPayloadBytes: number
  maxSubscriptions: number
  /** Messages refused in a row by the rate limit before the socket is closed with 4006. */
  floodCloseAfter: number
  /** Invalid messages within `invalidWindowMs` before the socket is closed with 4503. */
  maxInvalidMessages: number
  invalidWindowMs: number
}

export interface ClientMessageContext {
  catalog: ChannelCatalog
  connections: ConnectionIndex
  limits: ClientMessageLimits
  reply: (connection: Connection, event: string, channel: string | null, data: unknown) => void
  close: (connection: Connection, disconnect: Disconnection) => void
}

/**
 * Answers one client frame per README's client-message table. A bad message gets an
 * `error` event and never closes the socket by itself; a flood (4006), a
 * client that keeps sending garbage (4503) and an oversized frame (1009) do.
 */
export function handleClientFrame (context: ClientMessageContext, connection: Connection, data: Buffer, isBinary: boolean): void {
  connection.countIn()
  // `ws` enforces maxPayload itself when this plugin registered it; this covers a user's own @fastify/websocket.
  if (data.length > context.limits.maxPayloadBytes) {
    context.close(connection, Disconnect.MESSAGE_TOO_BIG)
    return
  }
  if (!connection.rateLimit.take()) {
    if (connection.rateLimit.refusedInARow >= context.limits.floodCloseAfter) {
      context.close(connection, Disconnect.RATE_LIMITED)
    } else {
      replyError(context, connection, ProtocolErrorCode.RATE_LIMITED, 'Too many messages; slow down', null)
    }
    return
  }

  const parsed = parseClientMessage(data, isBinary)
  if (!parsed.ok) {
    refuse(context, connection, parsed.code, parsed.message, parsed.channel)
    return
  }
  const { message } = parsed
  if (message.event === 'ping') {
    context.reply(connection, 'pong', null, { timestamp: Date.now() })
    return
  }
  const channel = context.catalog.get(message.channel)
  if (channel === undefined) {
    refuse(context, connection, ProtocolErrorCode.UNKNOWN_CHANNEL, 'Unknown channel', message.channel)
    return
  }
  if (message.event === 'subscribe') {
    if (!connection.subscriptions.includes(channel.name) && connection.subscriptions.length >= context.limits.maxSubscriptions) {
      replyError(context, connection, ProtocolErrorCode.TOO_MANY_SUBSCRIPTIONS, `At most ${context.limits.maxSubscriptions} subscriptions per connection`, channel.name)
      return
    }
    context.connections.subscribe(connection, channel.name, channel.scope === 'global')
    const recovery = message.since === undefined ? {} : notRecovered()
    context.reply(connection, 'subscribed', channel.name, { subscriptions: [...connection.subscriptions], ...recovery })
    return
  }
  context.connections.unsubscribe(connection, channel.name)
  context.reply(connection, 'unsubscribed', channel.name, { subscriptions: [...connection.subscriptions] })
}

/**
 * Answers a message that says the client speaks another protocol, and counts
 * it toward 4503. (Rate limits and the subscription cap do not count: those
 * are the client's business.)
 */
function refuse (context: ClientMessageContext, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  replyError(context, connection, code, message, channel)
  if (connection.countInvalid(context.limits.invalidWindowMs) >= context.limits.maxInvalidMessages) {
    context.close(connection, Disconnect.PROTOCOL_VIOLATION)
  }
}

function replyError (context: ClientMessageContext, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  context.reply(connection, 'error', channel, { code, message })
}
