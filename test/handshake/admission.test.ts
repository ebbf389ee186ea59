// limits.handshakesPerSecond: a node over its handshake rate refuses at once,
// before the token store is asked, so a reconnect storm costs it no Redis work.
import t from 'tap'
import { startApp } from '../helpers/app.js'
import { handshake } from '../helpers/client.js'
import { eventually } from '../helpers/outage.js'
import { isConnected, isDisconnected, watchClient } from '../helpers/sdk.js'
import { ADMIN_TOKEN, bearer } from '../helpers/http.js'

t.test('handshakes over limits.handshakesPerSecond: 503 + Retry-After, before any token lookup; back once the bucket refills', async (t) => {
  let lookups = 0
  const { app, wsBase, httpBase } = await startApp({
    limits: { handshakesPerSecond: 3, maxConnectionsPerIp: 0 },
    diagnostics: { adminTokens: [ADMIN_TOKEN] },
    tokens: { resolver: async (token) => { lookups++; return token === 'good' ? { userId: 'u1', expiresAt: Math.floor(Date.now() / 1000) + 600 } : null } }
  })
  t.teardown(() => app.close())
  const url = `${wsBase}/api/v1/ws?token=good`
  const results = await Promise.all(Array.from({ length: 8 }, async () => await handshake(url)))
  const opened = results.filter((result) => result.kind === 'open')
  const refused = results.filter((result) => result.kind === 'rejected')
  for (const result of opened) if (result.kind === 'open') result.socket.terminate()
  // A burst of one second's worth passes (3, and what refilled while the 8 came in).
  t.ok(opened.length >= 3 && refused.length >= 1, `${opened.length} opened, ${refused.length} refused`)
  for (const result of refused) {
    if (result.kind !== 'rejected') continue
    t.equal(result.status, 503)
    t.match(result.headers['retry-after'], /^[1-9]\d*$/, 'Retry-After: whole seconds, at least 1')
    t.equal(result.body.message, 'Too many handshakes on this server')
  }
  t.equal(lookups, opened.length, 'a refused handshake never reached the token store')

  let failedRetries = 0
  await eventually(async () => {
    const again = await handshake(url)
    if (again.kind !== 'open') {
      failedRetries++
      throw new Error(`still ${again.status}`)
    }
    again.socket.terminate()
  }, 'the bucket refilled')
  // A plain GET (the SDK asking why a connect failed) looks the token up too: it counts.
  const statuses = await Promise.all(Array.from({ length: 8 }, async () => (await fetch(`${httpBase}/api/v1/ws?token=good`)).status))
  t.ok(statuses.includes(503), `plain GETs are counted (${statuses.join()})`)
  t.ok(statuses.every((status) => status === 426 || status === 503))

  const refusals = refused.length + statuses.filter((status) => status === 503).length
  t.same(app.realtime.stats().handshakes_refused, { 503: refusals + failedRetries }, 'counted in stats()')
  const metrics = await app.inject({ url: '/api/v1/ws/metrics', headers: bearer(ADMIN_TOKEN) })
  t.match(metrics.body, `realtime_handshakes_refused_total{status="503",reason="over the handshake rate"} ${refusals + failedRetries}`)
})

t.test('refused upgrades are told to come back one after another, at the rate', async (t) => {
  const { app, wsBase } = await startApp({ limits: { handshakesPerSecond: 1, maxConnectionsPerIp: 0 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const results = await Promise.all(Array.from({ length: 10 }, async () => await handshake(`${wsBase}/api/v1/ws?token=${token}`)))
  const waits: number[] = []
  for (const result of results) {
    if (result.kind === 'open') result.socket.terminate()
    else if (result.kind === 'rejected') waits.push(Number(result.headers['retry-after']))
  }
  // One let in per second: the 1st refused has room after 1 s, the 2nd after 2 s, … Any two
  // refused within a second of each other are told different waits, however slow the machine.
  t.ok(waits.length >= 2, `refused ${waits.length}`)
  t.ok(waits.every((wait) => Number.isInteger(wait) && wait >= 1 && wait <= 10), waits.join(', '))
  t.ok(Math.max(...waits) >= 2, `the later refused wait longer: ${waits.join(', ')}`)
})

t.test('SDK clients refused by the rate learn their place from the GET they send to ask why, and all get in', async (t) => {
  const { app, wsBase } = await startApp({ limits: { handshakesPerSecond: 1, maxConnectionsPerIp: 0 } })
  t.teardown(() => app.close())
  const url = `${wsBase}/api/v1/ws`
  const clients = await Promise.all(['a', 'b', 'c', 'd'].map(async (user) => ({ user, token: await app.realtime.tokens.issue(user, { ttlSeconds: 60 }) })))
  const watched = clients.map(({ token }) => watchClient(t, { url, token }))
  const delays: number[] = []
  await Promise.all(watched.map(async (client) => {
    const first = await client.next((state) => isConnected(state) || isDisconnected(state), 'connected or refused')
    if (first.state === 'disconnected') {
      t.equal(first.status, 503)
      delays.push(first.delayMs)
    }
  }))
  // Two told the same second may meet again and one wait once more: bounded by the queue, not by a clock.
  await eventually(async () => {
    if (!watched.every((client) => client.client.state.state === 'connected')) throw new Error('not all in yet')
  }, 'every client in', 30_000)
  // The SDK cannot see a refused upgrade's status. Its GET is refused too while upgrades wait (it
  // would otherwise take a refilled place, get 426 and back off blindly), and told a wait within
  // the queue's 3 s: whole seconds, at least one.
  t.ok(delays.length >= 2, `refused ${delays.length}`)
  t.ok(delays.every((delay) => delay >= 1000 && delay <= 3000 && delay % 1000 === 0), delays.join(', '))
  t.equal(app.realtime.connections().length, 4)
})

t.test('handshakes before the rate check are refused by cheaper checks, and take nothing from the bucket', async (t) => {
  const { app, wsBase } = await startApp({ limits: { handshakesPerSecond: 1 } })
  t.teardown(() => app.close())
  for (let i = 0; i < 5; i++) {
    const missing = await handshake(`${wsBase}/api/v1/ws`)
    t.equal(missing.kind === 'rejected' && missing.status, 401)
  }
  t.same(app.realtime.stats().handshakes_refused, { 401: 5 })
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const admitted = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
  t.equal(admitted.kind, 'open', 'the bucket is still full')
  if (admitted.kind === 'open') admitted.socket.terminate()
})

t.test('limits.handshakesPerSecond: 0 (the default) sets no rate', async (t) => {
  const { app, wsBase } = await startApp({ limits: { maxConnectionsPerIp: 0 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const results = await Promise.all(Array.from({ length: 30 }, async () => await handshake(`${wsBase}/api/v1/ws?token=${token}`)))
  t.equal(results.filter((result) => result.kind === 'open').length, 30)
  for (const result of results) if (result.kind === 'open') result.socket.terminate()
})
