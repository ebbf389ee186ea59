import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/app.js'
import { ADMIN_TOKEN, PREFIX, assertError, assertOk, bearer, http, openClient, type Client } from '../helpers/http.js'

async function start (t: Test, testRoute: { enabled?: boolean, forceInProduction?: boolean, maxPerMinute?: number }): Promise<{ node: TestApp, ops: string }> {
  const node = await startApp({ diagnostics: { testRoute, adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  return { node, ops: ADMIN_TOKEN }
}

/** Runs `body` with NODE_ENV set to `value`, restoring it whatever happens. */
async function withNodeEnv<T> (value: string, body: () => Promise<T>): Promise<T> {
  const saved = process.env.NODE_ENV
  process.env.NODE_ENV = value
  try {
    return await body()
  } finally {
    if (saved === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = saved
  }
}

/**
 * The messages `client` received after the ones already seen: a ping's pong
 * marks the end, since the server answers it after everything published
 * before it was sent.
 */
async function receivedSince (client: Client, seen: number): Promise<any[]> {
  client.socket.send(JSON.stringify({ event: 'ping' }))
  let count = seen + 1
  for (;;) {
    const messages = await client.inbox.until(count)
    if (messages[count - 1].event === 'pong') return messages.slice(seen, count - 1)
    count++
  }
}

t.test('off by default: 404 (Fastify\'s), even with valid auth, and no token in the body', async (t) => {
  const { node, ops } = await start(t, {})
  const result = await http(`${node.httpBase}${PREFIX}/test?user_id=u1&token=${ops}`, bearer(ops))
  t.equal(result.status, 404)
  // Not a route then, so none of its query reaches Fastify.
  t.strictSame(result.body, { message: 'Route GET:/api/v1/ws/test not found', error: 'Not Found', statusCode: 404 })
  t.notOk(result.text.includes(ops))
})

t.test('enabled: publishes REALTIME_TEST to the user and says what happened', async (t) => {
  const { node, ops } = await start(t, { enabled: true })
  const alice = await openClient(t, node, node, 'alice', ['notification.events'])
  const raw: string[] = []
  alice.socket.on('message', (data) => raw.push(data.toString()))
  const before = Date.now()
  const result = await http(`${node.httpBase}${PREFIX}/test?user_id=alice`, bearer(ops))
  const after = Date.now()
  t.strictSame(assertOk(t, result), { user_id: 'alice', channel: 'notification.events', event: 'REALTIME_TEST', published: true, connected: true })

  const received = await receivedSince(alice, 1)
  t.equal(received.length, 1, 'exactly one event')
  const sentAt = received[0].data.sent_at
  t.ok(Number.isInteger(sentAt) && sentAt >= before && sentAt <= after, 'sent_at is the publish time in ms')
  t.equal(raw[0], JSON.stringify({
    event: 'REALTIME_TEST',
    channel: 'notification.events',
    data: { test: true, sent_at: sentAt, trace_id: result.body.trace_id }
  }), 'exactly the documented frame, with the request\'s trace id')
})

t.test('enabled: a user without a socket, and one not subscribed', async (t) => {
  const { node, ops } = await start(t, { enabled: true })
  const absent = await http(`${node.httpBase}${PREFIX}/test?user_id=nobody`, bearer(ops))
  t.strictSame(assertOk(t, absent), { user_id: 'nobody', channel: 'notification.events', event: 'REALTIME_TEST', published: true, connected: false })

  const carol = await openClient(t, node, node, 120045)
  const unsubscribed = await http(`${node.httpBase}${PREFIX}/test?user_id=120045`, bearer(ops))
  t.strictSame(assertOk(t, unsubscribed), { user_id: '120045', channel: 'notification.events', event: 'REALTIME_TEST', published: true, connected: true })
  t.strictSame(await receivedSince(carol, 0), [], 'not subscribed to notification.events: nothing arrives')
})

t.test('enabled: user_id is required and checked', async (t) => {
  const { node, ops } = await start(t, { enabled: true, maxPerMinute: 1 })
  assertError(t, await http(`${node.httpBase}${PREFIX}/test`, bearer(ops)), 400, 'querystring must have required property \'user_id\'')
  assertError(t, await http(`${node.httpBase}${PREFIX}/test?user_id=`, bearer(ops)), 400, 'querystring/user_id must NOT have fewer than 1 characters')
  assertError(t, await http(`${node.httpBase}${PREFIX}/test?user_id=${'u'.repeat(129)}`, bearer(ops)), 400, 'querystring/user_id must NOT have more than 128 characters')
  assertOk(t, await http(`${node.httpBase}${PREFIX}/test?user_id=u1`, bearer(ops)))
  t.equal(node.app.realtime.stats().publishes, 1, 'refused requests published nothing and did not use up the rate limit')
})

t.test('NODE_ENV=production: 403 unless forceInProduction', async (t) => {
  const refused = await start(t, { enabled: true })
  const forced = await start(t, { enabled: true, forceInProduction: true })
  await withNodeEnv('production', async () => {
    assertError(t, await http(`${refused.node.httpBase}${PREFIX}/test?user_id=u1`, bearer(refused.ops)), 403, 'Test endpoint is disabled in production')
    assertError(t, await http(`${refused.node.httpBase}${PREFIX}/test?user_id=u1`), 401, 'Missing bearer token')
    t.equal(refused.node.app.realtime.stats().publishes, 0, 'nothing published')
    assertOk(t, await http(`${forced.node.httpBase}${PREFIX}/test?user_id=u1`, bearer(forced.ops)))
    t.equal(forced.node.app.realtime.stats().publishes, 1)
  })
  t.not(process.env.NODE_ENV, 'production', 'NODE_ENV restored')
  assertOk(t, await http(`${refused.node.httpBase}${PREFIX}/test?user_id=u1`, bearer(refused.ops)))
})

t.test('rate limit: past maxPerMinute, 429 with Retry-After and nothing published', async (t) => {
  const { node, ops } = await start(t, { enabled: true, maxPerMinute: 2 })
  const alice = await openClient(t, node, node, 'alice', ['notification.events'])
  const url = `${node.httpBase}${PREFIX}/test?user_id=alice`
  assertOk(t, await http(url, bearer(ops)))
  assertOk(t, await http(url, bearer(ops)))
  const limited = await http(url, bearer(ops))
  assertError(t, limited, 429, 'Too many test requests')
  const retryAfter = Number(limited.headers.get('retry-after'))
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `retry-after ${limited.headers.get('retry-after')} is 1..60 s`)
  assertError(t, await http(url, bearer(ops)), 429, 'Too many test requests')
  const received = await receivedSince(alice, 1)
  t.strictSame(received.map((message) => message.event), ['REALTIME_TEST', 'REALTIME_TEST'], 'two events, none for the refused requests')
  t.equal(node.app.realtime.stats().publishes, 2)

  // A minute later the window starts over (the clock is moved, not waited for).
  const realNow = Date.now
  Date.now = () => realNow() + 61_000
  try {
    assertOk(t, await http(url, bearer(ops)))
  } finally {
    Date.now = realNow
  }
  t.equal(node.app.realtime.stats().publishes, 3)
})
