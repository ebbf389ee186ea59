import t from 'tap'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import fastifyRedis from '@fastify/redis'
import { Redis } from 'ioredis'
import realtime, { type RealtimeOptions } from '../lib/index.js'
import { REDIS_URL, uniquePrefix } from './helpers/app.js'
import { connect } from './helpers/client.js'

type CodedError = Error & { code?: string }

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Registers the plugin with `options` on a fresh app and returns what `ready()` rejected with. */
async function registrationError (t: { teardown: (fn: () => unknown) => void }, options: unknown, before?: (app: FastifyInstance) => void): Promise<CodedError> {
  const app = Fastify()
  t.teardown(() => app.close())
  before?.(app)
  app.register(realtime, options as RealtimeOptions)
  return await app.ready().then(
    () => { throw new Error(`ready() resolved for ${JSON.stringify(options)}`) },
    (error: CodedError) => error
  )
}

/** Starts `app` on a free loopback port and returns its ws:// base. */
async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

/** Ids of clients on the shared Redis that are named `fastify-realtime` and selected `db`. */
async function realtimeClientIds (redis: Redis, db: number): Promise<string[]> {
  const list = await redis.call('CLIENT', 'LIST') as string
  return list.split('\n').filter(Boolean).map((line) => Object.fromEntries(line.split(' ').map((pair) => {
    const at = pair.indexOf('=')
    return [pair.slice(0, at), pair.slice(at + 1)]
  }))).filter((client) => client.name === 'fastify-realtime' && client.db === String(db)).map((client) => client.id)
}

t.test('invalid options reject registration with FST_REALTIME_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<{ path: string, options: unknown }> = [
    { path: 'prefix', options: { prefix: 'api/v1/ws' } },
    { path: 'prefix', options: { prefix: '/api/v1/ws/' } },
    { path: 'prefix', options: { prefix: 42 } },
    { path: 'enabled', options: { enabled: 'yes' } },
    { path: 'allowedOrigins', options: { allowedOrigins: 'https://app.example.com' } },
    { path: 'allowedOrigins.0', options: { allowedOrigins: [42] } },
    { path: 'allowedOrigins.1', options: { allowedOrigins: ['https://app.example.com', ''] } },
    { path: 'allowMissingOrigin', options: { allowMissingOrigin: 1 } },
    { path: 'redis', options: { redis: 'localhost:6379' } },
    { path: 'redis', options: { redis: 'http://127.0.0.1:6379' } },
    { path: 'redis', options: { redis: 6379 } },
    { path: 'redis.host', options: { redis: { host: '127.0.0.1' } } },
    { path: 'keyPrefix', options: { keyPrefix: '' } },
    { path: 'keyPrefix', options: { keyPrefix: 'x'.repeat(65) } },
    { path: 'heartbeat', options: { heartbeat: 30000 } },
    { path: 'heartbeat.intervalMs', options: { heartbeat: { intervalMs: 5 } } },
    { path: 'heartbeat.intervalMs', options: { heartbeat: { intervalMs: 1000.5 } } },
    { path: 'heartbeat.intervalMs', options: { heartbeat: { intervalMs: '30000' } } },
    { path: 'heartbeat.interval', options: { heartbeat: { interval: 30000 } } },
    { path: 'tokens.queryParam', options: { tokens: { queryParam: '' } } },
    { path: 'tokens.queryParam', options: { tokens: { queryParam: true } } },
    { path: 'tokens.authorizationHeader', options: { tokens: { authorizationHeader: 'yes' } } },
    { path: 'tokens.protocolPrefix', options: { tokens: { protocolPrefix: 'bearer token' } } },
    { path: 'tokens.timeoutMs', options: { tokens: { timeoutMs: 0 } } },
    { path: 'tokens.timeoutMs', options: { tokens: { timeoutMs: 60001 } } },
    { path: 'tokens.retryAfterSeconds', options: { tokens: { retryAfterSeconds: 0 } } },
    { path: 'tokens.keyFor', options: { tokens: { keyFor: 'session:' } } },
    { path: 'tokens.parse', options: { tokens: { parse: JSON } } },
    { path: 'tokens.resolver', options: { tokens: { resolver: {} } } },
    { path: 'tokens.ttl', options: { tokens: { ttl: 60 } } },
    { path: 'limits.maxConnections', options: { limits: { maxConnections: -1 } } },
    { path: 'limits.maxConnections', options: { limits: { maxConnections: 1.5 } } },
    { path: 'limits.maxConnectionsPerIp', options: { limits: { maxConnectionsPerIp: -1 } } },
    { path: 'limits.handshakesPerSecond', options: { limits: { handshakesPerSecond: -1 } } },
    { path: 'limits.handshakesPerSecond', options: { limits: { handshakesPerSecond: 2.5 } } },
    { path: 'limits.retryAfterSeconds', options: { limits: { retryAfterSeconds: 0 } } },
    { path: 'cluster.publishTimeoutMs', options: { cluster: { publishTimeoutMs: 0 } } },
    { path: 'cluster.publishTimeoutMs', options: { cluster: { publishTimeoutMs: 60001 } } },
    { path: 'cluster.publishTimeoutMs', options: { cluster: { publishTimeoutMs: 1.5 } } },
    { path: 'websocket', options: { websocket: true } },
    { path: 'foo', options: { foo: 1 } }
  ]
  for (const c of cases) {
    const name = `${c.path}: ${JSON.stringify(c.options)}`
    const error = await registrationError(t, c.options)
    t.equal(error.code, 'FST_REALTIME_INVALID_OPTION', name)
    t.ok(error instanceof TypeError, `${name}: is a TypeError`)
    t.match(error.message, new RegExp(`^Invalid fastify-realtime option "${escapeRegExp(c.path)}": .+`), name)
  }
})

t.test('the first offending option is named when several are wrong', async (t) => {
  const error = await registrationError(t, { prefix: '/ok', heartbeat: { intervalMs: 1 }, limits: { maxConnections: -1 } })
  t.equal(error.code, 'FST_REALTIME_INVALID_OPTION')
  t.match(error.message, /^Invalid fastify-realtime option "heartbeat\.intervalMs": /)
})

t.test('an unknown option is called unknown', async (t) => {
  const error = await registrationError(t, { foo: 1 })
  t.equal(error.message, 'Invalid fastify-realtime option "foo": unknown option')
})

t.test('`await app.register()` rejects too', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const error = await (async () => { await app.register(realtime, { keyPrefix: '' }) })().then(() => null, (err: CodedError) => err)
  t.equal(error?.code, 'FST_REALTIME_INVALID_OPTION')
  t.match(error?.message, /^Invalid fastify-realtime option "keyPrefix": /)
})

t.test('redis: { namespace } without @fastify/redis is an invalid option', async (t) => {
  const error = await registrationError(t, { redis: { namespace: 'x' } })
  t.equal(error.code, 'FST_REALTIME_INVALID_OPTION')
  t.equal(error.message, 'Invalid fastify-realtime option "redis": no @fastify/redis client in namespace "x" is registered')

  const bare = await registrationError(t, { redis: {} })
  t.equal(bare.code, 'FST_REALTIME_INVALID_OPTION')
  t.equal(bare.message, 'Invalid fastify-realtime option "redis": no @fastify/redis client is registered')

  const otherNamespace = await registrationError(t, { redis: { namespace: 'x' } }, (app) => {
    app.register(fastifyRedis, { url: REDIS_URL, namespace: 'other', lazyConnect: true })
  })
  t.equal(otherNamespace.code, 'FST_REALTIME_INVALID_OPTION')
  t.equal(otherNamespace.message, 'Invalid fastify-realtime option "redis": no @fastify/redis client in namespace "x" is registered')
})

t.test('every option at a valid, non-default value is accepted', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(realtime, {
    prefix: '/rt/socket',
    enabled: true,
    allowedOrigins: ['https://app.example.com', /^https:\/\/[a-z]+\.example\.com$/, '*'],
    allowMissingOrigin: false,
    keyPrefix: 'x'.repeat(64),
    heartbeat: { intervalMs: 10 },
    tokens: {
      queryParam: 'access_token',
      authorizationHeader: true,
      protocolPrefix: 'bearer.',
      timeoutMs: 60000,
      retryAfterSeconds: 7,
      keyFor: (token) => token,
      parse: () => null
    },
    limits: { maxConnections: 0, maxConnectionsPerIp: 0, retryAfterSeconds: 1 },
    websocket: { options: { maxPayload: 2048 } }
  })
  await app.ready()
  t.equal(app.websocketServer.options.maxPayload, 2048, 'websocket options reach @fastify/websocket')
})

t.test('a custom prefix moves the WebSocket route', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(realtime, { prefix: '/rt/socket', heartbeat: { intervalMs: 12345 } })
  const wsBase = await listen(app)
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const { socket, first } = await connect(`${wsBase}/rt/socket?token=${token}`)
  socket.terminate()
  t.equal(first.event, 'connected')
  t.equal((first.data as { heartbeat_interval_ms: unknown }).heartbeat_interval_ms, 12345)
})

t.test('@fastify/websocket registered by the user first is reused, not registered twice', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket, { options: { maxPayload: 4096 } })
  // The plugin's own `websocket` options only apply when it registers @fastify/websocket itself.
  await app.register(realtime, { websocket: { options: { maxPayload: 99 } } })
  const wsBase = await listen(app)
  t.equal(app.websocketServer.options.maxPayload, 4096, 'the user\'s server and options stand')

  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.equal(app.websocketServer.clients.size, 1, 'the socket landed on the user\'s server')
  socket.terminate()
  t.equal(first.event, 'connected')
  t.equal((first.data as { user_id: unknown }).user_id, '120045')
})

t.test('redis as a URL: the plugin owns the client and quits it on close', async (t) => {
  const shared = new Redis(REDIS_URL)
  t.teardown(() => shared.quit())
  // A database of its own makes this test's client the only one it counts.
  const db = 1 + Math.floor(Math.random() * 15)
  const url = new URL(REDIS_URL)
  url.pathname = `/${db}`
  const before = await realtimeClientIds(shared, db)

  const app = Fastify()
  let closed = false
  t.teardown(() => closed ? undefined : app.close())
  const keyPrefix = uniquePrefix()
  await app.register(realtime, { redis: url.toString(), keyPrefix })
  await app.ready()
  const opened = (await realtimeClientIds(shared, db)).filter((id) => !before.includes(id))
  t.equal(opened.length, 1, 'one client named fastify-realtime connected')

  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  t.equal((await app.realtime.tokens.resolve(token))?.userId, 'u1')
  const inDb = new Redis(url.toString())
  t.teardown(() => inDb.quit())
  t.equal(await inDb.exists(`${keyPrefix}token:${sha256(token)}`), 1, 'the token landed in the URL\'s database')

  await app.close()
  closed = true
  let remaining = await realtimeClientIds(shared, db)
  for (let attempt = 0; attempt < 20 && remaining.includes(opened[0]); attempt++) {
    await sleep(50)
    remaining = await realtimeClientIds(shared, db)
  }
  t.notOk(remaining.includes(opened[0]), 'the client is gone after app.close()')
})

t.test('redis as an ioredis instance: borrowed, left open on close', async (t) => {
  const client = new Redis(REDIS_URL)
  t.teardown(() => client.quit())
  const keyPrefix = uniquePrefix()
  const app = Fastify()
  await app.register(realtime, { redis: client, keyPrefix })
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const raw = await client.get(`${keyPrefix}token:${sha256(token)}`)
  t.match(raw, /^\{"user_id":"u1","expires_at":\d+\}$/, 'the plugin wrote through the given client')
  await app.close()
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG')
})

t.test('redis as a lazyConnect ioredis instance: the plugin connects it and still leaves it open', async (t) => {
  const client = new Redis(REDIS_URL, { lazyConnect: true })
  t.teardown(() => client.quit())
  t.equal(client.status, 'wait')
  const app = Fastify()
  await app.register(realtime, { redis: client, keyPrefix: uniquePrefix() })
  t.equal(client.status, 'ready', 'ready once registration is done')
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  t.equal((await app.realtime.tokens.resolve(token))?.userId, 'u1')
  await app.close()
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG')
})

t.test('redis: { namespace } uses the @fastify/redis client of that namespace', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const keyPrefix = uniquePrefix()
  await app.register(fastifyRedis, { url: REDIS_URL, namespace: 'rt' })
  await app.register(realtime, { redis: { namespace: 'rt' }, keyPrefix })
  const token = await app.realtime.tokens.issue(120045, { ttlSeconds: 60 })
  const state = await app.realtime.tokens.resolve(token)
  t.equal(state?.userId, '120045')
  const raw = await app.redis.rt.get(`${keyPrefix}token:${sha256(token)}`)
  t.equal(raw, `{"user_id":"120045","expires_at":${state?.expiresAt}}`)
})

t.test('redis: {} uses the default @fastify/redis client, and does not close a client @fastify/redis was given', async (t) => {
  const client = new Redis(REDIS_URL)
  t.teardown(() => client.quit())
  const app = Fastify()
  await app.register(fastifyRedis, { client })
  await app.register(realtime, { redis: {}, keyPrefix: uniquePrefix() })
  const token = await app.realtime.tokens.issue('u2', { ttlSeconds: 60 })
  t.equal((await app.realtime.tokens.resolve(token))?.userId, 'u2')
  await app.close()
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG')
})
