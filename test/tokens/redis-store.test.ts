import t from 'tap'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { RedisTokenStore } from '../../lib/tokens/redis-store.js'
import type { TokenState } from '../../lib/tokens/token-store.js'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'
import { handshake, connect } from '../helpers/client.js'
import { directClient, ownRedis } from '../helpers/outage.js'

const TOKEN = /^[A-Za-z0-9_-]{43}$/
const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** The test's own connection to the shared Redis, closed when the test ends. */
async function ownClient (t: { teardown: (fn: () => unknown) => void }): Promise<Redis> {
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  await redis.ping()
  return redis
}

/** `SET` with an expiry, as the rest of the backend would; nothing outlives the run. */
async function writeRaw (redis: Redis, key: string, value: string, ttlSeconds = 60): Promise<void> {
  await redis.set(key, value, 'EX', ttlSeconds)
}

t.test('issue writes the documented layout: hashed key, exact JSON, TTL up to the expiry', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())

  const before = Date.now() / 1000
  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 90 })
  const after = Date.now() / 1000
  t.match(token, TOKEN)

  const key = `${keyPrefix}token:${sha256(token)}`
  t.match(key, /^rt-test:[0-9a-f]{12}:token:[0-9a-f]{64}$/)
  const raw = await redis.get(key)
  if (raw === null) throw new Error(`nothing stored at ${key}`)
  const value = JSON.parse(raw)
  t.same(Object.keys(value), ['user_id', 'expires_at'])
  t.equal(value.user_id, '120045')
  t.ok(value.expires_at >= Math.ceil(before) + 90 && value.expires_at <= Math.ceil(after) + 90, `expires_at ${value.expires_at} is issue time + 90, rounded up`)
  t.equal(raw, `{"user_id":"120045","expires_at":${value.expires_at}}`)
  const ttl = await redis.ttl(key)
  t.ok(ttl > 0 && ttl <= 91, `TTL ${ttl} is in (0, 91]: until the expiry`)
  t.equal(await redis.get(`${keyPrefix}token:${token}`), null, 'the token is never a key in the clear')

  t.same(await app.realtime.tokens.resolve(token), { userId: '120045', expiresAt: value.expires_at })
})

t.test('numeric user ids are stored and resolved as strings', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue(42, { ttlSeconds: 60 })
  const value = JSON.parse(await redis.get(`${keyPrefix}token:${sha256(token)}`) ?? 'null')
  t.equal(value.user_id, '42')
  t.equal((await app.realtime.tokens.resolve(token))?.userId, '42')
})

t.test('revoke deletes the key; the token no longer resolves or connects', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const other = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const key = `${keyPrefix}token:${sha256(token)}`
  t.equal(await redis.exists(key), 1)

  t.equal(await app.realtime.tokens.revoke(token), undefined)
  t.equal(await redis.exists(key), 0)
  t.equal(await app.realtime.tokens.resolve(token), null)
  t.equal((await app.realtime.tokens.resolve(other))?.userId, 'u1', 'other tokens of the user stay')
  const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
  if (result.kind !== 'rejected') throw new Error('a revoked token opened a socket')
  t.equal(result.status, 401)
  t.equal(result.body.message, 'Invalid or expired token')
  t.equal(await app.realtime.tokens.revoke(token), undefined, 'revoking twice is harmless')
})

t.test('a token written by the rest of the backend resolves and connects', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const expiresAt = nowSeconds() + 600
  await writeRaw(redis, `${keyPrefix}token:${sha256('backend-token-1')}`, JSON.stringify({ user_id: '120045', expires_at: expiresAt }))
  await writeRaw(redis, `${keyPrefix}token:${sha256('backend-token-2')}`, JSON.stringify({ user_id: 120046, expires_at: expiresAt }))

  t.same(await app.realtime.tokens.resolve('backend-token-1'), { userId: '120045', expiresAt })
  t.same(await app.realtime.tokens.resolve('backend-token-2'), { userId: '120046', expiresAt })

  const one = await connect(`${wsBase}/api/v1/ws?token=backend-token-1`)
  one.socket.terminate()
  t.equal(one.first.event, 'connected')
  t.equal((one.first.data as { user_id: unknown }).user_id, '120045')
  const two = await connect(`${wsBase}/api/v1/ws?token=backend-token-2`)
  two.socket.terminate()
  t.equal((two.first.data as { user_id: unknown }).user_id, '120046', 'a numeric user_id reaches the client as a string')
})

t.test('stored values that must not let anyone in', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const future = nowSeconds() + 600
  const rejected: Record<string, string> = {
    'revoked: true': JSON.stringify({ user_id: 'u1', expires_at: future, revoked: true }),
    'expired (long TTL, past expires_at)': JSON.stringify({ user_id: 'u1', expires_at: nowSeconds() - 10 }),
    'malformed JSON': '{"user_id":"u1","expires_at":',
    'not JSON at all': 'u1',
    'JSON null': 'null',
    'JSON number': '42',
    'JSON string': '"u1"',
    'JSON array': '[]',
    'expires_at missing': JSON.stringify({ user_id: 'u1' }),
    'expires_at a string': JSON.stringify({ user_id: 'u1', expires_at: String(future) }),
    'user_id missing': JSON.stringify({ expires_at: future }),
    'user_id empty': JSON.stringify({ user_id: '', expires_at: future }),
    'user_id with whitespace': JSON.stringify({ user_id: 'u 1', expires_at: future }),
    'user_id a boolean': JSON.stringify({ user_id: true, expires_at: future }),
    'user_id an object': JSON.stringify({ user_id: { id: 1 }, expires_at: future })
  }
  for (const [name, value] of Object.entries(rejected)) {
    const token = `raw-${sha256(name).slice(0, 16)}`
    await writeRaw(redis, `${keyPrefix}token:${sha256(token)}`, value)
    t.equal(await app.realtime.tokens.resolve(token), null, `${name}: resolve`)
    const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
    t.equal(result.kind === 'rejected' && result.status, 401, `${name}: handshake`)
    if (result.kind === 'open') result.socket.terminate()
  }

  const accepted = 'raw-accepted'
  await writeRaw(redis, `${keyPrefix}token:${sha256(accepted)}`, JSON.stringify({ user_id: 'u1', expires_at: future, revoked: false }))
  t.same(await app.realtime.tokens.resolve(accepted), { userId: 'u1', expiresAt: future }, '`revoked: false` is not revoked')
})

t.test('an issued token expires with its ttl (value and key)', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 2 })
  const key = `${keyPrefix}token:${sha256(token)}`
  // Not an exact TTL: on a loaded machine part of it may already have passed.
  const ttl = await redis.pttl(key)
  t.ok(ttl > 0 && ttl <= 3000, `the key expires with the token, at its expiry rounded up to a whole second (pttl ${ttl})`)
  t.equal((await app.realtime.tokens.resolve(token))?.userId, 'u1')
  // The longest real-time wait of this file: a 2 s token's whole-second expiry is at most 3 s away.
  await sleep(3100)
  t.equal(await redis.exists(key), 0)
  t.equal(await app.realtime.tokens.resolve(token), null)
  const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
  if (result.kind !== 'rejected') throw new Error('an expired token opened a socket')
  t.equal(result.status, 401)
  t.equal(result.body.message, 'Invalid or expired token')
})

t.test('invalid arguments reject with FST_REALTIME_INVALID_ARGUMENT in cluster mode too', async (t) => {
  const keyPrefix = uniquePrefix()
  const { app } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const tokens = app.realtime.tokens
  const cases: Array<{ name: string, call: () => Promise<unknown>, argument: string }> = [
    { name: 'resolve empty token', call: () => tokens.resolve(''), argument: 'token' },
    { name: 'revoke empty token', call: () => tokens.revoke(''), argument: 'token' },
    { name: 'ttlSeconds 0', call: () => tokens.issue('u1', { ttlSeconds: 0 }), argument: 'ttlSeconds' },
    { name: 'ttlSeconds 1.5', call: () => tokens.issue('u1', { ttlSeconds: 1.5 }), argument: 'ttlSeconds' },
    { name: 'userId empty', call: () => tokens.issue('', { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId with whitespace', call: () => tokens.issue('u 1', { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId an object', call: () => tokens.issue({} as unknown as string, { ttlSeconds: 60 }), argument: 'userId' }
  ]
  for (const c of cases) {
    const error = await c.call().then(() => null, (err: Error & { code?: string }) => err)
    t.equal(error?.code, 'FST_REALTIME_INVALID_ARGUMENT', c.name)
    t.match(error?.message, `Invalid argument "${c.argument}": `, c.name)
  }
})

t.test('RedisTokenStore over a client of the test\'s own', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const store = new RedisTokenStore(redis, { keyPrefix })
  t.teardown(() => store.close())
  const token = await store.issue('u9', { ttlSeconds: 60 })
  t.equal(JSON.parse(await redis.get(`${keyPrefix}token:${sha256(token)}`) ?? 'null').user_id, 'u9')
  t.equal((await store.resolve(token))?.userId, 'u9')
  t.equal(await store.revoke(token), 'u9', 'revoking answers whose token it was')
  t.equal(await store.resolve(token), null)
  t.equal(await redis.exists(`${keyPrefix}token:${sha256(token)}`), 0, 'the key is gone')
  t.equal(await store.revoke(token), undefined, 'a second time, no one\'s')
  await redis.set(`${keyPrefix}token:${sha256('unreadable')}`, 'not json')
  t.equal(await store.revoke('unreadable'), undefined, 'a value that does not parse names no user')
  t.equal(await redis.exists(`${keyPrefix}token:${sha256('unreadable')}`), 0, 'and is deleted all the same')
  store.close()
  t.equal(redis.status, 'ready', 'close() leaves the client alone')
})

t.test('revoking a token whose value a custom parser throws on deletes it and names no user', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const store = new RedisTokenStore(redis, { keyPrefix, keyFor: (token) => `${keyPrefix}s:${token}`, parse: () => { throw new Error('unreadable') } })
  t.teardown(() => store.close())
  await redis.set(`${keyPrefix}s:sess-1`, 'uid=1')
  t.equal(await store.revoke('sess-1'), undefined)
  t.equal(await redis.exists(`${keyPrefix}s:sess-1`), 0)
})

t.test('revoking answers the user id as the sockets hold it, a custom parser\'s number as its string', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const expiresAt = Math.floor(Date.now() / 1000) + 60
  const store = new RedisTokenStore(redis, { keyPrefix, keyFor: (token) => `${keyPrefix}s:${token}`, parse: () => ({ userId: 42 as unknown as string, expiresAt }) })
  t.teardown(() => store.close())
  await redis.set(`${keyPrefix}s:sess-42`, 'uid=42')
  t.same(await store.resolve('sess-42'), { userId: '42', expiresAt })
  t.equal(await store.revoke('sess-42'), '42', 'the revoke message can name the user (a number would be refused as malformed)')
})

t.test('custom tokens.keyFor and tokens.parse read another layout', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const keyed: string[] = []
  const parsed: string[] = []
  const { app, wsBase } = await startApp({
    redis: REDIS_URL,
    keyPrefix,
    tokens: {
      keyFor: (token) => {
        keyed.push(token)
        return `${keyPrefix}session:${token}`
      },
      parse: (raw): TokenState | null => {
        parsed.push(raw)
        const match = /^uid=([^;]+);exp=(\d+)$/.exec(raw)
        return match === null ? null : { userId: match[1], expiresAt: Number(match[2]) }
      }
    }
  })
  t.teardown(() => app.close())
  const expiresAt = nowSeconds() + 600
  const expiredAt = nowSeconds() - 5
  await writeRaw(redis, `${keyPrefix}session:sess-good`, `uid=42;exp=${expiresAt}`)
  await writeRaw(redis, `${keyPrefix}session:sess-expired`, `uid=42;exp=${expiredAt}`)
  await writeRaw(redis, `${keyPrefix}session:sess-garbage`, 'garbage')
  // The default layout is not consulted any more.
  await writeRaw(redis, `${keyPrefix}token:${sha256('sess-default')}`, JSON.stringify({ user_id: '1', expires_at: expiresAt }))

  t.same(await app.realtime.tokens.resolve('sess-good'), { userId: '42', expiresAt })
  t.equal(await app.realtime.tokens.resolve('sess-expired'), null)
  t.equal(await app.realtime.tokens.resolve('sess-garbage'), null)
  t.equal(await app.realtime.tokens.resolve('sess-default'), null)
  t.same(keyed, ['sess-good', 'sess-expired', 'sess-garbage', 'sess-default'])
  t.same(parsed, [`uid=42;exp=${expiresAt}`, `uid=42;exp=${expiredAt}`, 'garbage'], 'parse sees the raw value; a missing key is not parsed')

  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=sess-good`)
  socket.terminate()
  t.equal((first.data as { user_id: unknown }).user_id, '42')
  for (const token of ['sess-expired', 'sess-garbage', 'sess-default', 'sess-missing']) {
    const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
    if (result.kind !== 'rejected') throw new Error(`${token}: expected a rejection`)
    t.equal(result.status, 401, token)
    t.equal(result.body.message, 'Invalid or expired token', token)
  }

  await app.realtime.tokens.revoke('sess-good')
  t.equal(await redis.exists(`${keyPrefix}session:sess-good`), 0, 'revoke deletes the custom key')
  t.equal(await app.realtime.tokens.resolve('sess-good'), null)
})

t.test('a custom keyFor alone keeps the default JSON value, so issue and resolve round-trip', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix, tokens: { keyFor: (token) => `${keyPrefix}session:${token}` } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('7', { ttlSeconds: 60 })
  const raw = await redis.get(`${keyPrefix}session:${token}`)
  t.match(raw, /^\{"user_id":"7","expires_at":\d+\}$/)
  t.equal(await redis.exists(`${keyPrefix}token:${sha256(token)}`), 0)
  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  socket.terminate()
  t.equal((first.data as { user_id: unknown }).user_id, '7')
})

t.test('a custom parse needs a matching format for issue; with it, issue writes what parse reads', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const parse = (raw: string): { userId: string, expiresAt: number } | null => {
    const match = /^uid=([^;]+);exp=(\d+)$/.exec(raw)
    return match === null ? null : { userId: match[1], expiresAt: Number(match[2]) }
  }
  const keyFor = (token: string): string => `${keyPrefix}session:${token}`
  const without = await startApp({ redis: REDIS_URL, keyPrefix, tokens: { keyFor, parse } })
  t.teardown(() => without.app.close())
  await t.rejects(without.app.realtime.tokens.issue('42', { ttlSeconds: 60 }), { code: 'FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED' })

  const withFormat = await startApp({
    redis: REDIS_URL,
    keyPrefix,
    tokens: { keyFor, parse, format: (state) => `uid=${state.userId};exp=${state.expiresAt}` }
  })
  t.teardown(() => withFormat.app.close())
  const token = await withFormat.app.realtime.tokens.issue('42', { ttlSeconds: 60 })
  t.match(await redis.get(keyFor(token)), /^uid=42;exp=\d+$/)
  const state = await withFormat.app.realtime.tokens.resolve(token)
  t.equal(state?.userId, '42')
  t.ok((state?.expiresAt ?? 0) > nowSeconds())
})

t.test('a token is valid for at least its ttl, issued whatever the millisecond; its key lasts until its expiry', async (t) => {
  const redis = await ownClient(t)
  const keyPrefix = uniquePrefix()
  const { app } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  while (1000 - (Date.now() % 1000) > 15) await sleep(1)
  const issuedAt = Date.now()
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 1 })
  const { expires_at: expiresAt } = JSON.parse(await redis.get(`${keyPrefix}token:${sha256(token)}`) ?? 'null')
  const expiryMs = await redis.pexpiretime(`${keyPrefix}token:${sha256(token)}`)
  // Redis counts the PX from when the SET arrives: the key outlives the expiry by that trip, never less.
  t.ok(expiryMs >= expiresAt * 1000 && expiryMs <= expiresAt * 1000 + 100, `the key expires at ${expiryMs}, its expires_at ${expiresAt}`)
  await sleep(1000 - (issuedAt % 1000) + 20)
  t.ok(Date.now() - issuedAt < 1000, 'still within the ttl')
  t.equal((await app.realtime.tokens.resolve(token))?.userId, 'u1')
})

t.test('Redis lost its scripts (a restart): a lookup made after a revocation still finds the token gone', async (t) => {
  const redis = await ownRedis(t)
  const client = directClient(t, redis.url)
  const store = new RedisTokenStore(client, { keyPrefix: uniquePrefix() })
  t.teardown(() => store.close())
  await store.revoke(await store.issue('u1', { ttlSeconds: 60 }))
  const token = await store.issue('u1', { ttlSeconds: 60 })
  await client.script('FLUSH')
  // Made in one turn: the lookup goes to Redis before the revocation is answered.
  const [whose, state] = await Promise.all([store.revoke(token), store.resolve(token)])
  t.equal(whose, 'u1', 'the revocation found it')
  t.equal(state, null, 'the lookup after it did not')
})
