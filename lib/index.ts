/// <reference types="@fastify/websocket" preserve="true" />
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { normalizeOptions, type NormalizedOptions, type RealtimeOptions } from './options.js'
import { AUTO_SUBSCRIBED, Disconnect, HandshakeMessage } from './constants.js'
import { RECOVER_PARAM } from './protocol/recovery.js'
import { componentState, connectRedis, isRedisReady, waitForRedis, warnIfResending, type RedisConnection } from './redis/client.js'
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
import { handshakeRate } from './handshake/handshake-rate.js'
import { createDeadlineResolver, type Resolution } from './tokens/resolve-with-deadline.js'
import { buildTokenStore } from './tokens/build-token-store.js'
import { hashOfDigest } from './tokens/token-store.js'
import { ChannelCatalog } from './channels/catalog.js'
import { Hub } from './hub/hub.js'
import type { Connection } from './hub/connection.js'
import { ConnectionIndex } from './hub/connection-index.js'
import { Shutdown } from './shutdown.js'
import { looserLimits, websocketServerLimits } from './hub/websocket-limits.js'
import { TokenRecheck } from './hub/token-recheck.js'
import { LoopbackBroker } from './broker/loopback.js'
import { RedisBroker } from './broker/redis.js'
import { RealtimeNode } from './node/node.js'
import { topicsFor } from './node/wire.js'
import { GatewayStats } from './stats.js'
import { buildRealtimeApi, type Realtime } from './node/realtime-api.js'
import { createMetrics } from './diagnostics/metrics.js'
import { diagnosticsQueryParams, diagnosticsRoutes } from './diagnostics/routes.js'

/** ws's typings ask for the whole export of 'ws' (the class and the module's other exports); ws uses only the class. */
type WebSocketClassOption = NonNullable<NonNullable<WebsocketPluginOptions['options']>['WebSocket']>

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

const fastifyRealtime: FastifyPluginAsync<RealtimeOptions> = async function fastifyRealtime (fastify, rawOptions) {
  const options = normalizeOptions(rawOptions)
  // Everything that can refuse the options comes before anything that holds a connection or a timer.
  const stats = new GatewayStats()
  const connections = new ConnectionIndex()
  const metrics = createMetrics({ stats, connections: () => connections.size }, options.diagnostics.metricsRegistry)
  const shutdown = new Shutdown(fastify)
  if (options.diagnostics.metricsRegistry !== undefined) shutdown.own(() => metrics.remove())

  // Token state: Redis when configured, memory otherwise.
  const redis = options.redis === undefined ? undefined : connectRedis(fastify, options.redis, fastify.log)
  if (redis !== undefined && !redis.owned) warnIfResending(redis.client, fastify.log)
  if (redis?.owned === true) shutdown.own(async () => await redis.client.quit().catch(() => redis.client.disconnect()))
  const store = buildTokenStore(options, redis?.client)
  shutdown.own(() => store.close())
  if (redis !== undefined) await waitForRedis(redis.client, fastify.log)
  const isAvailable = tokenStoreAvailability(options, redis)
  const resolveToken = createDeadlineResolver({ lookup: (token) => store.resolve(token), timeoutMs: options.tokens.timeoutMs, isAvailable })
  // A store keyed by the token's hash resolves by it: sockets then keep the hash, never the token.
  const resolveHash = store.resolveHash?.bind(store)
  const keepTokens = resolveHash === undefined
  const resolveByHash = keepTokens ? undefined : createDeadlineResolver({ lookup: resolveHash, timeoutMs: options.tokens.timeoutMs, isAvailable })
  const resolveAgain = async (connection: Connection): Promise<Resolution> =>
    resolveByHash === undefined ? await resolveToken(connection.token as string) : await resolveByHash(hashOfDigest(connection.tokenDigest))

  // This node's sockets (the hub), and the node that gives messages their
  // meaning over a broker: Redis across nodes, or a loopback in this process.
  const catalog = new ChannelCatalog(options.channels)
  const limiter = new ConnectionLimiter(options.limits)
  const { history } = options
  const historyOn = history !== undefined
  const hub = new Hub({
    catalog,
    limiter,
    connections,
    limits: options.limits,
    heartbeatIntervalMs: options.heartbeat.intervalMs,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    stats,
    resolveToken,
    keepTokens,
    onDelivered: metrics.observeDeliveryLatency,
    log: fastify.log
  })
  shutdown.own(async () => await hub.drain())
  const recheck = new TokenRecheck(options.tokens.recheckIntervalMs, () => connections, resolveAgain,
    (connection) => hub.close(connection, Disconnect.TOKEN_REVOKED))
  shutdown.own(() => recheck.stop())
  const broker = redis === undefined
    ? new LoopbackBroker(history, options.idempotency.maxKeys)
    : new RedisBroker({
      client: redis.client,
      probeTopic: topicsFor(options.keyPrefix).node(options.cluster.nodeId),
      probeIntervalMs: options.cluster.probeIntervalMs,
      publishTimeoutMs: options.cluster.publishTimeoutMs,
      history,
      stats,
      log: fastify.log
    })
  const node = new RealtimeNode({
    hub,
    broker,
    catalog,
    keyPrefix: options.keyPrefix,
    nodeId: options.cluster.nodeId,
    cluster: redis === undefined ? undefined : { redis: redis.client, heartbeatIntervalMs: options.heartbeat.intervalMs },
    history: historyOn,
    idempotencyWindowSeconds: options.idempotency.windowSeconds,
    stats,
    onAcked: metrics.observeAckLatency,
    log: fastify.log
  })
  shutdown.own(async () => await node.stop())
  const realtime = buildRealtimeApi({ catalog, node, hub, store, stats, history: historyOn })
  fastify.decorate('realtime', realtime)

  // The WebSocket server and the route, behind the handshake gate.
  if (!fastify.hasDecorator('websocketServer')) {
    await registerWebsocket(fastify, {
      ...options.websocket,
      options: { ...websocketServerLimits(options.limits), clientTracking: false, WebSocket: hub.sockets.WebSocket as WebSocketClassOption, ...options.websocket.options },
      // The hub closes its sockets with 1001 itself (below).
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
  shutdown.listen(fastify.server, 'upgrade', endAnsweredUpgrade)
  warnIfHalfOpenUnbounded(fastify.server, fastify.log)
  installTokenRedaction(shutdown, fastify.server, routePath, options)
  const gate = createHandshakeGate({
    isEnabled: () => options.enabled,
    isDraining: () => hub.draining,
    isOriginAllowed: createOriginCheck(options),
    resolveToken,
    limiter,
    admitHandshake: handshakeRate(options.limits.handshakesPerSecond),
    tokenRetryAfterSeconds: options.tokens.retryAfterSeconds,
    limitRetryAfterSeconds: options.limits.retryAfterSeconds,
    isChannel: (name) => catalog.get(name) !== undefined,
    maxSubscriptions: options.limits.maxSubscriptions,
    autoSubscribed: AUTO_SUBSCRIBED,
    refused: (statusCode, reason) => stats.recordRefusedHandshake(statusCode, reason)
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
        hub.accept(socket, request, request[kAdmitted] as Admitted)
      }
    })
    if (!options.diagnostics.enabled) return
    await routes.register(async (diagnostics) => await diagnosticsRoutes(diagnostics, {
      options: options.diagnostics,
      allowedOrigins: options.allowedOrigins,
      resolveToken,
      retryAfterSeconds: options.tokens.retryAfterSeconds,
      presence: node.presence,
      realtime,
      metrics: metrics.registry,
      health: () => ({
        mode: redis === undefined ? 'embedded' : 'cluster',
        redis: redis === undefined ? 'none' : componentState(redis.client.status),
        subscriber: broker.state,
        connections: connections.size,
        draining: hub.draining
      })
    }), { prefix: options.prefix })
  })

  // Graceful shutdown begins before the server stops listening: refuse new
  // upgrades, 1001 to every socket, wait, terminate stragglers. (After this
  // plugin's @fastify/websocket stopped listening for upgrades.)
  const answerWhileDraining = createDrainResponder(createPrefixMatcher(routePath), fastify.log)
  fastify.addHook('preClose', async () => {
    shutdown.listen(fastify.server, 'upgrade', answerWhileDraining)
    await hub.drain()
  })
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
function installTokenRedaction (shutdown: Shutdown, server: FastifyInstance['server'], routePath: string, options: NormalizedOptions): void {
  const documented = options.diagnostics.enabled ? diagnosticsQueryParams(options.diagnostics) : new Map<string, string[]>()
  const redact = createTargetRedactor(routePath, {
    outOfBand: options.tokens.queryParam === false ? [RECOVER_PARAM] : [options.tokens.queryParam, RECOVER_PARAM],
    documented: new Map([...documented].map(([path, names]) => [routePath + path, names]))
  })
  const extractToken = createTokenExtractor(redact, options.tokens)
  const scrubClientError = createClientErrorScrubber(redact, options.tokens.queryParam)
  shutdown.listen(server, 'request', extractToken, true)
  shutdown.listen(server, 'upgrade', extractToken, true)
  shutdown.listen(server, 'clientError', scrubClientError, true)
}

export default fp(fastifyRealtime, { fastify: '5.x', name: 'fastify-realtime' })
export { fastifyRealtime }
export type { RealtimeOptions, TokenOptions, DiagnosticsUserOptions } from './options.js'
export type { TokenState } from './tokens/token-store.js'
export type { ChannelDefinition, ChannelScope } from './channels/catalog.js'
export type { Realtime, RealtimeChannels, RealtimeTokens, ChannelHelper, PublishOptions, PublishResult, UserId } from './node/realtime-api.js'
export type { ConnectionInfo } from './hub/connection.js'
export type { StatsSnapshot } from './stats.js'
export type { PresenceEntry } from './node/presence.js'
export { CloseCode, ProtocolErrorCode } from './constants.js'
export * as errors from './errors.js'
