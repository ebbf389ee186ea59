import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, RouteShorthandOptions } from 'fastify'
import type { Static } from 'typebox'
import type { PublishOptions, PublishResult, Realtime } from '../node/realtime-api.js'
import {
  DisconnectBodySchema, DoneSchema, ForceLogoutBodySchema, PublishBodySchema, PublishResultSchema, RevokeBodySchema
} from './schemas.js'

export interface ServerApiDependencies {
  realtime: Realtime
  /** Route options with the operator check (never opened by `diagnostics.public`). */
  operatorRoute: (schema: FastifySchema) => RouteShorthandOptions
  /** `Retry-After` of a 503 (Redis down, or an outcome Redis did not confirm). */
  retryAfterSeconds: number
}

const ok = <Data> (request: FastifyRequest, data: Data): { status_code: number, message: string, trace_id: string, data: Data } =>
  ({ status_code: 200, message: 'OK', trace_id: String(request.id), data })

/**
 * `app.realtime` over HTTP, for the services and workers that produce events
 * but do not hold the sockets: publish, force-logout, disconnect, revoke. Each
 * call is the API call, so it validates and fails the same way; a coded error
 * answers its status with the code in `data.code` (a 503 with Retry-After
 * when Redis is down or did not confirm). A token travels in the body only.
 */
export function serverApiRoutes (fastify: FastifyInstance, { realtime, operatorRoute, retryAfterSeconds }: ServerApiDependencies): void {
  // `app.realtime` rejects only with the coded errors of errors.ts, each with its status.
  const answer = (reply: FastifyReply, request: FastifyRequest) => (error: FastifyError): FastifyReply => {
    const statusCode = error.statusCode as number
    if (statusCode === 503) reply.header('retry-after', String(retryAfterSeconds))
    return reply.code(statusCode).type('application/json; charset=utf-8')
      .send({ status_code: statusCode, message: error.message, trace_id: String(request.id), data: { code: error.code } })
  }

  fastify.post<{ Body: Static<typeof PublishBodySchema> }>('/publish',
    operatorRoute({ body: PublishBodySchema, response: { 200: PublishResultSchema } }),
    async (request, reply) => {
      const { channel, event, data, user_id: userId, await_ack_ms: awaitAckMs } = request.body
      const options = {
        ...(userId === undefined ? {} : { userId }),
        ...(awaitAckMs === undefined ? {} : { awaitAck: { timeoutMs: awaitAckMs } })
      }
      // Checked by publish itself, as for any caller: the channel, its scope, its data schema.
      const publish = realtime.publish as (channel: string, event: string, data: Record<string, unknown>, options: PublishOptions) => Promise<PublishResult>
      return await publish(channel, event, data, options)
        .then((result) => ok(request, result), answer(reply, request))
    })

  fastify.post<{ Body: Static<typeof ForceLogoutBodySchema> }>('/force-logout',
    operatorRoute({ body: ForceLogoutBodySchema, response: { 200: DoneSchema } }),
    async (request, reply) => await realtime.forceLogout(request.body.user_id, request.body.data)
      .then(() => ok(request, { done: true as const }), answer(reply, request)))

  fastify.post<{ Body: Static<typeof DisconnectBodySchema> }>('/disconnect',
    operatorRoute({ body: DisconnectBodySchema, response: { 200: DoneSchema } }),
    async (request, reply) => {
      const { user_id: userId, code, reason } = request.body
      return await realtime.disconnect(userId, { code, reason })
        .then(() => ok(request, { done: true as const }), answer(reply, request))
    })

  fastify.post<{ Body: Static<typeof RevokeBodySchema> }>('/revoke',
    operatorRoute({ body: RevokeBodySchema, response: { 200: DoneSchema } }),
    async (request, reply) => await realtime.tokens.revoke(request.body.token)
      .then(() => ok(request, { done: true as const }), answer(reply, request)))
}
