import type { FastifyInstance, FastifySchema, preValidationAsyncHookHandler, RouteShorthandOptions } from 'fastify'
import cors from '@fastify/cors'
import type { Registry } from 'prom-client'
import type { Static } from 'typebox'
import type { Presence, PresenceEntry } from '../node/presence.js'
import type { NormalizedDiagnosticsOptions } from '../options.js'
import type { ComponentState } from '../redis/client.js'
import { createOriginCheck } from '../handshake/origin.js'
import { okEnvelope as ok, sendError } from '../http/envelope.js'
import { refuseUpgrade } from '../http/upgrade-requests.js'
import type { Realtime } from '../node/realtime-api.js'
import { createDiagnosticsAuth, kOperator, type DiagnosticsAuthOptions } from './auth.js'
import { consoleRoutes } from './console.js'
import { serverApiRoutes } from './server-api.js'
import {
  ConnectedUsersSchema, ConnectionsQuerySchema, ConnectionsSchema, DiagnosticsQuerySchemas, HealthSchema, TestQuerySchema, TestResultSchema
} from './schemas.js'

export interface DiagnosticsDependencies {
  options: NormalizedDiagnosticsOptions
  allowedOrigins: ReadonlyArray<string | RegExp>
  resolveToken: DiagnosticsAuthOptions['resolveToken']
  retryAfterSeconds: number
  presence: Presence
  realtime: Realtime
  metrics: Registry
  health: () => { mode: 'embedded' | 'cluster', redis: ComponentState, subscriber: ComponentState, connections: number, draining: boolean }
}

const TEST_CHANNEL = 'notification.events'
const TEST_EVENT = 'REALTIME_TEST'
const DEFAULT_PAGE = 100

/**
 * The HTTP routes below the prefix (model: @fastify/under-pressure's status
 * route): who is connected, whether this node is healthy, its metrics, an
 * opt-in test publish and the opt-in operator console (a page over these
 * same routes). Every JSON answer uses the plugin's envelope and has a
 * response schema; the protected ones run the diagnostics auth first (operators
 * only, except `connected-users`), after any hook the user put in `routeOpts`.
 */
export async function diagnosticsRoutes (fastify: FastifyInstance, deps: DiagnosticsDependencies): Promise<void> {
  const { options } = deps
  if (options.cors) {
    // The same anchored origin check as the handshake (@fastify/cors' own RegExp test is not anchored).
    const isAllowed = createOriginCheck({ allowedOrigins: deps.allowedOrigins, allowMissingOrigin: true })
    await fastify.register(cors, { origin: (origin, callback) => callback(null, isAllowed(origin)) })
  }
  // Before `routeOpts` hooks and the auth: these routes speak HTTP only, whatever else the request carries.
  fastify.addHook('onRequest', refuseUpgrade)
  fastify.decorateRequest(kOperator, null)
  const auth = createDiagnosticsAuth({ ...options, resolveToken: deps.resolveToken, retryAfterSeconds: deps.retryAfterSeconds })
  if (!auth.admitsOperators) {
    const { prefix } = fastify
    fastify.log.info(`fastify-realtime: ${prefix}/connections, ${prefix}/metrics, ${prefix}/test and the server API (${prefix}/publish, …) answer 403 to everyone: ` +
      'set diagnostics.adminTokens or diagnostics.authorize to let operators in (diagnostics.public: true opens the diagnostic ones to anyone, never the server API)')
  }
  // The user's own preValidation (none, one, or a list) follows the check.
  const userPreValidation = [options.routeOpts.preValidation ?? []].flat()
  // The check runs before validation, so a caller without a credential learns nothing of the request
  // schema (a bad body is a 400 only to an operator); the user's preHandlers run after both.
  // Only the success answer has a schema: a `routeOpts` hook may answer errors in its own shape.
  const guarded = (check: preValidationAsyncHookHandler, schema: FastifySchema): RouteShorthandOptions => ({
    ...options.routeOpts,
    preValidation: [check, ...userPreValidation] as RouteShorthandOptions['preValidation'],
    schema: { ...options.routeOpts.schema, ...schema }
  })
  const operatorRoute = (schema: FastifySchema): RouteShorthandOptions => guarded(auth.operator, schema)

  fastify.get('/connected-users', guarded(auth.user, { response: { 200: ConnectedUsersSchema } }), async (request) => {
    const userIds = (await deps.presence.connectedUsers()).sort()
    return ok(request, { user_ids: userIds, count: userIds.length })
  })

  fastify.get<{ Querystring: Static<typeof ConnectionsQuerySchema> }>('/connections',
    operatorRoute({ querystring: DiagnosticsQuerySchemas['/connections'], response: { 200: ConnectionsSchema } }),
    async (request, reply) => {
      const { limit = DEFAULT_PAGE, cursor, user_id: userId, node_id: nodeId } = request.query
      const after = cursor === undefined ? undefined : decodeCursor(cursor)
      if (after === null) return sendError(request, reply, 400, 'Invalid cursor')
      const all = (await deps.presence.connections())
        .filter((entry) => (userId === undefined || entry.user_id === userId) && (nodeId === undefined || entry.node_id === nodeId))
        .sort(byPosition)
      const start = after === undefined ? 0 : all.findIndex((entry) => byPosition(entry, after) > 0)
      const page = start === -1 ? [] : all.slice(start, start + limit)
      const last = page.at(-1)
      const more = start !== -1 && start + limit < all.length
      return ok(request, { connections: page, count: all.length, next_cursor: more && last !== undefined ? encodeCursor(last) : null })
    })

  fastify.get('/metrics', operatorRoute({ response: { 200: { type: 'string' } } }), async (_request, reply) => {
    // Behind a load balancer, scrapes of one URL come from any node: the console tells them apart by this.
    reply.header('x-realtime-node', deps.realtime.nodeId)
    reply.type(deps.metrics.contentType)
    return await deps.metrics.metrics()
  })

  // Not given `routeOpts`: its hooks are often an operator check, and load balancers have no credentials.
  fastify.get('/health', { schema: { response: { 200: HealthSchema } } }, async (request) => {
    const health = deps.health()
    const degraded = health.draining || (health.mode === 'cluster' && (health.redis !== 'ready' || health.subscriber !== 'ready'))
    return ok(request, { status: degraded ? 'degraded' : 'ok', node_id: deps.realtime.nodeId, ...health })
  })

  if (options.testRoute.enabled) registerTestRoute(fastify, deps, operatorRoute)
  if (options.console) await consoleRoutes(fastify, { base: fastify.prefix, testEvent: { channel: TEST_CHANNEL, event: TEST_EVENT } })
  // Power over every user's socket: `diagnostics.public` does not open it.
  await fastify.register(async (api) => {
    serverApiRoutes(api, { realtime: deps.realtime, strictOperatorRoute: (schema) => guarded(auth.strictOperator, schema), retryAfterSeconds: deps.retryAfterSeconds })
  })
}

function registerTestRoute (fastify: FastifyInstance, deps: DiagnosticsDependencies, operatorRoute: (schema: FastifySchema) => RouteShorthandOptions): void {
  const { forceInProduction, maxPerMinute } = deps.options.testRoute
  let windowStartedAt = 0
  let used = 0
  fastify.get<{ Querystring: Static<typeof TestQuerySchema> }>('/test',
    operatorRoute({ querystring: DiagnosticsQuerySchemas['/test'], response: { 200: TestResultSchema } }),
    async (request, reply) => {
      if (process.env.NODE_ENV === 'production' && !forceInProduction) return sendError(request, reply, 403, 'Test endpoint is disabled in production')
      const now = Date.now()
      if (now - windowStartedAt >= 60_000) {
        windowStartedAt = now
        used = 0
      }
      if (++used > maxPerMinute) {
        reply.header('retry-after', String(Math.ceil((windowStartedAt + 60_000 - now) / 1000)))
        return sendError(request, reply, 429, 'Too many test requests')
      }
      const userId = request.query.user_id
      await deps.realtime.publish(TEST_CHANNEL, TEST_EVENT, { test: true, sent_at: now, trace_id: String(request.id) }, { userId })
      const connected = (await deps.presence.connectedUsers()).includes(userId)
      return ok(request, { user_id: userId, channel: TEST_CHANNEL, event: TEST_EVENT, published: true, connected })
    })
}

/** The documented query parameters of the diagnostic routes `options` registers, by path below the prefix. */
export function diagnosticsQueryParams (options: Pick<NormalizedDiagnosticsOptions, 'testRoute'>): Map<string, string[]> {
  const registered = Object.entries(DiagnosticsQuerySchemas).filter(([path]) => path !== '/test' || options.testRoute.enabled)
  return new Map(registered.map(([path, schema]) => [path, Object.keys(schema.properties)]))
}

type Position = Pick<PresenceEntry, 'node_id' | 'connection_id'>

function byPosition (a: Position, b: Position): number {
  return a.node_id === b.node_id ? compare(a.connection_id, b.connection_id) : compare(a.node_id, b.node_id)
}

const compare = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

function encodeCursor (entry: Position): string {
  return Buffer.from(JSON.stringify([entry.node_id, entry.connection_id])).toString('base64url')
}

/** The position a cursor points after; null for anything this plugin did not write. */
function decodeCursor (cursor: string): Position | null {
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown
    if (Array.isArray(position) && position.length === 2 && typeof position[0] === 'string' && typeof position[1] === 'string') {
      return { node_id: position[0], connection_id: position[1] }
    }
  } catch {}
  return null
}
