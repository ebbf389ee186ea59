import { randomBytes } from 'node:crypto'
import type { Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { RealtimeOptionsSchema } from './options-schema.js'
import type { Redis, Cluster } from 'ioredis'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyRequest, RouteShorthandOptions } from 'fastify'
import type { Registry as PromRegistry } from 'prom-client'
import type { DiagnosticsOptions } from './diagnostics/routes.js'
import { FST_REALTIME_INVALID_OPTION } from './errors.js'
import type { TokenState } from './tokens/token-store.js'
import { SEED_CHANNELS, type ChannelDefinition } from './channels/catalog.js'

type SchemaOptions = Static<typeof RealtimeOptionsSchema>

/** Options of `fastify-realtime`, with the function and client fields typed precisely. */
export interface RealtimeOptions extends Omit<SchemaOptions, 'allowedOrigins' | 'redis' | 'tokens' | 'websocket' | 'channels' | 'diagnostics'> {
  diagnostics?: DiagnosticsUserOptions
  /** Application channels, added to the seed's; a seed channel may be given a schema but keeps its scope. */
  channels?: Record<string, ChannelDefinition>
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
  /** How often the tokens of open sockets are resolved again (revocation by the backend); 0 turns it off. Default: heartbeat.intervalMs. */
  recheckIntervalMs?: number
  /** Redis key holding a token's state. Default `{keyPrefix}token:{sha256 hex}`. */
  keyFor?: (token: string) => string
  /** Turns the stored string into token state; `null` means unknown or revoked. */
  parse?: (raw: string) => TokenState | null
  /** Writes token state in the layout `parse` reads, so `tokens.issue` works with it. */
  format?: (state: TokenState) => string
  /** Replaces the store lookup entirely. */
  resolver?: (token: string) => Promise<TokenState | null> | TokenState | null
}

export interface DiagnosticsUserOptions {
  /** Register the diagnostic routes at all. Default true. */
  enabled?: boolean
  /** Serve connected-users, connections, metrics and test without auth. Default false. */
  public?: boolean
  /** Lets an operator in when it returns true (every protected route); without it or `adminTokens`, connections, metrics and test answer 403. */
  authorize?: (request: FastifyRequest) => boolean | Promise<boolean>
  /** Static operator tokens (16+ characters), compared in constant time: the only bearer tokens connections, metrics and test accept. */
  adminTokens?: string[]
  /** Spread into every diagnostic route (hooks, config, logLevel…), as @fastify/under-pressure's `routeOpts`. */
  routeOpts?: RouteShorthandOptions
  /** @fastify/cors on the diagnostic routes with `allowedOrigins`. Default true. */
  cors?: boolean
  testRoute?: { enabled?: boolean, forceInProduction?: boolean, maxPerMinute?: number }
  /** A prom-client Registry to register the metrics on (default: the plugin's own). */
  metricsRegistry?: PromRegistry
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
  tokens: Required<Pick<TokenOptions, 'queryParam' | 'authorizationHeader' | 'protocolPrefix' | 'timeoutMs' | 'retryAfterSeconds' | 'recheckIntervalMs'>> &
  Pick<TokenOptions, 'keyFor' | 'parse' | 'format' | 'resolver'>
  limits: {
    maxConnections: number
    maxConnectionsPerIp: number
    retryAfterSeconds: number
    maxPayloadBytes: number
    maxFragments: number
    closeTimeoutMs: number
    messagesPerSecond: number
    messageBurst: number
    floodCloseAfter: number
    maxInvalidMessages: number
    invalidWindowMs: number
    maxSubscriptions: number
    maxBufferedBytes: number
    fanoutSliceSize: number
    fanoutSliceBytes: number
  }
  channels: Record<string, ChannelDefinition>
  shutdownTimeoutMs: number
  cluster: { nodeId: string, probeIntervalMs: number, publishTimeoutMs: number }
  diagnostics: {
    enabled: boolean
    options: DiagnosticsOptions
    metricsRegistry: PromRegistry | undefined
  }
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
  limitRetryAfterSeconds: 5,
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
  shutdownTimeoutMs: 5000,
  probeIntervalMs: 5000,
  publishTimeoutMs: 1000,
  testRoutePerMinute: 10
} as const

const checkOptions = Compile(RealtimeOptionsSchema)

interface SchemaError { keyword: string, instancePath: string, schemaPath: string, message: string }

/**
 * Turns typebox's errors into one readable complaint about the first wrong
 * option: an extra key is "unknown option"; for a union, the most specific
 * branch error (deepest path, then a refinement's own message) explains best.
 */
function describeFirstError (errors: SchemaError[]): { path: string, message: string } {
  const top = errors[0].instancePath.split('/').slice(0, 2).join('/')
  const candidates = errors.filter((error) => error.instancePath.startsWith(top) && error.keyword !== 'anyOf')
  const depth = (error: SchemaError): number => error.instancePath.split('/').length * 2 + (error.keyword === '~refine' ? 1 : 0)
  const best = candidates.reduce((chosen, error) => depth(error) > depth(chosen) ? error : chosen)
  const path = best.instancePath.slice(1).replaceAll('/', '.')
  if (best.keyword === 'boolean' && best.schemaPath.endsWith('/additionalProperties')) return { path, message: 'unknown option' }
  return { path, message: best.message }
}

function normalizeDiagnostics (raw: DiagnosticsUserOptions): NormalizedOptions['diagnostics'] {
  return {
    enabled: raw.enabled ?? true,
    metricsRegistry: raw.metricsRegistry,
    options: {
      auth: { public: raw.public ?? false, authorize: raw.authorize, adminTokens: raw.adminTokens ?? [] },
      routeOpts: raw.routeOpts ?? {},
      cors: raw.cors ?? true,
      testRoute: {
        enabled: raw.testRoute?.enabled ?? false,
        forceInProduction: raw.testRoute?.forceInProduction ?? false,
        maxPerMinute: raw.testRoute?.maxPerMinute ?? defaults.testRoutePerMinute
      }
    }
  }
}

function checkChannels (channels: Record<string, ChannelDefinition>): Record<string, ChannelDefinition> {
  for (const [name, definition] of Object.entries(channels)) {
    const seed = SEED_CHANNELS[name]
    if (seed !== undefined && seed.scope !== definition.scope) {
      throw new FST_REALTIME_INVALID_OPTION(`channels.${name}.scope`, `the seed channel "${name}" is ${seed.scope}-scoped`)
    }
  }
  return channels
}

/**
 * Validates the raw options once, at registration, and fills in every default.
 * @throws FST_REALTIME_INVALID_OPTION naming the first offending option.
 */
export function normalizeOptions (raw: RealtimeOptions = {}): NormalizedOptions {
  if (!checkOptions.Check(raw)) {
    const { path, message } = describeFirstError([...checkOptions.Errors(raw)])
    throw new FST_REALTIME_INVALID_OPTION(path, message)
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
      recheckIntervalMs: tokens.recheckIntervalMs ?? raw.heartbeat?.intervalMs ?? defaults.heartbeatIntervalMs,
      keyFor: tokens.keyFor,
      parse: tokens.parse,
      format: tokens.format,
      resolver: tokens.resolver
    },
    limits: {
      maxConnections: raw.limits?.maxConnections ?? defaults.maxConnections,
      maxConnectionsPerIp: raw.limits?.maxConnectionsPerIp ?? defaults.maxConnectionsPerIp,
      retryAfterSeconds: raw.limits?.retryAfterSeconds ?? defaults.limitRetryAfterSeconds,
      maxPayloadBytes: raw.limits?.maxPayloadBytes ?? defaults.maxPayloadBytes,
      maxFragments: raw.limits?.maxFragments ?? defaults.maxFragments,
      closeTimeoutMs: raw.limits?.closeTimeoutMs ?? defaults.closeTimeoutMs,
      messagesPerSecond: raw.limits?.messagesPerSecond ?? defaults.messagesPerSecond,
      messageBurst: raw.limits?.messageBurst ?? defaults.messageBurst,
      floodCloseAfter: raw.limits?.floodCloseAfter ?? defaults.floodCloseAfter,
      maxInvalidMessages: raw.limits?.maxInvalidMessages ?? defaults.maxInvalidMessages,
      invalidWindowMs: raw.limits?.invalidWindowMs ?? defaults.invalidWindowMs,
      maxSubscriptions: raw.limits?.maxSubscriptions ?? defaults.maxSubscriptions,
      maxBufferedBytes: raw.limits?.maxBufferedBytes ?? defaults.maxBufferedBytes,
      fanoutSliceSize: raw.limits?.fanoutSliceSize ?? defaults.fanoutSliceSize,
      fanoutSliceBytes: raw.limits?.fanoutSliceBytes ?? defaults.fanoutSliceBytes
    },
    channels: checkChannels(raw.channels ?? {}),
    shutdownTimeoutMs: raw.shutdownTimeoutMs ?? defaults.shutdownTimeoutMs,
    diagnostics: normalizeDiagnostics(raw.diagnostics ?? {}),
    cluster: {
      nodeId: raw.cluster?.nodeId ?? randomBytes(6).toString('hex'),
      probeIntervalMs: raw.cluster?.probeIntervalMs ?? defaults.probeIntervalMs,
      publishTimeoutMs: raw.cluster?.publishTimeoutMs ?? defaults.publishTimeoutMs
    },
    websocket: raw.websocket ?? {}
  }
}
