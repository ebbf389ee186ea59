import Type, { type TSchema } from 'typebox'
import { MAX_AWAIT_ACK_MS, MAX_EVENT_NAME_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_PUBLISH_BATCH } from '../constants.js'

/** The envelope every JSON answer of the plugin uses, with `data` of the given schema. */
export const Envelope = <Data extends TSchema>(data: Data) => Type.Object({
  status_code: Type.Integer(),
  message: Type.String(),
  trace_id: Type.String(),
  data
})

export const ConnectedUsersSchema = Envelope(Type.Object({
  user_ids: Type.Array(Type.String()),
  count: Type.Integer()
}))

export const ConnectionEntrySchema = Type.Object({
  connection_id: Type.String(),
  user_id: Type.String(),
  node_id: Type.String(),
  connected_at: Type.String(),
  remote_address: Type.String(),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  origin: Type.Union([Type.String(), Type.Null()]),
  subscriptions: Type.Array(Type.String()),
  last_pong_at: Type.String(),
  messages_in: Type.Integer(),
  messages_out: Type.Integer(),
  buffered_bytes: Type.Integer(),
  /** History on: the last id the client acknowledged, per channel. */
  acked: Type.Optional(Type.Record(Type.String(), Type.String()))
})

export const ConnectionsSchema = Envelope(Type.Object({
  connections: Type.Array(ConnectionEntrySchema),
  count: Type.Integer(),
  next_cursor: Type.Union([Type.String(), Type.Null()])
}))

export const ConnectionsQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  cursor: Type.Optional(Type.String({ maxLength: 512 })),
  user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  node_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 }))
}, { additionalProperties: false })

export const HealthSchema = Envelope(Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  node_id: Type.String(),
  mode: Type.Union([Type.Literal('embedded'), Type.Literal('cluster')]),
  redis: Type.Union([Type.Literal('ready'), Type.Literal('connecting'), Type.Literal('down'), Type.Literal('none')]),
  subscriber: Type.Union([Type.Literal('ready'), Type.Literal('connecting'), Type.Literal('down'), Type.Literal('none')]),
  connections: Type.Integer(),
  draining: Type.Boolean()
}))

export const TestQuerySchema = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 128 })
}, { additionalProperties: false })

export const TestResultSchema = Envelope(Type.Object({
  user_id: Type.String(),
  channel: Type.String(),
  event: Type.String(),
  published: Type.Boolean(),
  connected: Type.Boolean()
}))

/**
 * The query schema of each diagnostic route that reads one, by its path below
 * the prefix: the route validates with it, and its properties are the only
 * query parameters that reach Fastify's URL (and so its logs) for that path.
 */
export const DiagnosticsQuerySchemas = {
  '/connections': ConnectionsQuerySchema,
  '/test': TestQuerySchema
} as const

// The server API: what the rest of a backend calls over HTTP (README "Server API over HTTP").
const UserIdField = Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()])

export const PublishBodySchema = Type.Object({
  channel: Type.String({ minLength: 1, maxLength: 128 }),
  event: Type.String({ minLength: 1, maxLength: MAX_EVENT_NAME_LENGTH }),
  data: Type.Record(Type.String(), Type.Unknown()),
  user_id: Type.Optional(UserIdField),
  await_ack_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_AWAIT_ACK_MS })),
  idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_IDEMPOTENCY_KEY_LENGTH }))
}, { additionalProperties: false })

const PublishResultData = Type.Object({
  id: Type.Union([Type.String(), Type.Null()]),
  acked: Type.Optional(Type.Boolean())
})

/**
 * A batch item is a publish without `await_ack_ms`: the items go out one after
 * the other, so a wait for one client's ack would hold back every item after it.
 */
export const PublishBatchItemSchema = Type.Object({
  ...PublishBodySchema.properties,
  await_ack_ms: Type.Optional(Type.Never())
}, { additionalProperties: false })

/** One publish, or a batch of them in the order they are to be published. */
export const PublishRequestSchema = Type.Union([
  PublishBodySchema,
  Type.Array(PublishBatchItemSchema, { minItems: 1, maxItems: MAX_PUBLISH_BATCH })
])

/** A batch item that was not published: the status and code the single publish would have answered. */
export const PublishItemErrorSchema = Type.Object({
  error: Type.Object({ status_code: Type.Integer(), code: Type.String(), message: Type.String() })
})

/** A batch's answer: per item, in the request's order, its publish result or its error. */
export const PublishBatchResultsSchema = Type.Array(Type.Union([PublishResultData, PublishItemErrorSchema]))

export const PublishResultSchema = Envelope(Type.Union([PublishResultData, PublishBatchResultsSchema]))

/** A 503 of publish (Redis down, or did not confirm): the code, or a batch's results when none of its items was published. */
export const PublishUnavailableSchema = Envelope(Type.Union([Type.Object({ code: Type.String() }), PublishBatchResultsSchema]))

export const ForceLogoutBodySchema = Type.Object({
  user_id: UserIdField,
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
}, { additionalProperties: false })

export const DisconnectBodySchema = Type.Object({
  user_id: UserIdField,
  code: Type.Optional(Type.Integer()),
  reason: Type.Optional(Type.String())
}, { additionalProperties: false })

export const RevokeBodySchema = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 4096 })
}, { additionalProperties: false })

export const DoneSchema = Envelope(Type.Object({ done: Type.Literal(true) }))
