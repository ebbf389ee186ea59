import type { IncomingHttpHeaders } from 'node:http'
import { HandshakeMessage } from '../constants.js'

const KEY = /^[+/0-9A-Za-z]{22}==$/
// RFC 7230 tokens separated by commas, as `ws` parses Sec-WebSocket-Protocol (no space before the first or after the last).
const PROTOCOL_LIST = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/

/**
 * What `ws` would refuse in an upgrade request that passed the gate (the
 * handshake message to answer), so the gate answers it in the error shape
 * (`ws`'s own answer is plain text) and before a connection slot is taken.
 * Undefined: nothing.
 */
export function websocketHeaderProblem (headers: IncomingHttpHeaders): string | undefined {
  const key = headers['sec-websocket-key']
  if (key === undefined || !KEY.test(key)) return HandshakeMessage.INVALID_KEY
  // A number for `injectWS` requests, as `ws` reads it.
  const version = Number(headers['sec-websocket-version'])
  if (version !== 13 && version !== 8) return HandshakeMessage.UNSUPPORTED_VERSION
  const protocols = headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    if (!PROTOCOL_LIST.test(protocols)) return HandshakeMessage.INVALID_PROTOCOL_LIST
    const names = protocols.split(',').map((name) => name.trim())
    if (new Set(names).size !== names.length) return HandshakeMessage.INVALID_PROTOCOL_LIST
  }
  return undefined
}
