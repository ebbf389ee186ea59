/// <reference types="@fastify/websocket" preserve="true" />
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import { normalizeOptions, type RealtimeOptions } from './options.js'
import { connectRedis, isRedisReady, waitForRedis } from './redis/connection.js'
import { createTokenExtractor, createClientErrorScrubber } from './http/token-redaction.js'
import { genTraceId } from './http/request-id.js'
import { sendError } from './http/envelope.js'
import { HandshakeMessage } from './constants.js'
import { createOriginCheck } from './handshake/origin.js'
import { ConnectionLimiter } from './handshake/connection-limiter.js'
import { createHandshakeGate, kAdmitted } from './handshake/gate.js'
import { createDeadlineResolver } from './tokens/resolve-with-deadline.js'
import { buildTokenStore } from './tokens/build-token-store.js'
import type { TokenStore, TokenState } from './tokens/token-store.js'

export interface RealtimeTokens {
  /** Mints a random token (256 bits) for `userId` and stores its state. */
  issue (userId: string | number, options: { ttlSeconds: number }): Promise<string>
  /** The token stops working for new connections. */
  revoke (token: string): Promise<void>
  /** The state of a live token, or `null` if it is unknown, expired or revoked. */
  resolve (token: string): Promise<TokenState | null>
}

export interface Realtime {
  tokens: RealtimeTokens
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

const fastifyRealtime: FastifyPluginAsync<RealtimeOptions> = async function fastifyRealtime (fastify, rawOptions) {
  const options = normalizeOptions(rawOptions)
  const redis = options.redis === undefined ? undefined : connectRedis(fastify, options.redis, fastify.log)
  const store: TokenStore = buildTokenStore(options, redis?.client)
  fastify.addHook('onClose', async () => {
    store.close()
    if (redis?.owned === true) await redis.client.quit().catch(() => redis.client.disconnect())
  })
  if (redis !== undefined) await waitForRedis(redis.client, fastify.log)

  if (!fastify.hasDecorator('websocketServer')) await fastify.register(websocket, options.websocket)

  installTokenRedaction(fastify, fastify.prefix + options.prefix, options.tokens)

  let draining = false
  fastify.addHook('preClose', async () => { draining = true })

  const gate = createHandshakeGate({
    isEnabled: () => options.enabled,
    isDraining: () => draining,
    isOriginAllowed: createOriginCheck(options),
    resolveToken: createDeadlineResolver({
      lookup: (token) => store.resolve(token),
      timeoutMs: options.tokens.timeoutMs,
      isAvailable: redis === undefined || options.tokens.resolver !== undefined ? () => true : () => isRedisReady(redis.client)
    }),
    limiter: new ConnectionLimiter(options.limits),
    tokenRetryAfterSeconds: options.tokens.retryAfterSeconds,
    limitRetryAfterSeconds: options.limits.retryAfterSeconds
  })

  fastify.decorate('realtime', {
    tokens: {
      issue: (userId, issueOptions) => store.issue(userId, issueOptions),
      revoke: (token) => store.revoke(token),
      resolve: (token) => store.resolve(token)
    }
  } satisfies Realtime)

  // Routes live in their own context so their request ids (the `trace_id` of
  // every answer) can be unique across nodes without changing the user's.
  await fastify.register(async function realtimeRoutes (routes) {
    routes.setGenReqId(genTraceId)
    routes.decorateRequest(kAdmitted, null)
    routes.route({
      method: 'GET',
      url: options.prefix,
      onRequest: gate,
      handler: answerUpgradeRequired,
      wsHandler: function onConnection (socket: WebSocket, request) {
        const admitted = request[kAdmitted]
        socket.on('error', () => socket.terminate())
        socket.send(JSON.stringify({
          event: 'connected',
          channel: null,
          data: { connection_id: request.id, user_id: admitted?.state.userId, subscriptions: ['settings'], heartbeat_interval_ms: options.heartbeat.intervalMs }
        }))
      }
    })
  })
}

/** A plain GET that passed every check of the gate: the route only speaks WebSocket. */
async function answerUpgradeRequired (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  reply.header('upgrade', 'websocket')
  return sendError(request, reply, 426, HandshakeMessage.UPGRADE_REQUIRED)
}

function installTokenRedaction (fastify: FastifyInstance, prefix: string, tokenOptions: ReturnType<typeof normalizeOptions>['tokens']): void {
  const extractToken = createTokenExtractor({ prefix, ...tokenOptions })
  const scrubClientError = createClientErrorScrubber(tokenOptions.queryParam)
  fastify.server.prependListener('request', extractToken)
  fastify.server.prependListener('upgrade', extractToken)
  fastify.server.prependListener('clientError', scrubClientError)
  fastify.addHook('onClose', async () => {
    fastify.server.removeListener('request', extractToken)
    fastify.server.removeListener('upgrade', extractToken)
    fastify.server.removeListener('clientError', scrubClientError)
  })
}

export default fp(fastifyRealtime, { fastify: '5.x', name: 'fastify-realtime' })
export { fastifyRealtime }
export type { RealtimeOptions, TokenOptions } from './options.js'
export type { TokenState } from './tokens/token-store.js'
export { CloseCode, ProtocolErrorCode } from './constants.js'
export * as errors from './errors.js'
