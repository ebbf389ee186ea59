import type { IdTemplate } from '../broker/broker.js'

/**
 * What the node sends through the broker, and on which topic. Events are the
 * publisher's bytes, untouched, behind a one-line header, so receiving nodes
 * frame them without re-encoding:
 *
 *   E<publishedAt> <channel>\n<event JSON>                    an event (history off)
 *   E<publishedAt> <channel> <id>[ <ackNode>]\n<event JSON>   an event kept in a stream; ackNode awaits its ack
 *   C<control JSON>                                          takeover, disconnect, revoke
 *   A<ack JSON>                                              a client's ack, to the node that awaits it
 *
 * Channel names, ids and node ids contain no space or newline.
 */

const EVENT = 0x45 // 'E'
const CONTROL = 0x43 // 'C'
const ACK = 0x41 // 'A'
const NEWLINE = 0x0a

export type ControlMessage =
  | { type: 'takeover', userId: string, generation: number }
  | { type: 'disconnect', userId: string, code: number, reason: string, finalEvent?: string, publishedAt?: number }
  // `userId`: whose token it is, where the token store knew it; a node then looks at that user's socket
  // alone, otherwise (or from a node of an earlier version) at every socket.
  | { type: 'revoke', tokenHash: string, userId?: string }

export interface AckMessage {
  userId: string
  channel: string
  id: string
}

export type WireMessage =
  | { kind: 'event', channel: string, payload: Buffer, publishedAt: number | undefined, id: string | undefined, ackNode: string | undefined }
  | { kind: 'control', control: ControlMessage }
  | { kind: 'ack', ack: AckMessage }
  | { kind: 'malformed' }

/** An event's message: its header line, then the event's JSON, encoded in one step (one Buffer per publish). */
export function encodeEventMessage (channel: string, json: string, publishedAt = Date.now()): Buffer {
  return Buffer.from(`E${publishedAt} ${channel}\n${json}`)
}

/** The header of an event kept in a stream, around the id the stream will give it. */
export function streamEventHeader (channel: string, publishedAt: number, ackNode: string): IdTemplate {
  return { head: `E${publishedAt} ${channel} `, tail: ackNode === '' ? '\n' : ` ${ackNode}\n` }
}

export function encodeControlMessage (control: ControlMessage): Buffer {
  return Buffer.from('C' + JSON.stringify(control))
}

export function encodeAckMessage (ack: AckMessage): Buffer {
  return Buffer.from('A' + JSON.stringify(ack))
}

const optionalString = (value: unknown): boolean => value === undefined || typeof value === 'string'
const optionalNumber = (value: unknown): boolean => value === undefined || typeof value === 'number'

/**
 * Whether `value` is a control message with the fields its type needs, of
 * the right types: a backend may publish these itself, and a field missing or
 * of another type must not reach the code that acts on it.
 */
function isControlMessage (value: unknown): value is ControlMessage {
  if (typeof value !== 'object' || value === null) return false
  const message = value as Record<string, unknown>
  switch (message.type) {
    case 'takeover': return typeof message.userId === 'string' && typeof message.generation === 'number'
    case 'disconnect':
      return typeof message.userId === 'string' && typeof message.code === 'number' && typeof message.reason === 'string' &&
        optionalString(message.finalEvent) && optionalNumber(message.publishedAt)
    case 'revoke': return typeof message.tokenHash === 'string' && optionalString(message.userId)
    default: return false
  }
}

/** Reads a message from Redis; anything not written by this plugin is `malformed`, never a throw. */
export function decodeMessage (message: Buffer): WireMessage {
  if (message[0] === EVENT) {
    const newline = message.indexOf(NEWLINE)
    if (newline === -1) return { kind: 'malformed' }
    const [publishedAt, channel, id, ackNode] = message.toString('utf8', 1, newline).split(' ')
    if (channel === undefined || channel === '') return { kind: 'malformed' }
    const time = Number(publishedAt)
    return {
      kind: 'event',
      channel,
      payload: message.subarray(newline + 1),
      publishedAt: Number.isFinite(time) ? time : undefined,
      id,
      ackNode
    }
  }
  if (message[0] === CONTROL || message[0] === ACK) {
    try {
      const value = JSON.parse(message.toString('utf8', 1)) as Record<string, unknown>
      if (message[0] === CONTROL && isControlMessage(value)) return { kind: 'control', control: value }
      if (message[0] === ACK && typeof value?.userId === 'string' && typeof value.channel === 'string' && typeof value.id === 'string') return { kind: 'ack', ack: value as unknown as AckMessage }
    } catch {}
  }
  return { kind: 'malformed' }
}

/**
 * Topic names (Redis pub/sub channels in cluster mode), all under the key
 * prefix. A user's topic and stream share one hash tag, the user id, and a
 * global channel's its name: on a Redis Cluster they live in one slot, so the
 * script that appends and publishes can touch both.
 */
export function topicsFor (keyPrefix: string) {
  const userTopic = `${keyPrefix}u:{`
  return {
    user: (userId: string) => `${userTopic}${userId}}`,
    global: (channel: string) => `${keyPrefix}c:{${channel}}`,
    control: `${keyPrefix}ctl`,
    node: (nodeId: string) => `${keyPrefix}n:${nodeId}`,
    /** The user id of a user topic, or undefined. */
    userOf: (topic: string): string | undefined =>
      topic.startsWith(userTopic) && topic.endsWith('}') ? topic.slice(userTopic.length, -1) : undefined,
    /** The stream of a user's channels. */
    userStream: (userId: string) => `${keyPrefix}stream:u:{${userId}}`,
    /** The stream of a global channel. */
    globalStream: (channel: string) => `${keyPrefix}stream:c:{${channel}}`,
    /**
     * The idempotency record of a publish to a user on one of their channels:
     * the user's hash tag, the channel, `|` (never in a channel name), the key.
     */
    userOnce: (userId: string, channel: string, key: string) => `${keyPrefix}idem:u:{${userId}}:${channel}|${key}`,
    /** The idempotency record of a publish to a global channel. */
    globalOnce: (channel: string, key: string) => `${keyPrefix}idem:c:{${channel}}|${key}`
  }
}
