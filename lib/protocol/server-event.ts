import type { EventPosition } from './recovery.js'

/**
 * Server events are serialized once per publish and framed once: every
 * recipient's socket gets the same Buffer (`{"event","channel","data"}`, README "Channels").
 */

/** JSON text of a server event, in the envelope the mobile apps read. */
export function serializeEvent (event: string, channel: string | null, data: unknown): string {
  return `{"event":${JSON.stringify(event)},"channel":${JSON.stringify(channel)},"data":${JSON.stringify(data)}}`
}

/**
 * A complete unmasked WebSocket text frame (FIN, opcode 1) around `payload`.
 * Built once, it can be written to any number of sockets as is.
 */
export function frameText (payload: Buffer): Buffer {
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x81
  if (length < 126) {
    frame[1] = length
  } else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  payload.copy(frame, headerLength)
  return frame
}

/** A server event ready for the wire: the JSON bytes (for Redis and `ws.send`) and the framed bytes (for direct writes). */
export interface EncodedEvent {
  payload: Buffer
  frame: Buffer
  /** When `publish()` was called (ms since epoch), for the publish-to-delivery histogram. */
  publishedAt?: number
  /** History on: the event's place in its stream (its id is in the payload). */
  position?: EventPosition
}

export function encodeEvent (event: string, channel: string | null, data: unknown): EncodedEvent {
  const payload = Buffer.from(serializeEvent(event, channel, data))
  return { payload, frame: frameText(payload) }
}

/**
 * The JSON of an event kept in a stream, around the id the stream gives it:
 * `head + id + tail` is the envelope with `"id"` last.
 */
export function eventTemplate (json: string): { head: string, tail: string } {
  return { head: json.slice(0, -1) + ',"id":"', tail: '"}' }
}
