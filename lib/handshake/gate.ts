import type { ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HandshakeMessage } from '../constants.js'
import { sendError } from '../http/envelope.js'
import { offeredOnlyTokenProtocol, readAccessToken, readTakenParam } from '../http/token-redaction.js'
import { RECOVER_PARAM, parseRecover } from '../protocol/recovery.js'
import type { Resolution } from '../tokens/resolve-with-deadline.js'
import type { TokenState } from '../tokens/token-store.js'
import type { ConnectionLimiter } from './connection-limiter.js'
import type { HandshakeAdmission } from './handshake-rate.js'
import { websocketHeaderProblem } from './websocket-headers.js'

/** What the gate learned about an admitted handshake, for the connection handler. */
export interface Admitted {
  token: string
  state: TokenState
  /** The HTTP response of the upgrade, to be detached from the socket once it is a WebSocket. */
  response: ServerResponse
  /** The connection slot taken (absent for `injectWS`, which has no TCP socket to count). */
  slot: (() => void) | undefined
  /** The positions the client asked to recover from, by channel (`recover`); undefined without one. */
  recover: ReadonlyMap<string, string> | undefined
}

export const kAdmitted = Symbol('fastify-realtime.admitted')

declare module 'fastify' {
  interface FastifyRequest {
    [kAdmitted]: Admitted | null
  }
}

export interface GateDependencies {
  isEnabled: () => boolean
  isDraining: () => boolean
  isOriginAllowed: (origin: string | undefined) => boolean
  resolveToken: (token: string) => Promise<Resolution>
  limiter: ConnectionLimiter
  /** Takes one handshake from the node's rate (`limits.handshakesPerSecond`); over it, the seconds to wait. */
  admitHandshake: HandshakeAdmission
  tokenRetryAfterSeconds: number
  limitRetryAfterSeconds: number
  /** A channel the catalog knows. */
  isChannel: (name: string) => boolean
  /** Channels a socket may hold, the auto-subscribed ones included. */
  maxSubscriptions: number
  /** The channels every socket is subscribed to on connect. */
  autoSubscribed: readonly string[]
  /** Counts a handshake answered over HTTP instead of upgrading. */
  refused: (statusCode: number, reason: string) => void
}

/**
 * The `onRequest` hook of the WebSocket route: the checks of the handshake
 * table, in the table's order, answered over HTTP before any upgrade (426 for
 * a GET without `Upgrade` is the route handler's).
 */
export function createHandshakeGate (deps: GateDependencies) {
  const reject = (request: FastifyRequest, reply: FastifyReply, statusCode: number, message: string, reason: string): void => {
    deps.refused(statusCode, reason)
    request.log.info({ reason, statusCode }, 'fastify-realtime: handshake rejected')
    sendError(request, reply, statusCode, message)
  }
  return async function handshakeGate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!deps.isEnabled()) return reject(request, reply, 503, HandshakeMessage.DISABLED, 'disabled')
    if (deps.isDraining()) return reject(request, reply, 503, HandshakeMessage.SHUTTING_DOWN, 'draining')
    if (!deps.isOriginAllowed(request.headers.origin)) return reject(request, reply, 403, HandshakeMessage.ORIGIN_NOT_ALLOWED, 'origin')

    const token = readAccessToken(request.raw)
    if (token === undefined) return reject(request, reply, 401, HandshakeMessage.MISSING_TOKEN, 'missing token')
    const recoverParam = readTakenParam(request.raw, RECOVER_PARAM)
    const recover = recoverParam === undefined ? undefined : parseRecover(recoverParam, deps.isChannel)
    if (recoverParam !== undefined && recover === undefined) return reject(request, reply, 400, HandshakeMessage.INVALID_RECOVER, 'invalid recover')
    if (recover !== undefined && new Set([...deps.autoSubscribed, ...recover.keys()]).size > deps.maxSubscriptions) {
      return reject(request, reply, 400, HandshakeMessage.TOO_MANY_TO_RECOVER, 'too many channels to recover')
    }
    // Before any token store work: a node in a reconnect storm refuses what is
    // over its rate at once instead of queueing every handshake on Redis.
    const wait = deps.admitHandshake(request.ws)
    if (wait > 0) {
      reply.header('retry-after', String(wait))
      return reject(request, reply, 503, HandshakeMessage.TOO_MANY_HANDSHAKES, 'over the handshake rate')
    }
    const resolution = await deps.resolveToken(token)
    if (resolution.outcome === 'invalid') return reject(request, reply, 401, HandshakeMessage.INVALID_TOKEN, 'invalid token')
    if (resolution.outcome === 'unavailable') {
      // Only name, code and message: ioredis errors carry the command's arguments, and a custom key may hold the token.
      const { name, message, code } = resolution.error as Error & { code?: string }
      request.log.warn({ err: { name, code, message } }, 'fastify-realtime: token store unavailable')
      reply.header('retry-after', String(deps.tokenRetryAfterSeconds))
      return reject(request, reply, 503, HandshakeMessage.TOKEN_STORE_UNAVAILABLE, 'token store unavailable')
    }

    // A plain GET is only measured against the caps, and so is an upgrade about
    // to be refused below; an admitted upgrade takes a slot. (`injectWS`
    // requests have no TCP socket to hold one.)
    const socket = request.raw.socket as Duplex | undefined
    // An upgrade the gate refuses with 400 below takes no slot. `ws` would answer 101 selecting no
    // protocol for a token-only Sec-WebSocket-Protocol (the browser fails it after the gateway took the
    // user's socket over), and refuse bad WebSocket headers in plain text: both are answered here.
    const badUpgrade = !request.ws
      ? undefined
      : offeredOnlyTokenProtocol(request.raw) ? HandshakeMessage.TOKEN_ONLY_PROTOCOL : websocketHeaderProblem(request.headers)
    const admission = request.ws && socket !== undefined && badUpgrade === undefined
      ? deps.limiter.admit(socket, request.ip)
      : deps.limiter.check(request.ip)
    if (admission !== 'admitted' && typeof admission !== 'function') {
      reply.header('retry-after', String(deps.limitRetryAfterSeconds))
      return admission === 'server-full'
        ? reject(request, reply, 503, HandshakeMessage.SERVER_FULL, 'server full')
        : reject(request, reply, 429, HandshakeMessage.TOO_MANY_FROM_ADDRESS, 'address over its cap')
    }
    if (badUpgrade !== undefined) {
      if (badUpgrade === HandshakeMessage.UNSUPPORTED_VERSION) reply.header('sec-websocket-version', '13, 8')
      return reject(request, reply, 400, badUpgrade, badUpgrade)
    }
    // A plain GET goes on to the route handler, which answers 426.
    if (request.ws) request[kAdmitted] = { token, state: resolution.state, response: reply.raw, slot: typeof admission === 'function' ? admission : undefined, recover }
  }
}
