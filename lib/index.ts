/// <reference types="@fastify/websocket" preserve="true" />
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { normalizeOptions, type NormalizedOptions, type RealtimeOptions } from './options.js'
import { CloseCode, HandshakeMessage } from './constants.js'
import { componentState, connectRedis, isRedisReady, waitForRedis, type RedisConnection } from './redis/connection.js'
import { createTokenExtractor, createClientErrorScrubber } from './http/token-redaction.js'
import { createTargetRedactor } from './http/redact-target.js'
import { createPrefixMatcher } from './http/canonical-path.js'
import { genTraceId } from './http/request-id.js'
import { sendError } from './http/envelope.js'
import { createUpgradeAnswerCloser, endAnsweredUpgrade, registerWebsocket } from './http/upgrade-requests.js'
import { warnIfHalfOpenUnbounded } from './http/server-timeouts.js'
import { createOriginCheck } from './handshake/origin.js'
import { ConnectionLimiter } from './handshake/connection-limiter.js'
import { createDrainResponder } from './handshake/drain.js'
import { createHandshakeGate, kAdmitted, type Admitted } from './handshake/gate.js'
import { createDeadlineResolver } from './tokens/resolve-with-deadline.js'
import { buildTokenStore } from './tokens/build-token-store.js'
import { ChannelCatalog } from './channels/catalog.js'
import { Gateway } from './connection/gateway.js'
import { looserLimits, websocketServerLimits } from './connection/websocket-limits.js'
import { TokenRecheck } from './connection/token-recheck.js'
import { MemoryBroker } from './broker/memory.js'
import { joinCluster } from './cluster/cluster.js'
import { LocalPresence } from './cluster/presence.js'
import { GatewayStats } from './stats.js'
import { buildRealtimeApi, type Realtime } from './realtime-api.js'
import { createMetrics } from './diagnostics/metrics.js'
import { diagnosticsQueryParams, diagnosticsRoutes } from './diagnostics/routes.js'

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

const fastifyRealtime: FastifyPluginAsync<RealtimeOptions> = async function fastifyRealtime (fastify, rawOptions) {
  const options = normalizeOptions(rawOptions)
  // Everything that can refuse the options comes before anything that holds a connection or a timer.
  const stats = new GatewayStats()
  const metrics = createMetrics({ stats, connections: () => gateway.registry.size }, options.diagnostics.metricsRegistry)

  // Token state: Redis when configured, memory otherwise.
  const redis = options.redis === undefined ? undefined : connectRedis(fastify, options.redis, fastify.log)
  const store = buildTokenStore(options, redis?.client)
  if (redis !== undefined) await waitForRedis(redis.client, fastify.log)
  const resolveToken = createDeadlineResolver({
    lookup: (token) => store.resolve(token),
    timeoutMs: options.tokens.timeoutMs,
    isAvailable: tokenStoreAvailability(options, redis)
  })

  // Sockets, channels and delivery.
  const catalog = new ChannelCatalog(options.channels)
  const limiter = new ConnectionLimiter(options.limits)
  const gateway = new Gateway({
    catalog,
    limiter,
    limits: options.limits,
    heartbeatIntervalMs: options.heartbeat.intervalMs,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    stats,
    log: fastify.log
  })
  const recheck = new TokenRecheck(options.tokens.recheckIntervalMs, () => gateway.registry, resolveToken,
    (connection) => gateway.close(connection, CloseCode.TOKEN_REVOKED, 'Access token revoked'))
  // Delivery and presence: through Redis across nodes, or in this process.
  const cluster = redis === undefined
    ? undefined
    : joinCluster({ redis: redis.client, keyPrefix: options.keyPrefix, ...options.cluster, gateway, catalog, heartbeatIntervalMs: options.heartbeat.intervalMs, stats, log: fastify.log })
  const broker = cluster?.broker ?? new MemoryBroker(gateway, catalog)
  const presence = cluster?.presence ?? new LocalPresence(gateway.registry, options.cluster.nodeId)
  const realtime = buildRealtimeApi({ catalog, broker, presence, gateway, store, stats, nodeId: options.cluster.nodeId })
  fastify.decorate('realtime', realtime)

  // What the plugin created, it closes (also when a later step of the
  // registration fails); a Redis client it was given stays open.
  fastify.addHook('onClose', async () => {
    recheck.stop()
    await gateway.drain()
    await (cluster?.stop() ?? broker.close())
    store.close()
    if (options.diagnostics.metricsRegistry !== undefined) metrics.remove()
    if (redis?.owned === true) await redis.client.quit().catch(() => redis.client.disconnect())
  })

  // The WebSocket server and the route, behind the handshake gate.
  if (!fastify.hasDecorator('websocketServer')) {
    await registerWebsocket(fastify, {
      ...options.websocket,
      options: { ...websocketServerLimits(options.limits), clientTracking: false, ...options.websocket.options },
      // The gateway closes its sockets with 1001 itself (below).
      preClose: options.websocket.preClose ?? ((done) => done())
    })
  } else {
    const looser = looserLimits(fastify.websocketServer.options, options.limits)
    if (looser.length > 0) {
      fastify.log.warn({ options: looser, wanted: websocketServerLimits(options.limits) },
        'fastify-realtime: the @fastify/websocket registered before this plugin is looser than its limits; pass these ws options to it')
    }
  }
  const routePath = fastify.prefix + options.prefix
  fastify.addHook('onSend', createUpgradeAnswerCloser(routePath))
  fastify.server.on('upgrade', endAnsweredUpgrade)
  fastify.addHook('onClose', async () => { fastify.server.removeListener('upgrade', endAnsweredUpgrade) })
  warnIfHalfOpenUnbounded(fastify.server, fastify.log)
  let draining = false
  installTokenRedaction(fastify, routePath, options)
  const gate = createHandshakeGate({
    isEnabled: () => options.enabled,
    isDraining: () => draining,
    isOriginAllowed: createOriginCheck(options),
    resolveToken,
    limiter,
    tokenRetryAfterSeconds: options.tokens.retryAfterSeconds,
    limitRetryAfterSeconds: options.limits.retryAfterSeconds
  })

  // Routes live in their own context so their request ids (the `trace_id` of
  // every answer, and the connection ids) can be unique across nodes without
  // changing the user's, and every error they answer uses the envelope.
  await fastify.register(async function realtimeRoutes (routes) {
    routes.setGenReqId(genTraceId)
    routes.setErrorHandler(answerErrorInEnvelope)
    routes.decorateRequest(kAdmitted, null)
    routes.route({
      method: 'GET',
      url: options.prefix,
      onRequest: gate,
      handler: answerUpgradeRequired,
      wsHandler: function onConnection (socket: WebSocket, request) {
        gateway.accept(socket, request, request[kAdmitted] as Admitted)
      }
    })
    if (!options.diagnostics.enabled) return
    await routes.register(async (diagnostics) => await diagnosticsRoutes(diagnostics, {
      options: options.diagnostics,
      allowedOrigins: options.allowedOrigins,
      resolveToken,
      retryAfterSeconds: options.tokens.retryAfterSeconds,
      presence,
      realtime,
      metrics: metrics.registry,
      health: () => ({
        mode: redis === undefined ? 'embedded' : 'cluster',
        redis: redis === undefined ? 'none' : componentState(redis.client.status),
        subscriber: cluster === undefined ? 'none' : cluster.broker.subscriberState,
        connections: gateway.registry.size,
        draining
      })
    }), { prefix: options.prefix })
  })

  // Graceful shutdown: refuse new upgrades, 1001 to every socket, wait, terminate stragglers.
  const answerWhileDraining = createDrainResponder(createPrefixMatcher(routePath), fastify.log)
  fastify.addHook('preClose', async () => {
    draining = true
    fastify.server.on('upgrade', answerWhileDraining)
    await gateway.drain()
  })
  fastify.addHook('onClose', async () => { fastify.server.removeListener('upgrade', answerWhileDraining) })
}

/** Fails handshakes fast while the Redis behind the default token store is down. */
function tokenStoreAvailability (options: NormalizedOptions, redis: RedisConnection | undefined): () => boolean {
  if (redis === undefined || options.tokens.resolver !== undefined) return () => true
  return () => isRedisReady(redis.client)
}

/** Errors of the plugin's routes (validation, a failing hook) in the envelope; a 5xx says nothing of its cause. */
function answerErrorInEnvelope (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const statusCode = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
  if (statusCode >= 500) request.log.error({ err: error }, 'fastify-realtime: route failed')
  return sendError(request, reply, statusCode, statusCode < 500 ? error.message : 'Internal Server Error')
}

/** A plain GET that passed every check of the gate: the route only speaks WebSocket. */
async function answerUpgradeRequired (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  reply.header('upgrade', 'websocket')
  return sendError(request, reply, 426, HandshakeMessage.UPGRADE_REQUIRED)
}

/**
 * Takes tokens out of requests under the prefix before Fastify (and its
 * logger) sees them, and lets through only the query parameters the plugin's
 * routes document.
 */
function installTokenRedaction (fastify: FastifyInstance, routePath: string, options: NormalizedOptions): void {
  const documented = options.diagnostics.enabled ? diagnosticsQueryParams(options.diagnostics) : new Map<string, string[]>()
  const redact = createTargetRedactor(routePath, {
    outOfBand: options.tokens.queryParam === false ? [] : [options.tokens.queryParam],
    documented: new Map([...documented].map(([path, names]) => [routePath + path, names]))
  })
  const extractToken = createTokenExtractor(redact, options.tokens)
  const scrubClientError = createClientErrorScrubber(redact, options.tokens.queryParam)
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
export type { RealtimeOptions, TokenOptions, DiagnosticsUserOptions } from './options.js'
export type { TokenState } from './tokens/token-store.js'
export type { ChannelDefinition, ChannelScope } from './channels/catalog.js'
export type { Realtime, RealtimeChannels, RealtimeTokens, ChannelHelper, PublishOptions, UserId } from './realtime-api.js'
export type { ConnectionInfo } from './connection/connection.js'
export type { StatsSnapshot } from './stats.js'
export type { PresenceEntry } from './cluster/presence.js'
export { CloseCode, ProtocolErrorCode } from './constants.js'
export * as errors from './errors.js'
