import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { Redis, Cluster } from 'ioredis'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import { FST_REALTIME_INVALID_OPTION } from './errors.js'
import type { TokenState } from './tokens/token-store.js'

const isFunction = (value: unknown): boolean => typeof value === 'function'
const FunctionSchema = Type.Refine(Type.Unknown(), isFunction, () => 'must be a function')
const OriginSchema = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Refine(Type.Unknown(), (value) => value instanceof RegExp, () => 'must be a string or a RegExp')
])
// An ioredis client (Redis or Cluster) is recognised by its surface rather than by
// class identity, so a copy of ioredis in the user's tree is accepted too.
const RedisClientSchema = Type.Refine(
  Type.Unknown(),
  (value) => typeof value === 'object' && value !== null && isFunction((value as Redis).duplicate) &&
    isFunction((value as Redis).get) && typeof (value as Redis).status === 'string',
  () => 'must be a redis:// URL, an ioredis client, or { namespace } of @fastify/redis'
)
const RedisOptionSchema = Type.Union([
  Type.String({ pattern: '^rediss?://' }),
  Type.Object({ namespace: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
  RedisClientSchema
])
const PositiveInteger = Type.Integer({ minimum: 1 })

/** What `app.register(realtime, opts)` accepts; every field is optional. */
export const RealtimeOptionsSchema = Type.Object({
  prefix: Type.Optional(Type.String({ pattern: '^/[^?#]*[^/?#]$' })),
  enabled: Type.Optional(Type.Boolean()),
  allowedOrigins: Type.Optional(Type.Array(OriginSchema)),
  allowMissingOrigin: Type.Optional(Type.Boolean()),
  redis: Type.Optional(RedisOptionSchema),
  keyPrefix: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  heartbeat: Type.Optional(Type.Object({
    intervalMs: Type.Optional(Type.Integer({ minimum: 10 }))
  }, { additionalProperties: false })),
  tokens: Type.Optional(Type.Object({
    queryParam: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)])),
    authorizationHeader: Type.Optional(Type.Boolean()),
    protocolPrefix: Type.Optional(Type.Union([Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.Literal(false)])),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000 })),
    retryAfterSeconds: Type.Optional(PositiveInteger),
    keyFor: Type.Optional(FunctionSchema),
    parse: Type.Optional(FunctionSchema),
    resolver: Type.Optional(FunctionSchema)
  }, { additionalProperties: false })),
  limits: Type.Optional(Type.Object({
    maxConnections: Type.Optional(Type.Integer({ minimum: 0 })),
    maxConnectionsPerIp: Type.Optional(Type.Integer({ minimum: 0 })),
    retryAfterSeconds: Type.Optional(PositiveInteger)
  }, { additionalProperties: false })),
  websocket: Type.Optional(Type.Object({}, { additionalProperties: true }))
}, { additionalProperties: false })

type SchemaOptions = Static<typeof RealtimeOptionsSchema>

/** Options of `fastify-realtime`, with the function and client fields typed precisely. */
export interface RealtimeOptions extends Omit<SchemaOptions, 'allowedOrigins' | 'redis' | 'tokens' | 'websocket'> {
  allowedOrigins?: Array<string | RegExp>
  redis?: string | Redis | Cluster | { namespace?: string }
  tokens?: TokenOptions
  /** Passed to `@fastify/websocket` when this plugin registers it (it is left alone if already registered). */
  websocket?: WebsocketPluginOptions
}

export interface TokenOptions {
  /** Query parameter carrying the token; `false` turns the query source off. Default `'token'`. */
  queryParam?: string | false
  /** Accept `Authorization: Bearer <token>`. Default `false`. */
  authorizationHeader?: boolean
  /** Accept a `Sec-WebSocket-Protocol` entry `<prefix><token>`; `false` (default) turns it off. */
  protocolPrefix?: string | false
  /** How long the token store may take before the handshake answers 503. Default 1000. */
  timeoutMs?: number
  /** `Retry-After` sent with 503 `Token store unavailable`. Default 1. */
  retryAfterSeconds?: number
  /** Redis key holding a token's state. Default `{keyPrefix}token:{sha256 hex}`. */
  keyFor?: (token: string) => string
  /** Turns the stored string into token state; `null` means unknown or revoked. */
  parse?: (raw: string) => TokenState | null
  /** Replaces the store lookup entirely. */
  resolver?: (token: string) => Promise<TokenState | null> | TokenState | null
}

/** Options after validation and defaults: what the rest of the plugin reads. */
export interface NormalizedOptions {
  prefix: string
  enabled: boolean
  allowedOrigins: Array<string | RegExp>
  allowMissingOrigin: boolean
  redis: RealtimeOptions['redis']
  keyPrefix: string
  heartbeat: { intervalMs: number }
  tokens: Required<Pick<TokenOptions, 'queryParam' | 'authorizationHeader' | 'protocolPrefix' | 'timeoutMs' | 'retryAfterSeconds'>> &
  Pick<TokenOptions, 'keyFor' | 'parse' | 'resolver'>
  limits: { maxConnections: number, maxConnectionsPerIp: number, retryAfterSeconds: number }
  websocket: WebsocketPluginOptions
}

export const defaults = {
  prefix: '/api/v1/ws',
  keyPrefix: 'rt:',
  heartbeatIntervalMs: 30_000,
  tokenTimeoutMs: 1000,
  retryAfterSeconds: 1,
  maxConnections: 50_000,
  maxConnectionsPerIp: 1000,
  limitRetryAfterSeconds: 5
} as const

const checkOptions = Compile(RealtimeOptionsSchema)

/**
 * Validates the raw options once, at registration, and fills in every default.
 * @throws FST_REALTIME_INVALID_OPTION naming the first offending option.
 */
export function normalizeOptions (raw: RealtimeOptions = {}): NormalizedOptions {
  if (!checkOptions.Check(raw)) {
    const [first] = checkOptions.Errors(raw)
    let path = first.instancePath.slice(1).replaceAll('/', '.')
    const extra = (first.params as { additionalProperties?: string[] }).additionalProperties
    if (first.keyword === 'additionalProperties' && extra) path = [path, extra[0]].filter(Boolean).join('.')
    throw new FST_REALTIME_INVALID_OPTION(path, first.keyword === 'additionalProperties' ? 'unknown option' : first.message)
  }
  const tokens = raw.tokens ?? {}
  return {
    prefix: raw.prefix ?? defaults.prefix,
    enabled: raw.enabled ?? true,
    allowedOrigins: raw.allowedOrigins ?? [],
    allowMissingOrigin: raw.allowMissingOrigin ?? true,
    redis: raw.redis,
    keyPrefix: raw.keyPrefix ?? defaults.keyPrefix,
    heartbeat: { intervalMs: raw.heartbeat?.intervalMs ?? defaults.heartbeatIntervalMs },
    tokens: {
      queryParam: tokens.queryParam ?? 'token',
      authorizationHeader: tokens.authorizationHeader ?? false,
      protocolPrefix: tokens.protocolPrefix ?? false,
      timeoutMs: tokens.timeoutMs ?? defaults.tokenTimeoutMs,
      retryAfterSeconds: tokens.retryAfterSeconds ?? defaults.retryAfterSeconds,
      keyFor: tokens.keyFor,
      parse: tokens.parse,
      resolver: tokens.resolver
    },
    limits: {
      maxConnections: raw.limits?.maxConnections ?? defaults.maxConnections,
      maxConnectionsPerIp: raw.limits?.maxConnectionsPerIp ?? defaults.maxConnectionsPerIp,
      retryAfterSeconds: raw.limits?.retryAfterSeconds ?? defaults.limitRetryAfterSeconds
    },
    websocket: raw.websocket ?? {}
  }
}
