/**
 * What the node sends through the broker, and on which topic. Events are the
 * publisher's bytes, untouched, behind a one-line header, so receiving nodes
 * frame them without re-encoding:
 *
 *   E<publishedAt> <channel>\n<event JSON>   an event for a user or global channel
 *   C<control JSON>               takeover, disconnect, revoke
 */

const EVENT = 0x45 // 'E'
const CONTROL = 0x43 // 'C'
const NEWLINE = 0x0a
const SPACE = 0x20

export type ControlMessage =
  | { type: 'takeover', userId: string, generation: number }
  | { type: 'disconnect', userId: string, code: number, reason: string, finalEvent?: string, publishedAt?: number }
  | { type: 'revoke', tokenHash: string }

export type WireMessage =
  | { kind: 'event', channel: string, payload: Buffer, publishedAt: number | undefined }
  | { kind: 'control', control: ControlMessage }
  | { kind: 'malformed' }

export function encodeEventMessage (channel: string, payload: Buffer, publishedAt = Date.now()): Buffer {
  return Buffer.concat([Buffer.from(`E${publishedAt} ${channel}\n`), payload])
}

export function encodeControlMessage (control: ControlMessage): Buffer {
  return Buffer.from('C' + JSON.stringify(control))
}

/** Reads a message from Redis; anything not written by this plugin is `malformed`, never a throw. */
export function decodeMessage (message: Buffer): WireMessage {
  if (message[0] === EVENT) {
    const newline = message.indexOf(NEWLINE)
    const space = message.indexOf(SPACE)
    if (newline === -1 || space === -1 || space > newline) return { kind: 'malformed' }
    const publishedAt = Number(message.toString('latin1', 1, space))
    return {
      kind: 'event',
      channel: message.toString('utf8', space + 1, newline),
      payload: message.subarray(newline + 1),
      publishedAt: Number.isFinite(publishedAt) ? publishedAt : undefined
    }
  }
  if (message[0] === CONTROL) {
    try {
      const control = JSON.parse(message.toString('utf8', 1)) as ControlMessage
      if (typeof control === 'object' && control !== null && typeof control.type === 'string') return { kind: 'control', control }
    } catch {}
  }
  return { kind: 'malformed' }
}

/** Topic names (Redis pub/sub channels in cluster mode), all under the key prefix. */
export function topicsFor (keyPrefix: string) {
  return {
    user: (userId: string) => `${keyPrefix}u:${userId}`,
    global: (channel: string) => `${keyPrefix}c:${channel}`,
    control: `${keyPrefix}ctl`,
    node: (nodeId: string) => `${keyPrefix}n:${nodeId}`,
    /** The user id of a user topic, or undefined. */
    userOf: (topic: string): string | undefined =>
      topic.startsWith(`${keyPrefix}u:`) ? topic.slice(keyPrefix.length + 2) : undefined
  }
}
