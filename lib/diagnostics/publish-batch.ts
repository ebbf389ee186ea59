import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'
import { FST_REALTIME_BATCH_HALTED } from '../errors.js'
import { okEnvelope as ok, sendError } from '../http/envelope.js'
import type { PublishResult } from '../node/realtime-api.js'
import type { PublishBatchItemSchema, PublishItemErrorSchema } from './schemas.js'

export type PublishBatchItem = Static<typeof PublishBatchItemSchema>
export type PublishItemError = Static<typeof PublishItemErrorSchema>
export type PublishItemResult = PublishResult | PublishItemError

/** A coded error of the plugin's: a caller can act on its code and status; anything else is a fault. */
export function isCodedError (error: unknown): error is FastifyError & { statusCode: number } {
  const { statusCode, code } = error as Partial<FastifyError>
  return statusCode !== undefined && typeof code === 'string' && code.startsWith('FST_REALTIME_')
}

const itemError = (error: FastifyError & { statusCode: number }): PublishItemError =>
  ({ error: { status_code: error.statusCode, code: error.code, message: error.message } })

export interface BatchOutcome {
  /** Per item, in order: its publish result or its error. */
  results: PublishItemResult[]
  /** How many items were published (confirmed). */
  published: number
  /** The 503 (Redis down, or did not confirm) that stopped the batch, if one did. */
  halt?: FastifyError & { statusCode: number }
}

/**
 * Publishes the items one after the other, each handed to publish only once
 * the one before it settled, so a user's events leave in the batch's order. An
 * item publish refuses (4xx: unknown channel, bad data…) gets its error and
 * the rest go on: it could never be delivered, so nothing is reordered around
 * it. An item that fails with a 503 stops the batch: each item after it is
 * answered FST_REALTIME_BATCH_HALTED unsent, so resending, in order, the items
 * whose error is a 503 never delivers an event before one published ahead of it.
 * A fault that is not a coded error propagates (a 500, as for the single route).
 */
export async function publishBatch (items: readonly PublishBatchItem[], publishOne: (item: PublishBatchItem) => Promise<PublishResult>): Promise<BatchOutcome> {
  const results: PublishItemResult[] = []
  let published = 0
  for (const [index, item] of items.entries()) {
    try {
      results.push(await publishOne(item))
      published++
    } catch (error) {
      if (!isCodedError(error)) throw error
      results.push(itemError(error))
      if (error.statusCode >= 500) {
        const halted = itemError(new FST_REALTIME_BATCH_HALTED(index, error.code) as FastifyError & { statusCode: number })
        while (results.length < items.length) results.push(halted)
        return { results, published, halt: error }
      }
    }
  }
  return { results, published }
}

/**
 * The answer to a batch: 200 with the results whenever an item was published
 * or none failed on Redis; 503 with Retry-After and the same results when
 * Redis stopped the batch before any item was published, so a client that
 * resends a whole batch on a 503 repeats nothing that was delivered.
 */
export function answerBatch (request: FastifyRequest, reply: FastifyReply, outcome: BatchOutcome, retryAfterSeconds: number): unknown {
  const { results, published, halt } = outcome
  if (halt === undefined || published > 0) return ok(request, results)
  reply.header('retry-after', String(retryAfterSeconds))
  return sendError(request, reply, 503, halt.message, results)
}
