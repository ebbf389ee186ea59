import t from 'tap'
import { readFile } from 'node:fs/promises'
import Type from 'typebox'
import { Redis } from 'ioredis'
import { normalizeOptions } from '../lib/options.js'
import type { RealtimeOptions } from '../lib/index.js'

/** Every default, by its option path: what README's options tables promise. */
const DEFAULTS = {
  prefix: '/api/v1/ws',
  enabled: true,
  allowedOrigins: [],
  allowMissingOrigin: true,
  keyPrefix: 'rt:',
  heartbeat: { intervalMs: 30000 },
  tokens: { queryParam: 'token', authorizationHeader: false, protocolPrefix: false, timeoutMs: 1000, retryAfterSeconds: 1, recheckIntervalMs: 30000 },
  limits: {
    maxConnections: 50000,
    maxConnectionsPerIp: 1000,
    handshakesPerSecond: 0,
    retryAfterSeconds: 5,
    maxPayloadBytes: 16384,
    maxFragments: 16,
    closeTimeoutMs: 2000,
    messagesPerSecond: 10,
    messageBurst: 20,
    floodCloseAfter: 50,
    maxInvalidMessages: 10,
    invalidWindowMs: 60000,
    maxSubscriptions: 32,
    maxBufferedBytes: 1048576,
    fanoutSliceSize: 2000,
    fanoutSliceBytes: 8388608,
    acksPerSecond: 1000
  },
  history: undefined,
  idempotency: { windowSeconds: 300, maxKeys: 100000 },
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
  cluster: { nodeId: 'node-a', probeIntervalMs: 5000, publishTimeoutMs: 1000 },
  websocket: {}
}

t.test('normalized options have the keys and nesting of the options, every default filled in', async (t) => {
  t.strictSame(normalizeOptions({ cluster: { nodeId: 'node-a' } }), DEFAULTS)
})

t.test('normalized options are valid options: normalizing them again changes nothing', async (t) => {
  const once = normalizeOptions({ heartbeat: { intervalMs: 500 }, limits: { maxConnections: 3 }, diagnostics: { testRoute: { enabled: true } } })
  t.strictSame(normalizeOptions(once as RealtimeOptions), once)
})

t.test('a default fills only what is missing: given values, falsy ones included, are kept', async (t) => {
  const options = normalizeOptions({
    enabled: false,
    tokens: { queryParam: false, recheckIntervalMs: 0 },
    limits: { maxConnections: 0 },
    shutdownTimeoutMs: 0,
    diagnostics: { cors: false, testRoute: { maxPerMinute: 3 } }
  })
  t.equal(options.enabled, false)
  t.equal(options.tokens.queryParam, false)
  t.equal(options.tokens.recheckIntervalMs, 0, 'an explicit 0 turns the recheck off')
  t.equal(options.tokens.timeoutMs, 1000)
  t.equal(options.limits.maxConnections, 0)
  t.equal(options.limits.maxConnectionsPerIp, 1000)
  t.equal(options.shutdownTimeoutMs, 0)
  t.strictSame(options.diagnostics.testRoute, { enabled: false, forceInProduction: false, maxPerMinute: 3 })
  t.equal(options.diagnostics.cors, false)
})

t.test('tokens.recheckIntervalMs defaults to heartbeat.intervalMs', async (t) => {
  t.equal(normalizeOptions({ heartbeat: { intervalMs: 250 } }).tokens.recheckIntervalMs, 250)
  t.equal(normalizeOptions({ heartbeat: { intervalMs: 250 }, tokens: { recheckIntervalMs: 40 } }).tokens.recheckIntervalMs, 40)
})

t.test('cluster.nodeId defaults to 12 random hex characters, new for every registration', async (t) => {
  const first = normalizeOptions().cluster.nodeId
  const second = normalizeOptions().cluster.nodeId
  t.match(first, /^[0-9a-f]{12}$/)
  t.match(second, /^[0-9a-f]{12}$/)
  t.not(first, second)
})

t.test('given objects, functions and clients reach the plugin as they are, and the raw options are left untouched', async (t) => {
  const redis = new Redis({ lazyConnect: true })
  t.teardown(() => redis.disconnect())
  const resolver = (): null => null
  const authorize = (): boolean => true
  const origin = /^https:\/\/[a-z]+\.example\.com$/
  const schema = Type.Object({ amount: Type.Number() })
  const routeOpts = { config: { audited: true } }
  const websocket = { options: { maxPayload: 2048 } }
  const raw: RealtimeOptions = {
    redis,
    allowedOrigins: [origin],
    tokens: { resolver },
    channels: { 'transfer.events': { scope: 'user', schema } },
    diagnostics: { authorize, routeOpts, adminTokens: ['a'.repeat(16)] },
    websocket
  }
  const snapshot = { ...raw, tokens: { ...raw.tokens }, diagnostics: { ...raw.diagnostics } }

  const options = normalizeOptions(raw)
  t.equal(options.redis, redis)
  t.equal(options.allowedOrigins[0], origin)
  t.equal(options.tokens.resolver, resolver)
  t.equal(options.channels['transfer.events'].schema, schema)
  t.equal(options.diagnostics.authorize, authorize)
  t.equal(options.diagnostics.routeOpts, routeOpts)
  t.equal(options.websocket, websocket)
  t.strictSame(raw, snapshot, 'no default was written into the raw options')
  t.notOk('keyFor' in options.tokens, 'an option without default stays absent')
})

t.test('two registrations never share a default object', async (t) => {
  const first = normalizeOptions()
  first.allowedOrigins.push('https://app.example.com')
  first.diagnostics.adminTokens.push('a'.repeat(16))
  Object.assign(first.websocket, { options: {} })
  const second = normalizeOptions()
  t.strictSame(second.allowedOrigins, [])
  t.strictSame(second.diagnostics.adminTokens, [])
  t.strictSame(second.websocket, {})
})

t.test('README\'s options tables give the defaults normalizeOptions fills in', async (t) => {
  const whole = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  // The client SDK's own options table is not the plugin's.
  const sdkStart = whole.indexOf('\n## Client SDK\n')
  const readme = whole.slice(0, sdkStart) + whole.slice(whole.indexOf('\n## ', sdkStart + 1))
  // `history` is off by default; its rows give the defaults of a `history` option that is given.
  const options = normalizeOptions({ cluster: { nodeId: 'node-a' }, history: {} }) as unknown as Record<string, unknown>
  // Rows whose default is code: a literal (`| \`limits.maxConnections\` | \`50000\` | …`) or another option's path.
  const rows = [...readme.matchAll(/^\| `([A-Za-z.]+)` \| `([^`]+)` \|/gm)].filter(([, path]) => path.split('.')[0] in options)
  const valueAt = (path: string): unknown => path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], options)
  const stated = (text: string): unknown => /^[a-z]+(\.[A-Za-z]+)+$/.test(text) ? valueAt(text) : JSON.parse(text.replaceAll('\'', '"'))
  t.strictSame(Object.fromEntries(rows.map(([, path, text]) => [path, stated(text)])),
    Object.fromEntries(rows.map(([, path]) => [path, valueAt(path)])))
  t.equal(rows.length, 49, 'every default written as code in the three tables was read')
})
