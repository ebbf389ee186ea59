import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { createDeadlineResolver, type TokenLookup } from '../../lib/tokens/resolve-with-deadline.js'
import type { TokenState } from '../../lib/tokens/token-store.js'
import { startApp, uniquePrefix } from '../helpers/app.js'
import { handshake, connect, type HandshakeResult } from '../helpers/client.js'
import { OwnRedis } from '../helpers/redis-server.js'

const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const liveState = (userId = '120045'): TokenState => ({ userId, expiresAt: nowSeconds() + 600 })
const activeTimeouts = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length

type Outcome<T> = { kind: 'settled', value: T } | { kind: 'hung' }

/** Settles with the promise's value, or `hung` after `ms`: a hang fails an assertion instead of the whole file. */
async function within<T> (promise: Promise<T>, ms: number): Promise<Outcome<T>> {
  const controller = new AbortController()
  try {
    return await Promise.race([
      promise.then((value): Outcome<T> => ({ kind: 'settled', value })),
      sleep(ms, { kind: 'hung' } as const, { signal: controller.signal })
    ])
  } finally {
    controller.abort()
  }
}

/** Polls `attempt` until it resolves (Redis reconnecting takes a few backoff rounds). */
async function eventually<T> (attempt: () => Promise<T>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await sleep(100)
    }
  }
}

function assertUnavailable (t: Test, outcome: Outcome<HandshakeResult>, name: string): string {
  if (outcome.kind !== 'settled') {
    t.fail(`${name}: the handshake hung`)
    return ''
  }
  const result = outcome.value
  if (result.kind !== 'rejected') {
    result.socket.terminate()
    t.fail(`${name}: the handshake opened`)
    return ''
  }
  t.equal(result.status, 503, name)
  t.equal(result.body.status_code, 503, name)
  t.equal(result.body.message, 'Token store unavailable', name)
  t.equal(result.body.data, null, name)
  t.equal(result.headers['retry-after'], '1', name)
  return result.body.trace_id
}

/** The `err.code` of the warn line the gate logged for one request. */
function loggedErrorCode (logs: string[], traceId: string): string | undefined {
  for (const line of logs) {
    const entry = JSON.parse(line)
    if (entry.reqId === traceId && entry.err !== undefined) return entry.err.code
  }
  return undefined
}

t.test('createDeadlineResolver', async (t) => {
  t.test('a live state is valid, with the user id normalized to a string', async (t) => {
    const expiresAt = nowSeconds() + 60
    const seen: string[] = []
    const resolveToken = createDeadlineResolver({
      lookup: async (token) => {
        seen.push(token)
        return { userId: 120045 as unknown as string, expiresAt }
      },
      timeoutMs: 1000,
      isAvailable: () => true
    })
    t.same(await resolveToken('tok-1'), { outcome: 'valid', state: { userId: '120045', expiresAt } })
    t.same(seen, ['tok-1'])
  })

  t.test('a synchronous lookup is accepted', async (t) => {
    const state = liveState('u-sync')
    const resolveToken = createDeadlineResolver({ lookup: () => state, timeoutMs: 1000, isAvailable: () => true })
    t.same(await resolveToken('tok'), { outcome: 'valid', state })
  })

  t.test('a lookup resolving null is invalid', async (t) => {
    const resolveToken = createDeadlineResolver({ lookup: async () => null, timeoutMs: 1000, isAvailable: () => true })
    t.same(await resolveToken('tok'), { outcome: 'invalid' })
  })

  t.test('an expired state is invalid, also at the exact second of expiry', async (t) => {
    const expired = createDeadlineResolver({
      lookup: async () => ({ userId: 'u1', expiresAt: nowSeconds() - 1 }),
      timeoutMs: 1000,
      isAvailable: () => true
    })
    t.same(await expired('tok'), { outcome: 'invalid' })
    // Retry across a second boundary so "now" cannot move between building the state and checking it.
    let outcome
    for (let attempt = 0; attempt < 3; attempt++) {
      const second = nowSeconds()
      const atExpiry = createDeadlineResolver({ lookup: async () => ({ userId: 'u1', expiresAt: second }), timeoutMs: 1000, isAvailable: () => true })
      outcome = await atExpiry('tok')
      if (nowSeconds() === second) break
    }
    t.same(outcome, { outcome: 'invalid' })
  })

  t.test('a rejecting lookup is unavailable and carries its error', async (t) => {
    const failure = new Error('connection reset')
    const resolveToken = createDeadlineResolver({ lookup: async () => { throw failure }, timeoutMs: 1000, isAvailable: () => true })
    const resolution = await resolveToken('tok')
    t.equal(resolution.outcome, 'unavailable')
    t.equal(resolution.outcome === 'unavailable' && resolution.error, failure)
  })

  t.test('a lookup throwing synchronously is unavailable too', async (t) => {
    const failure = new Error('boom')
    const lookup: TokenLookup = () => { throw failure }
    const resolveToken = createDeadlineResolver({ lookup, timeoutMs: 1000, isAvailable: () => true })
    const resolution = await resolveToken('tok')
    t.equal(resolution.outcome, 'unavailable')
    t.equal(resolution.outcome === 'unavailable' && resolution.error, failure)
  })

  t.test('a lookup slower than timeoutMs is unavailable with FST_REALTIME_TOKEN_STORE_TIMEOUT', async (t) => {
    let slowTimer: NodeJS.Timeout | undefined
    t.teardown(() => clearTimeout(slowTimer))
    const resolveToken = createDeadlineResolver({
      lookup: () => new Promise((resolve) => { slowTimer = setTimeout(() => resolve(liveState()), 2000) }),
      timeoutMs: 30,
      isAvailable: () => true
    })
    const outcome = await within(resolveToken('tok'), 1500)
    if (outcome.kind !== 'settled') throw new Error('the deadline did not fire')
    const resolution = outcome.value
    if (resolution.outcome !== 'unavailable') throw new Error(`expected unavailable, got ${resolution.outcome}`)
    const error = resolution.error as Error & { code: string, statusCode: number }
    t.equal(error.code, 'FST_REALTIME_TOKEN_STORE_TIMEOUT')
    t.equal(error.statusCode, 503)
    t.equal(error.message, 'Token store did not answer within 30 ms')
  })

  t.test('a lookup that never settles is cut off by the deadline', async (t) => {
    const resolveToken = createDeadlineResolver({ lookup: () => new Promise<never>(() => {}), timeoutMs: 20, isAvailable: () => true })
    const outcome = await within(resolveToken('tok'), 1500)
    if (outcome.kind !== 'settled') throw new Error('the deadline did not fire')
    t.equal(outcome.value.outcome, 'unavailable')
    t.equal(outcome.value.outcome === 'unavailable' && (outcome.value.error as Error & { code: string }).code, 'FST_REALTIME_TOKEN_STORE_TIMEOUT')
  })

  t.test('isAvailable false answers unavailable at once, without calling the lookup', async (t) => {
    let calls = 0
    const resolveToken = createDeadlineResolver({
      lookup: async () => { calls++; return liveState() },
      timeoutMs: 60_000,
      isAvailable: () => false
    })
    const before = activeTimeouts()
    const resolution = await resolveToken('tok')
    t.equal(calls, 0)
    t.equal(activeTimeouts(), before, 'no deadline timer was started')
    if (resolution.outcome !== 'unavailable') throw new Error(`expected unavailable, got ${resolution.outcome}`)
    const error = resolution.error as Error & { code: string, statusCode: number }
    t.equal(error.code, 'FST_REALTIME_REDIS_UNAVAILABLE')
    t.equal(error.statusCode, 503)
    t.equal(error.message, 'Redis is unavailable: client not ready')
  })

  t.test('the deadline timer is cleared once the lookup answers', async (t) => {
    const resolveToken = createDeadlineResolver({ lookup: async () => liveState(), timeoutMs: 60_000, isAvailable: () => true })
    const before = activeTimeouts()
    const pending = resolveToken('tok')
    t.equal(activeTimeouts(), before + 1, 'a deadline timer runs while the lookup is pending')
    t.equal((await pending).outcome, 'valid')
    t.equal(activeTimeouts(), before, 'and is gone after it answered')
  })
})

t.test('custom tokens.resolver', async (t) => {
  t.test('the handshake asks the resolver; tokens.issue is unsupported', async (t) => {
    const expiresAt = nowSeconds() + 600
    const asked: string[] = []
    const { app, wsBase } = await startApp({
      tokens: {
        resolver: async (token) => {
          asked.push(token)
          if (token === 'good-token') return { userId: '77', expiresAt }
          if (token === 'numeric-user') return { userId: 88 as unknown as string, expiresAt }
          if (token === 'expired-token') return { userId: '77', expiresAt: nowSeconds() - 5 }
          return null
        }
      }
    })
    t.teardown(() => app.close())

    const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=good-token`)
    socket.terminate()
    t.equal(first.event, 'connected')
    t.equal((first.data as { user_id: unknown }).user_id, '77')

    const numeric = await connect(`${wsBase}/api/v1/ws?token=numeric-user`)
    numeric.socket.terminate()
    t.equal((numeric.first.data as { user_id: unknown }).user_id, '88')

    for (const token of ['unknown-token', 'expired-token']) {
      const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
      if (result.kind !== 'rejected') throw new Error(`${token}: expected a rejection`)
      t.equal(result.status, 401, token)
      t.equal(result.body.message, 'Invalid or expired token', token)
    }
    t.same(asked, ['good-token', 'numeric-user', 'unknown-token', 'expired-token'])

    await t.rejects(app.realtime.tokens.issue('77', { ttlSeconds: 60 }), {
      code: 'FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED',
      message: /a custom tokens\.resolver cannot issue/
    })
    t.same(await app.realtime.tokens.resolve('good-token'), { userId: '77', expiresAt })
    t.equal(await app.realtime.tokens.resolve('unknown-token'), null)
    t.equal(await app.realtime.tokens.revoke('good-token'), undefined)
    await t.rejects(app.realtime.tokens.resolve(''), { code: 'FST_REALTIME_INVALID_ARGUMENT' })
    await t.rejects(app.realtime.tokens.revoke(''), { code: 'FST_REALTIME_INVALID_ARGUMENT' })
  })

  t.test('tokens.resolve through a resolver applies the same liveness and normalization as the handshake', async (t) => {
    const { app } = await startApp({
      tokens: {
        resolver: async (token) => token === 'expired'
          ? { userId: '77', expiresAt: nowSeconds() - 5 }
          : { userId: 88 as unknown as string, expiresAt: nowSeconds() + 600 }
      }
    })
    t.teardown(() => app.close())
    t.equal(await app.realtime.tokens.resolve('expired'), null)
    t.equal((await app.realtime.tokens.resolve('numeric'))?.userId, '88')
  })

  t.test('a throwing or slow resolver answers 503, never 401', async (t) => {
    let slowTimer: NodeJS.Timeout | undefined
    t.teardown(() => clearTimeout(slowTimer))
    const { app, wsBase, logs } = await startApp({
      tokens: {
        timeoutMs: 50,
        retryAfterSeconds: 1,
        resolver: (token) => {
          if (token === 'throws') throw new Error('backend down')
          return new Promise((resolve) => { slowTimer = setTimeout(() => resolve(liveState()), 2000) })
        }
      }
    })
    t.teardown(() => app.close())
    const thrown = assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=throws`), 3000), 'throwing resolver')
    t.equal(loggedErrorCode(logs, thrown), undefined, 'a plain Error has no code')
    const slow = assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=slow`), 3000), 'slow resolver')
    t.equal(loggedErrorCode(logs, slow), 'FST_REALTIME_TOKEN_STORE_TIMEOUT')
  })

  t.test('does not depend on the Redis connection', async (t) => {
    const own = await OwnRedis.start()
    await own.kill()
    const { app, wsBase } = await startApp({
      redis: own.url,
      keyPrefix: uniquePrefix(),
      tokens: { resolver: async (token) => token === 'good-token' ? { userId: '5', expiresAt: nowSeconds() + 600 } : null }
    })
    t.teardown(() => app.close())
    const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=good-token`)
    socket.terminate()
    t.equal((first.data as { user_id: unknown }).user_id, '5')
  })
})

t.test('Redis outage (own redis-server)', async (t) => {
  t.test('frozen Redis: 503 `Token store unavailable` with Retry-After, within the deadline, then back after thaw', async (t) => {
    const own = await OwnRedis.start()
    const { app, wsBase, logs } = await startApp({ redis: own.url, keyPrefix: uniquePrefix() })
    t.teardown(async () => {
      own.thaw()
      await app.close()
      await own.kill()
    })
    const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
    const before = await connect(`${wsBase}/api/v1/ws?token=${token}`)
    before.socket.terminate()

    own.freeze()
    const known = assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=${token}`), 3000), 'known token while frozen')
    t.equal(loggedErrorCode(logs, known), 'FST_REALTIME_TOKEN_STORE_TIMEOUT')
    assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=not-a-token`), 3000), 'unknown token while frozen')

    own.thaw()
    // Back once Redis has worked off what queued up while it was frozen (bounded; a loaded machine takes a moment).
    let after = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
    for (let attempt = 0; after.kind === 'rejected' && after.status === 503 && attempt < 50; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      after = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
    }
    if (after.kind !== 'open') throw new Error(`not back after the thaw: ${after.status}`)
    after.socket.terminate()
    t.equal((after.first.data as { user_id: unknown }).user_id, '120045')
  })

  t.test('killed Redis: 503 at once; after a restart a new token connects again', async (t) => {
    const own = await OwnRedis.start()
    const { app, wsBase, logs } = await startApp({ redis: own.url, keyPrefix: uniquePrefix() })
    t.teardown(async () => {
      await app.close()
      await own.kill()
    })
    const lost = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })

    await own.kill()
    assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=${lost}`), 3000), 'known token while down')
    // Once the client has noticed the outage it does not even try the lookup.
    await sleep(200)
    const fast = assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=${lost}`), 3000), 'known token after the client noticed')
    t.equal(loggedErrorCode(logs, fast), 'FST_REALTIME_REDIS_UNAVAILABLE')

    await own.restart()
    const fresh = await eventually(() => app.realtime.tokens.issue('120046', { ttlSeconds: 60 }))
    const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${fresh}`)
    socket.terminate()
    t.equal(first.event, 'connected')
    t.equal((first.data as { user_id: unknown }).user_id, '120046')

    // The restarted server has no data: the old token is now really unknown.
    const gone = await handshake(`${wsBase}/api/v1/ws?token=${lost}`)
    if (gone.kind !== 'rejected') throw new Error('expected a rejection')
    t.equal(gone.status, 401)
    t.equal(gone.body.message, 'Invalid or expired token')
  })

  t.test('Redis down at boot: ready() does not fail, handshakes answer 503 until Redis is up', async (t) => {
    const own = await OwnRedis.start()
    await own.kill()
    const { app, wsBase } = await startApp({ redis: own.url, keyPrefix: uniquePrefix() })
    t.teardown(async () => {
      await app.close()
      await own.kill()
    })
    assertUnavailable(t, await within(handshake(`${wsBase}/api/v1/ws?token=whatever`), 3000), 'down at boot')

    await own.restart()
    const token = await eventually(() => app.realtime.tokens.issue('9', { ttlSeconds: 60 }))
    const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
    socket.terminate()
    t.equal((first.data as { user_id: unknown }).user_id, '9')
  })
})
