import type { IncomingHttpHeaders } from 'node:http'

const KEY = /^[+/0-9A-Za-z]{22}==$/
// RFC 7230 tokens separated by commas, as `ws` parses Sec-WebSocket-Protocol (no space before the first or after the last).
const PROTOCOL_LIST = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/

/** The WebSocket headers `ws` would refuse, with the message the gate answers. */
export const WebSocketHeaderProblem = {
  KEY: 'Missing or invalid Sec-WebSocket-Key header',
  VERSION: 'Unsupported Sec-WebSocket-Version: 13 expected',
  PROTOCOL: 'Invalid Sec-WebSocket-Protocol header'
} as const

/**
 * What `ws` would refuse in an upgrade request that passed the gate, so the
 * gate answers it in the error shape (`ws`'s own answer is plain text) and
 * before a connection slot is taken. Undefined: nothing.
 */
export function websocketHeaderProblem (headers: IncomingHttpHeaders): string | undefined {
  const key = headers['sec-websocket-key']
  if (key === undefined || !KEY.test(key)) return WebSocketHeaderProblem.KEY
  // A number for `injectWS` requests, as `ws` reads it.
  const version = Number(headers['sec-websocket-version'])
  if (version !== 13 && version !== 8) return WebSocketHeaderProblem.VERSION
  const protocols = headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    if (!PROTOCOL_LIST.test(protocols)) return WebSocketHeaderProblem.PROTOCOL
    const names = protocols.split(',').map((name) => name.trim())
    if (new Set(names).size !== names.length) return WebSocketHeaderProblem.PROTOCOL
  }
  return undefined
}
