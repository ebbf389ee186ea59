import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { ProtocolErrorCode, type ProtocolErrorCodeValue } from '../constants.js'

// Extra properties are tolerated (clients add ids and the like); the known ones are strict.
// The 128 limit is checked in UTF-16 units below, the same unit as the echo rule.
const ChannelField = Type.String({ minLength: 1 })
const MAX_CHANNEL_LENGTH = 128
// `since`: the client's last id on the channel, to recover what it missed (README "Recovery").
export const SubscribeMessageSchema = Type.Object({ event: Type.Literal('subscribe'), channel: ChannelField, since: Type.Optional(Type.String({ maxLength: 128 })) })
export const UnsubscribeMessageSchema = Type.Object({ event: Type.Literal('unsubscribe'), channel: ChannelField })
export const PingMessageSchema = Type.Object({ event: Type.Literal('ping') })
// A cumulative acknowledgement of everything up to `id` on the channel (history on).
export const AckMessageSchema = Type.Object({ event: Type.Literal('ack'), channel: ChannelField, id: Type.String({ maxLength: 128 }) })
// A new access token for the same user, replacing the socket's (no reconnect).
export const RefreshMessageSchema = Type.Object({ event: Type.Literal('refresh'), token: Type.String({ minLength: 1, maxLength: 4096 }) })
export const ClientMessageSchema = Type.Union([SubscribeMessageSchema, UnsubscribeMessageSchema, PingMessageSchema, AckMessageSchema, RefreshMessageSchema])
export type ClientMessage = Static<typeof ClientMessageSchema>

const KNOWN_EVENTS = new Set(['subscribe', 'unsubscribe', 'ping', 'ack', 'refresh'])
const checkMessage = Compile(ClientMessageSchema)

export type ParsedMessage =
  | { ok: true, message: ClientMessage }
  | { ok: false, code: ProtocolErrorCodeValue, message: string, channel: string | null }

/**
 * Reads one client frame. Never throws: whatever arrives — binary, broken JSON,
 * `__proto__` keys, huge numbers — comes back as a message or as one of the
 * documented protocol errors.
 */
export function parseClientMessage (data: Buffer, isBinary: boolean): ParsedMessage {
  if (isBinary) return invalid('Messages must be JSON text frames', null)
  let value: unknown
  try {
    value = JSON.parse(data.toString())
  } catch {
    return invalid('Message is not valid JSON', null)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid('Message must be a JSON object', null)
  const record = value as Record<string, unknown>
  const channel = typeof record.channel === 'string' && record.channel.length <= MAX_CHANNEL_LENGTH ? record.channel : null
  if (typeof record.event !== 'string') return invalid('Message needs an "event" string', channel)
  if (!KNOWN_EVENTS.has(record.event)) {
    return { ok: false, code: ProtocolErrorCode.UNKNOWN_EVENT, message: 'Unknown event; expected subscribe, unsubscribe, ping, ack or refresh', channel }
  }
  if (record.event === 'ack' && typeof record.id !== 'string') return invalid('"ack" needs an "id" string', channel)
  if (record.event === 'refresh') return checkMessage.Check(value) ? { ok: true, message: value } : invalid('"refresh" needs a "token" string of 1 to 4096 characters', null)
  if (!checkMessage.Check(value) || (record.event !== 'ping' && channel === null)) return invalid(`"${record.event}" needs a "channel" string of 1 to 128 characters`, channel)
  return { ok: true, message: value }
}

function invalid (message: string, channel: string | null): ParsedMessage {
  return { ok: false, code: ProtocolErrorCode.INVALID_MESSAGE, message, channel }
}
