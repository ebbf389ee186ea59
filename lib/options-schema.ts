import Type, { type Static } from 'typebox'
import type { Redis } from 'ioredis'

/**
 * The typebox schema every option is validated against, once, at registration
 * (see `normalizeOptions` in options.ts). Functions, RegExps and clients are
 * checked by refinements: JSON Schema has no words for them.
 */
const isFunction = (value: unknown): boolean => typeof value === 'function'
const FunctionSchema = Type.Refine(Type.Unknown(), isFunction, () => 'must be a function')
const OriginSchema = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Refine(Type.Unknown(), (value) => value instanceof RegExp, () => 'must be a string or a RegExp')
])
// An ioredis client (Redis or Cluster) is recognised by its surface rather than by
// class identity, so a copy of ioredis in the user's tree is accepted too.
export const RedisClientSchema = Type.Refine(
  Type.Unknown(),
  (value) => typeof value === 'object' && value !== null && isFunction((value as Redis).duplicate) &&
    isFunction((value as Redis).get) && typeof (value as Redis).status === 'string',
  () => 'must be a redis:// URL, an ioredis client, or { namespace } of @fastify/redis'
)
export const RedisUrlSchema = Type.String({ pattern: '^rediss?://' })
const RedisOptionSchema = Type.Union([
  RedisUrlSchema,
  Type.Object({ namespace: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
  RedisClientSchema
])
const PositiveInteger = Type.Integer({ minimum: 1 })
const CHANNEL_NAME = '^[A-Za-z0-9_.:-]{1,128}$'

// The groups the standalone publisher takes too, with the same meaning (fastify-realtime/publisher).
export const KeyPrefixSchema = Type.String({ minLength: 1, maxLength: 64 })
export const HistorySchema = Type.Object({
  size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
  metaTtlSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
  readTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000 }))
}, { additionalProperties: false })
export const IdempotencySchema = Type.Object({
  windowSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
  maxKeys: Type.Optional(PositiveInteger)
}, { additionalProperties: false })
export const ChannelsSchema = Type.Record(Type.String({ pattern: CHANNEL_NAME }), Type.Object({
  scope: Type.Union([Type.Literal('global'), Type.Literal('user')]),
  schema: Type.Optional(Type.Refine(Type.Unknown(), (value) => typeof value === 'object' && value !== null, () => 'must be a typebox schema'))
}, { additionalProperties: false }))
export const PublishTimeoutSchema = Type.Integer({ minimum: 1, maximum: 60000 })
export const KeyForSchema = FunctionSchema

/** What `app.register(realtime, opts)` accepts; every field is optional. */
export const RealtimeOptionsSchema = Type.Object({
  prefix: Type.Optional(Type.String({ pattern: '^/[^?#]*[^/?#]$' })),
  enabled: Type.Optional(Type.Boolean()),
  allowedOrigins: Type.Optional(Type.Array(OriginSchema)),
  allowMissingOrigin: Type.Optional(Type.Boolean()),
  redis: Type.Optional(RedisOptionSchema),
  keyPrefix: Type.Optional(KeyPrefixSchema),
  heartbeat: Type.Optional(Type.Object({
    intervalMs: Type.Optional(Type.Integer({ minimum: 10 }))
  }, { additionalProperties: false })),
  tokens: Type.Optional(Type.Object({
    queryParam: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)])),
    authorizationHeader: Type.Optional(Type.Boolean()),
    protocolPrefix: Type.Optional(Type.Union([Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.Literal(false)])),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000 })),
    retryAfterSeconds: Type.Optional(PositiveInteger),
    recheckIntervalMs: Type.Optional(Type.Integer({ minimum: 0 })),
    keyFor: Type.Optional(KeyForSchema),
    parse: Type.Optional(FunctionSchema),
    format: Type.Optional(FunctionSchema),
    resolver: Type.Optional(FunctionSchema)
  }, { additionalProperties: false })),
  limits: Type.Optional(Type.Object({
    maxConnections: Type.Optional(Type.Integer({ minimum: 0 })),
    maxConnectionsPerIp: Type.Optional(Type.Integer({ minimum: 0 })),
    handshakesPerSecond: Type.Optional(Type.Integer({ minimum: 0 })),
    retryAfterSeconds: Type.Optional(PositiveInteger),
    maxPayloadBytes: Type.Optional(Type.Integer({ minimum: 64 })),
    maxFragments: Type.Optional(PositiveInteger),
    closeTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60000 })),
    messagesPerSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    messageBurst: Type.Optional(PositiveInteger),
    floodCloseAfter: Type.Optional(PositiveInteger),
    maxInvalidMessages: Type.Optional(PositiveInteger),
    invalidWindowMs: Type.Optional(Type.Integer({ minimum: 100 })),
    maxSubscriptions: Type.Optional(PositiveInteger),
    maxBufferedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    fanoutSliceSize: Type.Optional(PositiveInteger),
    fanoutSliceBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    acksPerSecond: Type.Optional(PositiveInteger)
  }, { additionalProperties: false })),
  history: Type.Optional(HistorySchema),
  idempotency: Type.Optional(IdempotencySchema),
  channels: Type.Optional(ChannelsSchema),
  shutdownTimeoutMs: Type.Optional(Type.Integer({ minimum: 0 })),
  diagnostics: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    public: Type.Optional(Type.Boolean()),
    authorize: Type.Optional(FunctionSchema),
    adminTokens: Type.Optional(Type.Array(Type.String({ minLength: 16 }))),
    routeOpts: Type.Optional(Type.Object({}, { additionalProperties: true })),
    cors: Type.Optional(Type.Boolean()),
    console: Type.Optional(Type.Boolean()),
    testRoute: Type.Optional(Type.Object({
      enabled: Type.Optional(Type.Boolean()),
      forceInProduction: Type.Optional(Type.Boolean()),
      maxPerMinute: Type.Optional(PositiveInteger)
    }, { additionalProperties: false })),
    metricsRegistry: Type.Optional(Type.Refine(Type.Unknown(), (value) => typeof value === 'object' && value !== null && isFunction((value as { metrics?: unknown }).metrics), () => 'must be a prom-client Registry'))
  }, { additionalProperties: false })),
  cluster: Type.Optional(Type.Object({
    nodeId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
    probeIntervalMs: Type.Optional(Type.Integer({ minimum: 10 })),
    publishTimeoutMs: Type.Optional(PublishTimeoutSchema)
  }, { additionalProperties: false })),
  websocket: Type.Optional(Type.Object({}, { additionalProperties: true }))
}, { additionalProperties: false })

/** The options as the schema alone can type them (functions and clients as `unknown`). */
export type SchemaOptions = Static<typeof RealtimeOptionsSchema>

/** Any part of the options, each group (plain object) partial in turn. */
type PartialOptions<Options> = {
  [Key in keyof Options]?: NonNullable<Options[Key]> extends readonly unknown[] ? Options[Key]
    : NonNullable<Options[Key]> extends Record<string, unknown> ? PartialOptions<NonNullable<Options[Key]>> : Options[Key]
}

/**
 * Every default, once, shaped exactly like the options (same keys, same
 * nesting). One object rather than typebox `default` annotations: typebox
 * keeps `default` out of the static type, so the normalized type could not
 * tell from the schema which options are always set; the keys of this object
 * tell it (see `NormalizedOptions`). A group (a non-empty object) is filled
 * key by key; any other default stands for a missing value whole. The
 * defaults that depend on other options or on chance (`tokens.recheckIntervalMs`,
 * `cluster.nodeId`) are computed in `normalizeOptions`. `history` is off
 * unless given, so its defaults (`historyDefaults`) apply only then.
 */
export const optionDefaults = {
  prefix: '/api/v1/ws',
  enabled: true,
  allowedOrigins: [],
  allowMissingOrigin: true,
  keyPrefix: 'rt:',
  heartbeat: { intervalMs: 30_000 },
  tokens: { queryParam: 'token', authorizationHeader: false, protocolPrefix: false, timeoutMs: 1000, retryAfterSeconds: 1 },
  limits: {
    maxConnections: 50_000,
    maxConnectionsPerIp: 1000,
    handshakesPerSecond: 0,
    retryAfterSeconds: 5,
    maxPayloadBytes: 16 * 1024,
    maxFragments: 16,
    closeTimeoutMs: 2000,
    messagesPerSecond: 10,
    messageBurst: 20,
    floodCloseAfter: 50,
    maxInvalidMessages: 10,
    invalidWindowMs: 60_000,
    maxSubscriptions: 32,
    maxBufferedBytes: 1024 * 1024,
    fanoutSliceSize: 2000,
    fanoutSliceBytes: 8 * 1024 * 1024,
    acksPerSecond: 1000
  },
  idempotency: { windowSeconds: 300, maxKeys: 100_000 },
  channels: {},
  shutdownTimeoutMs: 5000,
  diagnostics: {
    enabled: true,
    public: false,
    adminTokens: [],
    routeOpts: {},
    cors: true,
    console: false,
    testRoute: { enabled: false, forceInProduction: false, maxPerMinute: 10 }
  },
  cluster: { probeIntervalMs: 5000, publishTimeoutMs: 1000 },
  websocket: {}
} satisfies PartialOptions<SchemaOptions>

/** The defaults of a `history` option that is given. */
export const historyDefaults = {
  size: 256,
  ttlSeconds: 600,
  metaTtlSeconds: 30 * 24 * 3600,
  readTimeoutMs: 5000
} satisfies NonNullable<SchemaOptions['history']>
