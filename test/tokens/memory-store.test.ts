import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryTokenStore } from '../../lib/tokens/memory-store.js'
import { startApp } from '../helpers/app.js'
import { handshake, connect } from '../helpers/client.js'

const TOKEN = /^[A-Za-z0-9_-]{43}$/

/** A store whose sweep callback the test can run by hand (the real interval is a minute). */
function storeWithSweep (): { store: MemoryTokenStore, sweep: () => void, intervalMs: number, timer: NodeJS.Timeout } {
  const realSetInterval = globalThis.setInterval
  let captured: { sweep: () => void, intervalMs: number, timer: NodeJS.Timeout } | undefined
  // Only the store's constructor runs with this stub in place; no socket or tap timer sees it.
  globalThis.setInterval = ((callback: () => void, ms: number) => {
    const timer = realSetInterval(callback, ms)
    captured = { sweep: callback, intervalMs: ms, timer }
    return timer
  }) as typeof setInterval
  try {
    const store = new MemoryTokenStore()
    if (captured === undefined) throw new Error('the store started no interval')
    return { store, ...captured }
  } finally {
    globalThis.setInterval = realSetInterval
  }
}

/** Runs `fn` while `Date.now()` is `offsetMs` ahead. */
function inTheFuture (offsetMs: number, fn: () => void): void {
  const realNow = Date.now
  const frozen = realNow() + offsetMs
  Date.now = () => frozen
  try {
    fn()
  } finally {
    Date.now = realNow
  }
}

t.test('issue mints a 256-bit URL-safe token that resolves to its state', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const before = Date.now() / 1000
  const token = await store.issue('120045', { ttlSeconds: 60 })
  const after = Date.now() / 1000
  t.match(token, TOKEN)
  t.equal(Buffer.from(token, 'base64url').length, 32)
  const state = await store.resolve(token)
  if (state === null) throw new Error('the issued token did not resolve')
  t.same(Object.keys(state).sort(), ['expiresAt', 'userId'])
  t.equal(state.userId, '120045')
  t.ok(state.expiresAt >= Math.ceil(before) + 60 && state.expiresAt <= Math.ceil(after) + 60, `expiresAt ${state.expiresAt} is issue time + 60, rounded up`)
})

t.test('tokens are unique and independent', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => store.issue(`user-${i}`, { ttlSeconds: 60 })))
  t.equal(new Set(tokens).size, 200)
  t.equal((await store.resolve(tokens[0]))?.userId, 'user-0')
  t.equal((await store.resolve(tokens[199]))?.userId, 'user-199')
})

t.test('numeric user ids are normalized to strings', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const token = await store.issue(120045, { ttlSeconds: 60 })
  t.equal((await store.resolve(token))?.userId, '120045')
  const zero = await store.issue(0, { ttlSeconds: 60 })
  t.equal((await store.resolve(zero))?.userId, '0')
})

t.test('resolve hands out a copy, not the stored state', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const token = await store.issue('u1', { ttlSeconds: 60 })
  const state = await store.resolve(token)
  if (state === null) throw new Error('the issued token did not resolve')
  state.userId = 'someone-else'
  state.expiresAt = 0
  t.equal((await store.resolve(token))?.userId, 'u1')
})

t.test('unknown and revoked tokens resolve to null; revoking one leaves the others', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const kept = await store.issue('u1', { ttlSeconds: 60 })
  const revoked = await store.issue('u1', { ttlSeconds: 60 })
  t.equal(await store.resolve('never-issued'), null)
  t.equal(await store.revoke(revoked), 'u1', 'revoking answers whose token it was')
  t.equal(await store.resolve(revoked), null)
  t.equal((await store.resolve(kept))?.userId, 'u1')
  t.equal(await store.revoke(revoked), undefined, 'revoking twice is harmless')
  t.equal(await store.revoke('never-issued'), undefined, 'revoking an unknown token is harmless')
})

t.test('a token stops resolving, and stops opening sockets, once its ttl has passed', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const token = await store.issue('u1', { ttlSeconds: 1 })
  const longer = await store.issue('u1', { ttlSeconds: 60 })
  const appToken = await app.realtime.tokens.issue('u2', { ttlSeconds: 1 })
  t.equal((await store.resolve(token))?.userId, 'u1')
  t.equal((await app.realtime.tokens.resolve(appToken))?.userId, 'u2')
  // The longest real-time wait of this file: a 1 s token's whole-second expiry is at most 2 s away.
  await sleep(2100)
  t.equal(await store.resolve(token), null)
  t.equal((await store.resolve(longer))?.userId, 'u1')
  t.equal(await app.realtime.tokens.resolve(appToken), null)
  const result = await handshake(`${wsBase}/api/v1/ws?token=${appToken}`)
  if (result.kind !== 'rejected') throw new Error('an expired token opened a socket')
  t.equal(result.status, 401)
  t.equal(result.body.message, 'Invalid or expired token')
})

t.test('invalid arguments reject with FST_REALTIME_INVALID_ARGUMENT', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  const cases: Array<{ name: string, call: () => Promise<unknown>, argument: string }> = [
    { name: 'resolve empty token', call: () => store.resolve(''), argument: 'token' },
    { name: 'resolve non-string token', call: () => store.resolve(42 as unknown as string), argument: 'token' },
    { name: 'revoke empty token', call: () => store.revoke(''), argument: 'token' },
    { name: 'ttlSeconds 0', call: () => store.issue('u1', { ttlSeconds: 0 }), argument: 'ttlSeconds' },
    { name: 'ttlSeconds negative', call: () => store.issue('u1', { ttlSeconds: -5 }), argument: 'ttlSeconds' },
    { name: 'ttlSeconds 1.5', call: () => store.issue('u1', { ttlSeconds: 1.5 }), argument: 'ttlSeconds' },
    { name: 'ttlSeconds as string', call: () => store.issue('u1', { ttlSeconds: '60' as unknown as number }), argument: 'ttlSeconds' },
    { name: 'userId empty', call: () => store.issue('', { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId with a space', call: () => store.issue('a b', { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId with a newline', call: () => store.issue('a\nb', { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId over 128 characters', call: () => store.issue('x'.repeat(129), { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId an object', call: () => store.issue({ id: 1 } as unknown as string, { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId a fraction', call: () => store.issue(1.5, { ttlSeconds: 60 }), argument: 'userId' },
    { name: 'userId an unsafe integer', call: () => store.issue(2 ** 53, { ttlSeconds: 60 }), argument: 'userId' }
  ]
  for (const c of cases) {
    const error = await c.call().then(() => null, (err: Error & { code?: string, statusCode?: number }) => err)
    if (error === null) {
      t.fail(`${c.name}: resolved`)
      continue
    }
    t.equal(error.code, 'FST_REALTIME_INVALID_ARGUMENT', c.name)
    t.equal(error.statusCode, 400, c.name)
    t.ok(error instanceof TypeError, `${c.name}: is a TypeError`)
    t.match(error.message, `Invalid argument "${c.argument}": `, c.name)
  }
  t.equal((await store.resolve(await store.issue('x'.repeat(128), { ttlSeconds: 60 })))?.userId, 'x'.repeat(128), '128 characters are fine')
})

t.test('the sweep drops expired entries and keeps live ones', async (t) => {
  const { store, sweep, intervalMs, timer } = storeWithSweep()
  t.teardown(() => store.close())
  t.equal(intervalMs, 60_000)
  t.equal(timer.hasRef(), false, 'the sweep timer does not keep the process alive')
  const shortLived = await store.issue('u1', { ttlSeconds: 60 })
  const longLived = await store.issue('u2', { ttlSeconds: 3600 })
  // Two minutes from now the first token is expired and the second is not.
  inTheFuture(120_000, sweep)
  // Back in the present the first token would still be live, had it not been swept.
  t.equal(await store.resolve(shortLived), null)
  t.equal((await store.resolve(longLived))?.userId, 'u2')
})

t.test('close() stops the sweep timer and forgets every token', async (t) => {
  const { store, timer } = storeWithSweep()
  const token = await store.issue('u1', { ttlSeconds: 60 })
  const realClearInterval = globalThis.clearInterval
  const cleared: unknown[] = []
  globalThis.clearInterval = ((id: NodeJS.Timeout) => {
    cleared.push(id)
    realClearInterval(id)
  }) as typeof clearInterval
  try {
    store.close()
  } finally {
    globalThis.clearInterval = realClearInterval
  }
  t.same(cleared, [timer])
  t.equal(await store.resolve(token), null)
})

t.test('embedded mode: app.realtime.tokens and the handshake share the in-memory store', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue(120045, { ttlSeconds: 60 })
  t.match(token, TOKEN)
  t.equal((await app.realtime.tokens.resolve(token))?.userId, '120045')

  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  socket.terminate()
  t.equal(first.event, 'connected')
  t.equal((first.data as { user_id: unknown }).user_id, '120045')

  await app.realtime.tokens.revoke(token)
  t.equal(await app.realtime.tokens.resolve(token), null)
  const result = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
  if (result.kind !== 'rejected') throw new Error('a revoked token opened a socket')
  t.equal(result.status, 401)
  t.equal(result.body.message, 'Invalid or expired token')

  await t.rejects(app.realtime.tokens.issue('u 1', { ttlSeconds: 60 }), { code: 'FST_REALTIME_INVALID_ARGUMENT' })
  await t.rejects(app.realtime.tokens.issue('u1', { ttlSeconds: 0 }), { code: 'FST_REALTIME_INVALID_ARGUMENT' })
})

t.test('embedded mode: closing the app forgets issued tokens', async (t) => {
  const { app } = await startApp()
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  await app.close()
  t.equal(await app.realtime.tokens.resolve(token), null)
})

/** Waits until the clock is `ms` short of its next whole second. */
async function lateInTheSecond (ms: number): Promise<void> {
  while (1000 - (Date.now() % 1000) > ms) await sleep(1)
}

t.test('a token is valid for at least its ttl, issued whatever the millisecond (the expiry is rounded up to a whole second)', async (t) => {
  const store = new MemoryTokenStore()
  t.teardown(() => store.close())
  await lateInTheSecond(15)
  const issuedAt = Date.now()
  const token = await store.issue('u1', { ttlSeconds: 1 })
  // Past the next whole second, well within the ttl: a rounded-down expiry has already passed here.
  await sleep(1000 - (issuedAt % 1000) + 20)
  t.ok(Date.now() - issuedAt < 1000, 'still within the ttl')
  t.equal((await store.resolve(token))?.userId, 'u1')
})
