import type { IncomingMessage } from 'node:http'
import { readBearerToken } from './bearer.js'
import { REDACTED, type RedactedTarget } from './redact-target.js'

const kTaken = Symbol('fastify-realtime.taken')

/** What the listener took out of a request under the prefix. */
interface Taken {
  token: string | undefined
  params: ReadonlyMap<string, string>
  /** `Sec-WebSocket-Protocol` offered token entries and nothing else. */
  onlyTokenProtocol: boolean
}

interface TakenCarrier extends IncomingMessage {
  [kTaken]?: Taken
}

export type TargetRedactor = (target: string) => RedactedTarget | undefined

export interface TokenExtractionOptions {
  queryParam: string | false
  authorizationHeader: boolean
  protocolPrefix: string | false
}

/**
 * Takes the access token and every other parameter the plugin reads out of a
 * request before Fastify sees it.
 *
 * Fastify logs `req.url` (query included) before any hook runs, and its 404
 * handler echoes it, so a route-level serializer is too late. This runs as a
 * listener prepended to the server's `request` and `upgrade` events: for every
 * target some reader could route under the prefix, `req.url` becomes what the
 * redactor allows (no query but the documented parameters of a diagnostic
 * route); the token from the query, `Authorization` or `Sec-WebSocket-Protocol`
 * goes into a private symbol, and its protocol entry out of the header, so `ws`
 * never selects and echoes it. Other targets are left untouched.
 */
export function createTokenExtractor (redact: TargetRedactor, options: TokenExtractionOptions) {
  return function extractToken (raw: IncomingMessage): void {
    const url = raw.url as string
    const redacted = redact(url)
    if (redacted === undefined) return
    if (redacted.url !== url) raw.url = redacted.url

    let token = options.queryParam === false ? undefined : redacted.taken.get(options.queryParam)
    if (options.authorizationHeader) {
      token ??= readBearerToken(raw.headers.authorization)
    }
    let onlyTokenProtocol = false
    if (options.protocolPrefix !== false) {
      // Always taken out of the header, even when another source won: `ws` must never select it.
      const offer = takeProtocolToken(raw, options.protocolPrefix)
      token ??= offer.token
      onlyTokenProtocol = offer.alone
    }
    (raw as TakenCarrier)[kTaken] = { token: token === '' ? undefined : token, params: redacted.taken, onlyTokenProtocol }
  }
}

/** Removes the `<prefix><token>` entries from `Sec-WebSocket-Protocol`, keeping the others for `ws` to select. */
function takeProtocolToken (raw: IncomingMessage, protocolPrefix: string): { token: string | undefined, alone: boolean } {
  const header = raw.headers['sec-websocket-protocol']
  if (header === undefined) return { token: undefined, alone: false }
  const offered = header.split(',').map((entry) => entry.trim())
  const carrying = offered.find((entry) => entry.startsWith(protocolPrefix))
  if (carrying === undefined) return { token: undefined, alone: false }
  const remaining = offered.filter((entry) => !entry.startsWith(protocolPrefix) && entry !== '').join(', ')
  if (remaining === '') delete raw.headers['sec-websocket-protocol']
  else raw.headers['sec-websocket-protocol'] = remaining
  for (let i = 0; i < raw.rawHeaders.length; i += 2) {
    if (raw.rawHeaders[i].toLowerCase() === 'sec-websocket-protocol') raw.rawHeaders[i + 1] = remaining
  }
  return { token: carrying.slice(protocolPrefix.length), alone: remaining === '' }
}

/** The token `extractToken` took from this request, if any. */
export function readAccessToken (raw: IncomingMessage): string | undefined {
  return (raw as TakenCarrier)[kTaken]?.token
}

/** The first value of an out-of-band query parameter `extractToken` took from this request, if any. */
export function readTakenParam (raw: IncomingMessage, name: string): string | undefined {
  return (raw as TakenCarrier)[kTaken]?.params.get(name)
}

/**
 * True when the request offered `Sec-WebSocket-Protocol` entries that all carry
 * the token: `ws` would answer 101 selecting no protocol, which a browser fails
 * (1006) after the server counted the connection.
 */
export function offeredOnlyTokenProtocol (raw: IncomingMessage): boolean {
  return (raw as TakenCarrier)[kTaken]?.onlyTokenProtocol === true
}

const SECRET_HEADER_LINE = /^(authorization|proxy-authorization|cookie|sec-websocket-protocol)[ \t]*:.*$/gim
/** The first two words of every line: where the request target of a request line, the first or a pipelined one, sits. */
const LEADING_WORDS = /^(\S+)(?:([ \t]+)(\S+))?/gm

/**
 * Node attaches the raw bytes of an unparsable request to the `clientError`
 * error, and Fastify logs that error (at trace). Before any logger sees them,
 * every request target under the prefix in those bytes becomes what the
 * redactor allows, credential headers are blanked, and any `param=value` of
 * the token parameter goes as a last pass.
 */
export function createClientErrorScrubber (redact: TargetRedactor, queryParam: string | false) {
  const anyParam = queryParam === false ? null : new RegExp(`${escapeRegExp(queryParam)}=[^&\\s#]*`, 'gi')
  const redactWord = (word: string): string => redact(word)?.url ?? word
  return function scrubClientError (error: Error & { rawPacket?: Buffer }): void {
    if (!Buffer.isBuffer(error.rawPacket)) return
    let scrubbed = error.rawPacket.toString('latin1')
      .replace(LEADING_WORDS, (_line, first: string, gap: string | undefined, second: string | undefined) =>
        redactWord(first) + (gap === undefined ? '' : gap + redactWord(second as string)))
      .replace(SECRET_HEADER_LINE, `$1: ${REDACTED}`)
    if (anyParam !== null) scrubbed = scrubbed.replace(anyParam, `${queryParam}=${REDACTED}`)
    error.rawPacket = Buffer.from(scrubbed, 'latin1')
  }
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
