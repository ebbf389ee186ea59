import { randomBytes } from 'node:crypto'
import { Compile } from 'typebox/compile'
import { RealtimeOptionsSchema, historyDefaults, optionDefaults, type SchemaOptions } from './options-schema.js'
import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyRequest, RouteShorthandOptions } from 'fastify'
import type { Registry as PromRegistry } from 'prom-client'
import { FST_REALTIME_INVALID_OPTION } from './errors.js'
import type { TokenState } from './tokens/token-store.js'
import type { RedisOption } from './redis/client.js'
import { BUILT_IN_CHANNELS, type ChannelDefinition } from './channels/catalog.js'

/**
 * Options of `fastify-realtime`. Each field is described once: by the schema,
 * or below where a function, client or schema needs a precise type (README's
 * Options tables say what each does and its default).
 */
export interface RealtimeOptions extends Omit<SchemaOptions, 'allowedOrigins' | 'redis' | 'tokens' | 'websocket' | 'channels' | 'diagnostics'> {
  diagnostics?: DiagnosticsUserOptions
  /** Application channels, added to the built-in ones; a built-in channel may be given a schema but keeps its scope. */
  channels?: Record<string, ChannelDefinition>
  allowedOrigins?: Array<string | RegExp>
  redis?: RedisOption
  tokens?: TokenOptions
  /** Passed to `@fastify/websocket` when this plugin registers it (it is left alone if already registered). */
  websocket?: WebsocketPluginOptions
}

/** The `tokens` option: where a token comes from and how it is resolved. */
export interface TokenOptions extends Omit<NonNullable<SchemaOptions['tokens']>, 'keyFor' | 'parse' | 'format' | 'resolver'> {
  /** Redis key holding a token's state. Default `{keyPrefix}token:{sha256 hex}`. */
  keyFor?: (token: string) => string
  /** Turns the stored string into token state; `null` means unknown or revoked. */
  parse?: (raw: string) => TokenState | null
  /** Writes token state in the layout `parse` reads, so `tokens.issue` works with it. */
  format?: (state: TokenState) => string
  /** Replaces the store lookup entirely. */
  resolver?: (token: string) => Promise<TokenState | null> | TokenState | null
}

/** The `diagnostics` option: the diagnostic routes and who may use them. */
export interface DiagnosticsUserOptions extends Omit<NonNullable<SchemaOptions['diagnostics']>, 'authorize' | 'routeOpts' | 'metricsRegistry'> {
  /**
   * Lets an operator in when it returns true, or a non-empty string that names
   * the operator in the action log (every protected route); without it or
   * `adminTokens`, connections, metrics and test answer 403.
   */
  authorize?: (request: FastifyRequest) => boolean | string | Promise<boolean | string>
  /** Spread into every diagnostic route (hooks, config, logLevel…), as @fastify/under-pressure's `routeOpts`. */
  routeOpts?: RouteShorthandOptions
  /** A prom-client Registry to register the metrics on (default: the plugin's own). */
  metricsRegistry?: PromRegistry
}

/** A group of options that `fillDefaults` fills key by key: a non-empty plain object of defaults. */
type IsGroup<Default> = Default extends readonly unknown[] ? false
  : Default extends Record<string, unknown> ? ([keyof Default] extends [never] ? false : true) : false

/**
 * `Options` once `fillDefaults(options, defaults)` ran: the keys `Defaults`
 * has are always set (with the option's own type), the others stay optional.
 */
type Filled<Options, Defaults> = Omit<Options, keyof Defaults> & {
  -readonly [Key in keyof Defaults & keyof Options]-?: IsGroup<Defaults[Key]> extends true
    ? Filled<NonNullable<Options[Key]>, Defaults[Key]>
    : NonNullable<Options[Key]>
}

/** The defaults `normalizeOptions` computes from other options or by chance, by their options' names. */
interface ComputedDefaults {
  tokens: { recheckIntervalMs: number }
  cluster: { nodeId: string }
}

/** Options after validation and defaults, with the options' own keys and nesting: what the rest of the plugin reads. */
export type NormalizedOptions = Filled<Omit<RealtimeOptions, 'history'>, typeof optionDefaults & ComputedDefaults> & {
  /** Undefined while history is off. */
  history: Required<NonNullable<RealtimeOptions['history']>> | undefined
}

/** The diagnostics options after defaults, as the diagnostic routes read them. */
export type NormalizedDiagnosticsOptions = NormalizedOptions['diagnostics']

const checkOptions = Compile(RealtimeOptionsSchema)

export interface SchemaError { keyword: string, instancePath: string, schemaPath: string, message: string }

/**
 * Turns typebox's errors into one readable complaint about the first wrong
 * option: an extra key is "unknown option"; for a union, the most specific
 * branch error (deepest path, then a refinement's own message) explains best.
 */
export function describeFirstError (errors: SchemaError[]): { path: string, message: string } {
  const top = errors[0].instancePath.split('/').slice(0, 2).join('/')
  const candidates = errors.filter((error) => error.instancePath.startsWith(top) && error.keyword !== 'anyOf')
  const depth = (error: SchemaError): number => error.instancePath.split('/').length * 2 + (error.keyword === '~refine' ? 1 : 0)
  const best = candidates.reduce((chosen, error) => depth(error) > depth(chosen) ? error : chosen)
  const path = best.instancePath.slice(1).replaceAll('/', '.')
  if (best.keyword === 'boolean' && best.schemaPath.endsWith('/additionalProperties')) return { path, message: 'unknown option' }
  return { path, message: best.message }
}

/**
 * A copy of `options` with every missing value taken from `defaults`, group by
 * group. What the user gave is kept as it is (a client, a function, a RegExp);
 * a default object is copied, so no two registrations share one.
 */
export function fillDefaults<Options extends object, Defaults extends object> (options: Options | undefined, defaults: Defaults): Filled<Options, Defaults> {
  const filled: Record<string, unknown> = { ...options }
  for (const [key, fallback] of Object.entries(defaults)) {
    if (isGroup(fallback)) filled[key] = fillDefaults(filled[key] as object | undefined, fallback)
    else if (filled[key] === undefined) filled[key] = structuredClone(fallback)
  }
  return filled as Filled<Options, Defaults>
}

const isGroup = (value: unknown): value is object =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0

export function checkChannels (channels: Record<string, ChannelDefinition>): Record<string, ChannelDefinition> {
  for (const [name, definition] of Object.entries(channels)) {
    const builtIn = BUILT_IN_CHANNELS[name]
    if (builtIn !== undefined && builtIn.scope !== definition.scope) {
      throw new FST_REALTIME_INVALID_OPTION(`channels.${name}.scope`, `the built-in channel "${name}" is ${builtIn.scope}-scoped`)
    }
  }
  return channels
}

/** A `history` option with its defaults, undefined while history is off (shared with the standalone publisher). */
export function normalizeHistory (raw: RealtimeOptions['history']): NormalizedOptions['history'] {
  if (raw === undefined) return undefined
  const history = fillDefaults(raw, historyDefaults)
  if (history.metaTtlSeconds < history.ttlSeconds) {
    throw new FST_REALTIME_INVALID_OPTION('history.metaTtlSeconds', 'must be at least history.ttlSeconds (a stream\'s epoch must outlive its events)')
  }
  return history
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
  const filled = fillDefaults(raw, optionDefaults)
  const history = normalizeHistory(raw.history)
  return {
    ...filled,
    history,
    tokens: { ...filled.tokens, recheckIntervalMs: filled.tokens.recheckIntervalMs ?? filled.heartbeat.intervalMs },
    cluster: { ...filled.cluster, nodeId: filled.cluster.nodeId ?? randomBytes(6).toString('hex') },
    channels: checkChannels(filled.channels)
  }
}
