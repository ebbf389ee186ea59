import type { FastifyReply, FastifyRequest } from 'fastify'

/** The JSON envelope of every HTTP answer the plugin gives (README "Error shape"). */
export interface Envelope<Data> {
  status_code: number
  message: string
  trace_id: string
  data: Data
}

/** Answers an error in the envelope; `trace_id` is the request id its log lines carry. */
export function sendError (request: FastifyRequest, reply: FastifyReply, statusCode: number, message: string): FastifyReply {
  const body: Envelope<null> = { status_code: statusCode, message, trace_id: String(request.id), data: null }
  return reply.code(statusCode).type('application/json; charset=utf-8').send(body)
}
