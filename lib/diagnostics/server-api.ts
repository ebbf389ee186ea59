import type { FastifyError, FastifyInstance, FastifyRequest, FastifySchema, RouteShorthandOptions } from 'fastify'
import type { Static } from 'typebox'
import { okEnvelope as ok, sendError } from '../http/envelope.js'
import type { PublishOptions, PublishResult, Realtime } from '../node/realtime-api.js'
import { kOperator } from './auth.js'
import { answerBatch, publishBatch } from './publish-batch.js'
import {
  DisconnectBodySchema, DoneSchema, ForceLogoutBodySchema, PublishUnavailableSchema, PublishRequestSchema, PublishResultSchema, RevokeBodySchema
} from './schemas.js'

export interface ServerApiDependencies {
  realtime: Realtime
  /** Route options with the operator check that `diagnostics.public` does not open. */
  strictOperatorRoute: (schema: FastifySchema) => RouteShorthandOptions
  /** `Retry-After` of a 503 (Redis down, or an outcome Redis did not confirm). */
  retryAfterSeconds: number
}

const done = { done: true as const }

/**
 * One line per action, before it runs, with who asked (the name the operator
 * check gave: an admin token's digest prefix or `authorize`'s answer) and
 * what it targets; never a token or an event's data.
 */
function logAction (request: FastifyRequest, action: string, target: Record<string, unknown>): void {
  request.log.info({ operator: request[kOperator], action, ...target }, 'fastify-realtime: operator action')
}

/**
 * `app.realtime` over HTTP, for the services and workers that produce events
 * but do not hold the sockets: publish, force-logout, disconnect, revoke. Each
 * call is the API call, so it validates and fails the same way; publish also
 * takes a batch (lib/diagnostics/publish-batch.ts). Registered in
 * a context of its own, whose error handler answers a coded error with its
 * status and the code in `data.code` (a 503 with Retry-After when Redis is
 * down or did not confirm); anything else (a body the schema refused) goes on
 * to the plugin's handler. A token travels in the body only. Every action is
 * logged with the operator who asked for it (`logAction`).
 */
export function serverApiRoutes (api: FastifyInstance, { realtime, strictOperatorRoute, retryAfterSeconds }: ServerApiDependencies): void {
  api.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.statusCode === undefined || !error.code.startsWith('FST_REALTIME_')) throw error
    if (error.statusCode === 503) reply.header('retry-after', String(retryAfterSeconds))
    return sendError(request, reply, error.statusCode, error.message, { code: error.code })
  })
  // Checked by publish itself, as for any caller: the channel, its scope, its data schema.
  const publish = realtime.publish as (channel: string, event: string, data: Record<string, unknown>, options: PublishOptions) => Promise<PublishResult>

  api.post<{ Body: Static<typeof PublishRequestSchema> }>('/publish',
    strictOperatorRoute({ body: PublishRequestSchema, response: { 200: PublishResultSchema, 503: PublishUnavailableSchema } }),
    async (request, reply) => {
      if (Array.isArray(request.body)) {
        logAction(request, 'publish', { items: request.body.length })
        const outcome = await publishBatch(request.body, async ({ channel, event, data, user_id: userId, idempotency_key: idempotencyKey }) =>
          await publish(channel, event, data, { userId, idempotencyKey }))
        return answerBatch(request, reply, outcome, retryAfterSeconds)
      }
      const { channel, event, data, user_id: userId, await_ack_ms: awaitAckMs, idempotency_key: idempotencyKey } = request.body
      logAction(request, 'publish', { channel, event, user_id: userId })
      const awaitAck = awaitAckMs === undefined ? undefined : { timeoutMs: awaitAckMs }
      return ok(request, await publish(channel, event, data, { userId, awaitAck, idempotencyKey }))
    })

  api.post<{ Body: Static<typeof ForceLogoutBodySchema> }>('/force-logout',
    strictOperatorRoute({ body: ForceLogoutBodySchema, response: { 200: DoneSchema } }),
    async (request) => {
      logAction(request, 'force-logout', { user_id: request.body.user_id })
      await realtime.forceLogout(request.body.user_id, request.body.data)
      return ok(request, done)
    })

  api.post<{ Body: Static<typeof DisconnectBodySchema> }>('/disconnect',
    strictOperatorRoute({ body: DisconnectBodySchema, response: { 200: DoneSchema } }),
    async (request) => {
      const { user_id: userId, code, reason } = request.body
      logAction(request, 'disconnect', { user_id: userId, code, reason })
      await realtime.disconnect(userId, { code, reason })
      return ok(request, done)
    })

  api.post<{ Body: Static<typeof RevokeBodySchema> }>('/revoke',
    strictOperatorRoute({ body: RevokeBodySchema, response: { 200: DoneSchema } }),
    async (request) => {
      logAction(request, 'revoke', {})
      await realtime.tokens.revoke(request.body.token)
      return ok(request, done)
    })
}
