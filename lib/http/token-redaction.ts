import type { IncomingMessage } from 'node:http'
import { readBearerToken } from './bearer.js'

const kAccessToken = Symbol('fastify-realtime.accessToken')

interface TokenCarrier extends IncomingMessage {
  [kAccessToken]?: string
}

export interface TokenExtractionOptions {
  prefix: string
  queryParam: string | false
  authorizationHeader: boolean
  protocolPrefix: string | false
}

const REDACTED = '[REDACTED]'

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i

/**
 * The path as a router could end up reading it: without an absolute-form
 * scheme and host, with repeated slashes collapsed, dot segments resolved,
 * percent-decoded and lower-cased.
 */
function normalizePath (path: string): string {
  const collapsed = path.replace(ABSOLUTE_FORM, '').replace(/\/{2,}/g, '/')
  const resolved = new URL(collapsed.startsWith('/') ? collapsed : '/' + collapsed, 'http://localhost').pathname
  try {
    return decodeURIComponent(resolved).toLowerCase()
  } catch {
    return resolved.toLowerCase()
  }
}

/**
 * True for every URL whose path starts with `prefix`, compared normalized so
 * that no spelling (`/API/v1/ws`, `//api/v1/ws`, `/./api/v1/ws`,
 * `http://host/api/v1/ws`, typos such as `/api/v1/wsx`) escapes redaction.
 */
export function createPrefixMatcher (prefix: string) {
  const lowered = prefix.toLowerCase()
  return function isUnderPrefix (url: string): boolean {
    const queryStart = url.indexOf('?')
    return normalizePath(queryStart === -1 ? url : url.slice(0, queryStart)).startsWith(lowered)
  }
}

/**
 * Removes `param` from the query of `url`. Returns the first value it carried
 * (or undefined) and the URL without it; percent-encoded names are caught too.
 */
export function stripQueryParam (url: string, param: string): { url: string, value: string | undefined } {
  const queryStart = url.indexOf('?')
  if (queryStart === -1) return { url, value: undefined }
  // A client that appends `?token=` to a URL that already has a query sends a
  // second `?`: read it as the separator it was meant to be.
  const query = new URLSearchParams(url.slice(queryStart + 1).replaceAll('?', '&'))
  if (!query.has(param)) return { url, value: undefined }
  const value = query.get(param) as string
  query.delete(param)
  const rest = query.toString()
  return { url: url.slice(0, queryStart) + (rest === '' ? '' : '?' + rest), value }
}

/**
 * Takes the access token out of a request before Fastify sees it.
 *
 * Fastify logs `req.url` (query included) before any hook runs, and its 404
 * handler echoes it, so a route-level serializer is too late. This runs as a
 * listener prepended to the server's `request` and `upgrade` events: for every
 * path that starts with the prefix (case-insensitive, typos such as
 * `/api/v1/wsx` and `/api/v1/ws/` included) it moves the token from the query
 * string and from `Sec-WebSocket-Protocol` into a private symbol. The token is
 * therefore absent from every log line, error body and 404 body, and `ws` never
 * sees it as a subprotocol it could echo back.
 */
export function createTokenExtractor (options: TokenExtractionOptions) {
  const isUnderPrefix = createPrefixMatcher(options.prefix)

  return function extractToken (raw: IncomingMessage): void {
    const url = raw.url as string
    // Most requests carry no query and no token header: nothing to normalize.
    const mayCarryToken = url.includes('?') ||
      (options.authorizationHeader && raw.headers.authorization !== undefined) ||
      (options.protocolPrefix !== false && raw.headers['sec-websocket-protocol'] !== undefined)
    if (!mayCarryToken || !isUnderPrefix(url)) return

    let token: string | undefined
    if (options.queryParam !== false) {
      const stripped = stripQueryParam(url, options.queryParam)
      raw.url = stripped.url
      token = stripped.value
    }
    if (options.authorizationHeader) {
      token ??= readBearerToken(raw.headers.authorization)
    }
    if (options.protocolPrefix !== false) {
      // Always taken out of the header, even when another source won: `ws` must never select it.
      const fromProtocol = takeProtocolToken(raw, options.protocolPrefix)
      token ??= fromProtocol
    }
    if (token !== undefined && token !== '') (raw as TokenCarrier)[kAccessToken] = token
  }
}

/** Removes the `<prefix><token>` entry from `Sec-WebSocket-Protocol`, keeping the others for `ws` to select. */
function takeProtocolToken (raw: IncomingMessage, protocolPrefix: string): string | undefined {
  const header = raw.headers['sec-websocket-protocol']
  if (header === undefined) return undefined
  const offered = header.split(',').map((entry) => entry.trim())
  const carrying = offered.find((entry) => entry.startsWith(protocolPrefix))
  if (carrying === undefined) return undefined
  const remaining = offered.filter((entry) => !entry.startsWith(protocolPrefix) && entry !== '').join(', ')
  if (remaining === '') delete raw.headers['sec-websocket-protocol']
  else raw.headers['sec-websocket-protocol'] = remaining
  for (let i = 0; i < raw.rawHeaders.length; i += 2) {
    if (raw.rawHeaders[i].toLowerCase() === 'sec-websocket-protocol') raw.rawHeaders[i + 1] = remaining
  }
  return carrying.slice(protocolPrefix.length)
}

/** The token `extractToken` took from this request, if any. */
export function readAccessToken (raw: IncomingMessage): string | undefined {
  return (raw as TokenCarrier)[kAccessToken]
}

const SECRET_HEADER_LINE = /^(authorization|proxy-authorization|cookie|sec-websocket-protocol)[ \t]*:.*$/gim

/**
 * Node attaches the raw bytes of an unparsable request to the `clientError`
 * error, and Fastify logs that error (at trace). Scrub the token parameter and
 * credential headers from those bytes before any logger can see them.
 */
export function createClientErrorScrubber (queryParam: string | false) {
  // Last pass for request lines too broken to split: any `param=value` goes.
  const anyParam = queryParam === false ? null : new RegExp(`${escapeRegExp(queryParam)}=[^&\\s#]*`, 'gi')
  return function scrubClientError (error: Error & { rawPacket?: Buffer }): void {
    if (!Buffer.isBuffer(error.rawPacket)) return
    const packet = error.rawPacket.toString('latin1')
    const lineEnd = packet.search(/\r?\n/)
    const requestLine = lineEnd === -1 ? packet : packet.slice(0, lineEnd)
    const [method, target, ...version] = requestLine.split(' ')
    let safeLine = requestLine
    if (target !== undefined && queryParam !== false) {
      const stripped = stripQueryParam(target, queryParam)
      if (stripped.value !== undefined) safeLine = [method, appendRedacted(stripped.url, queryParam), ...version].join(' ')
    }
    const rest = lineEnd === -1 ? '' : packet.slice(lineEnd)
    let scrubbed = safeLine + rest.replace(SECRET_HEADER_LINE, `$1: ${REDACTED}`)
    if (anyParam !== null) scrubbed = scrubbed.replace(anyParam, `${queryParam}=${REDACTED}`)
    error.rawPacket = Buffer.from(scrubbed, 'latin1')
  }
}

function appendRedacted (url: string, param: string): string {
  return url + (url.includes('?') ? '&' : '?') + `${param}=${REDACTED}`
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
