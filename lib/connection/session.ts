import type { RawData } from 'ws'
import { CloseCode, ProtocolErrorCode, type ProtocolErrorCodeValue } from '../constants.js'
import type { ChannelCatalog } from '../channels/catalog.js'
import { parseClientMessage } from '../protocol/client-message.js'
import type { Connection } from './connection.js'
import type { Registry } from './registry.js'

export interface SessionLimits {
  maxPayloadBytes: number
  maxSubscriptions: number
  /** Messages refused in a row by the rate limit before the socket is closed with 4006. */
  floodCloseAfter: number
  /** Invalid messages within `invalidWindowMs` before the socket is closed with 4503. */
  maxInvalidMessages: number
  invalidWindowMs: number
}

export interface SessionContext {
  catalog: ChannelCatalog
  registry: Registry
  limits: SessionLimits
  reply: (connection: Connection, event: string, channel: string | null, data: unknown) => void
  close: (connection: Connection, code: number, reason: string) => void
}

// Mistakes that say the client speaks another protocol; rate limits and the
// subscription cap are the client's business and do not count.
const VIOLATIONS = new Set<ProtocolErrorCodeValue>([ProtocolErrorCode.INVALID_MESSAGE, ProtocolErrorCode.UNKNOWN_EVENT, ProtocolErrorCode.UNKNOWN_CHANNEL])

/**
 * Answers one client frame per SPEC's message table. A bad message gets an
 * `error` event and never closes the socket by itself; a flood (4006), a
 * client that keeps sending garbage (4503) and an oversized frame (1009) do.
 */
export function handleClientFrame (context: SessionContext, connection: Connection, data: RawData, isBinary: boolean): void {
  connection.messagesIn++
  if (byteLength(data) > context.limits.maxPayloadBytes) {
    context.close(connection, CloseCode.MESSAGE_TOO_BIG, 'Message too big')
    return
  }
  if (!connection.bucket.take()) {
    if (++connection.rateLimitedInARow >= context.limits.floodCloseAfter) {
      context.close(connection, CloseCode.RATE_LIMITED, 'Rate limited')
    } else {
      replyError(context, connection, ProtocolErrorCode.RATE_LIMITED, 'Too many messages; slow down', null)
    }
    return
  }
  connection.rateLimitedInARow = 0

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
    if (!connection.subscriptions.has(channel.name) && connection.subscriptions.size >= context.limits.maxSubscriptions) {
      replyError(context, connection, ProtocolErrorCode.TOO_MANY_SUBSCRIPTIONS, `At most ${context.limits.maxSubscriptions} subscriptions per connection`, channel.name)
      return
    }
    context.registry.subscribe(connection, channel.name, channel.scope === 'global')
    context.reply(connection, 'subscribed', channel.name, { subscriptions: [...connection.subscriptions] })
    return
  }
  context.registry.unsubscribe(connection, channel.name)
  context.reply(connection, 'unsubscribed', channel.name, { subscriptions: [...connection.subscriptions] })
}

function refuse (context: SessionContext, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  replyError(context, connection, code, message, channel)
  if (!VIOLATIONS.has(code)) return
  const now = Date.now()
  if (now - connection.invalidWindowStartedAt > context.limits.invalidWindowMs) {
    connection.invalidWindowStartedAt = now
    connection.invalidMessages = 0
  }
  if (++connection.invalidMessages >= context.limits.maxInvalidMessages) {
    context.close(connection, CloseCode.PROTOCOL_VIOLATION, 'Too many invalid messages')
  }
}

function replyError (context: SessionContext, connection: Connection, code: ProtocolErrorCodeValue, message: string, channel: string | null): void {
  context.reply(connection, 'error', channel, { code, message })
}

function byteLength (data: RawData): number {
  if (Array.isArray(data)) return data.reduce((total, chunk) => total + chunk.length, 0)
  return data.byteLength
}
