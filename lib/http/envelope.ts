import type { FastifyReply, FastifyRequest } from 'fastify'

/** The JSON envelope of every HTTP answer the plugin gives (README "Error shape"). */
export interface Envelope<Data> {
  status_code: number
  message: string
  trace_id: string
  data: Data
}

/** A success answer in the envelope. */
export function okEnvelope<Data> (request: FastifyRequest, data: Data): Envelope<Data> {
  return { status_code: 200, message: 'OK', trace_id: String(request.id), data }
}

/**
 * Answers an error in the envelope; `trace_id` is the request id its log
 * lines carry. `data` is null unless the route documents more (a coded error's code).
 */
export function sendError (request: FastifyRequest, reply: FastifyReply, statusCode: number, message: string, data: unknown = null): FastifyReply {
  const body: Envelope<unknown> = { status_code: statusCode, message, trace_id: String(request.id), data }
  return reply.code(statusCode).type('application/json; charset=utf-8').send(body)
}
