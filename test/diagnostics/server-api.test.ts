import t, { type Test } from 'tap'
import { Type } from 'typebox'
import { Redis } from 'ioredis'
import type { FastifyRequest } from 'fastify'
import { REDIS_URL, startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { startNodes } from '../helpers/cluster.js'
import { ADMIN_TOKEN, ENVELOPE_KEYS, JSON_TYPE, PREFIX, TRACE_ID, assertError, assertOk, bearer, http, openClient, type HttpResult } from '../helpers/http.js'
import { ownRedis, within } from '../helpers/outage.js'
import type { RealtimeOptions } from '../../lib/index.js'

const ROUTES = ['/publish', '/force-logout', '/disconnect', '/revoke']
const OPERATOR = { adminTokens: [ADMIN_TOKEN] }

async function post (node: TestApp, path: string, body: unknown, headers: Record<string, string> = bearer(ADMIN_TOKEN)): Promise<HttpResult> {
  return await http(`${node.httpBase}${PREFIX}${path}`, headers, 'POST', body)
}

async function start (t: Test, options: RealtimeOptions = {}): Promise<TestApp> {
  const node = await startApp({ diagnostics: OPERATOR, ...options })
  t.teardown(async () => await node.app.close())
  return node
}

/** A coded error answer: its status, the envelope with README's message, and the code in `data`. */
function assertCoded (t: Test, answer: HttpResult, status: number, code: string, message: string): void {
  t.equal(answer.status, status, `${status} ${code}`)
  t.equal(answer.headers.get('content-type'), JSON_TYPE)
  t.strictSame(Object.keys(answer.body), ENVELOPE_KEYS)
  t.match(answer.body.trace_id, TRACE_ID)
  t.strictSame({ ...answer.body, trace_id: null }, { status_code: status, message, trace_id: null, data: { code } })
}

t.test('POST publish: an operator publishes to a user on another node and to everyone; the answer is the publish result', async (t) => {
  const [a, b] = await startNodes(t, 2, { diagnostics: OPERATOR })
  const alice = await openClient(t, a, b, 'alice', ['payment_order.events'])
  t.strictSame(assertOk(t, await post(a, '/publish', { channel: 'payment_order.events', event: 'PAYMENT_ORDER_UPDATED', data: { order_id: 'po_1' }, user_id: 'alice' })), { id: null })
  t.strictSame(assertOk(t, await post(a, '/publish', { channel: 'settings', event: 'withdrawal_settings_updated', data: { withdrawal_fee_rate: '1.50' } })), { id: null })
  const [first, second] = (await within(alice.inbox.until(3), 5000, 'both events')).slice(1)
  t.strictSame(first, { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po_1' } })
  t.strictSame(second, { event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: '1.50' } })
})

t.test('POST publish with history: the id, and await_ack_ms answers acked once the client acks', async (t) => {
  const node = await start(t, { history: {} })
  const bob = await openClient(t, node, node, 'bob', ['kyc.events'])
  const answering = post(node, '/publish', { channel: 'kyc.events', event: 'KYC_APPROVED', data: { level: 2 }, user_id: 'bob', await_ack_ms: 5000 })
  const [event] = (await within(bob.inbox.until(2), 5000, 'the event')).slice(1)
  bob.socket.send(JSON.stringify({ event: 'ack', channel: 'kyc.events', id: event.id }))
  t.strictSame(assertOk(t, await answering), { id: event.id, acked: true })
  const unacked = assertOk(t, await post(node, '/publish', { channel: 'kyc.events', event: 'KYC_APPROVED', data: {}, user_id: 'nobody', await_ack_ms: 50 }))
  t.strictSame(unacked, { id: unacked.id, acked: false }, 'nobody connected: acked false')
})

t.test('POST publish with idempotency_key: a retry to another node answers the first id and is delivered once; a bad key is refused', async (t) => {
  const [a, b] = await startNodes(t, 2, { diagnostics: OPERATOR, history: {} })
  const alice = await openClient(t, a, b, 'alice', ['payment_order.events'])
  const body = { channel: 'payment_order.events', event: 'PAYMENT_ORDER_UPDATED', data: { order_id: 'po_1' }, user_id: 'alice', idempotency_key: 'po_1:paid' }
  const first = assertOk(t, await post(a, '/publish', body))
  t.match(first, { id: /^[A-Za-z0-9_-]{8}:1$/ })
  t.strictSame(assertOk(t, await post(b, '/publish', body)), first, 'the retry answers the first result')
  const last = assertOk(t, await post(b, '/publish', { ...body, event: 'LAST', idempotency_key: undefined }))
  const events = (await within(alice.inbox.until(3), 5000, 'both events')).slice(1)
  t.strictSame(events, [
    { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po_1' }, id: first.id },
    { event: 'LAST', channel: 'payment_order.events', data: { order_id: 'po_1' }, id: last.id }
  ], 'once')
  for (const key of ['', 'k'.repeat(257), {}]) {
    const answer = await post(a, '/publish', { ...body, idempotency_key: key })
    t.equal(answer.status, 400, `refused: ${JSON.stringify(key)}`)
    t.strictSame(Object.keys(answer.body), ENVELOPE_KEYS)
    t.equal(answer.body.data, null)
  }
})

t.test('every coded error answers its status with the code and its message; a bad body is refused by the schema', async (t) => {
  const node = await start(t, { channels: { 'transfer.events': { scope: 'user', schema: Type.Object({ amount: Type.Number() }) } } })
  const coded = async (path: string, body: unknown, code: string, message: string): Promise<void> => {
    assertCoded(t, await post(node, path, body), 400, code, message)
  }
  await coded('/publish', { channel: 'nope.events', event: 'X', data: {}, user_id: 'u' }, 'FST_REALTIME_UNKNOWN_CHANNEL', 'Unknown channel "nope.events"')
  await coded('/publish', { channel: 'kyc.events', event: 'X', data: {} }, 'FST_REALTIME_USER_ID_REQUIRED', 'Channel "kyc.events" is user-scoped: publish needs { userId }')
  await coded('/publish', { channel: 'settings', event: 'X', data: {}, user_id: 'u' }, 'FST_REALTIME_USER_ID_FORBIDDEN', 'Channel "settings" is global: publish takes no userId')
  await coded('/publish', { channel: 'kyc.events', event: 'X', data: {}, user_id: 'u', await_ack_ms: 10 }, 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED', 'awaitAck is not possible here: history is off (acks name events by their ids)')
  await coded('/publish', { channel: 'kyc.events', event: 'X', data: {}, user_id: 'has space' }, 'FST_REALTIME_INVALID_ARGUMENT',
    'Invalid argument "userId": must be a non-empty string (or safe integer) of at most 128 characters without whitespace')
  await coded('/publish', { channel: 'transfer.events', event: 'X', data: { amount: 'ten' }, user_id: 'u' }, 'FST_REALTIME_INVALID_DATA', 'Invalid data for channel "transfer.events": data.amount must be number')
  await coded('/disconnect', { user_id: 'u', code: 1234 }, 'FST_REALTIME_INVALID_ARGUMENT', 'Invalid argument "code": must be 1000 or an application code 4000-4999')
  for (const body of [{ channel: 'kyc.events', event: 'X', user_id: 'u' }, { channel: 'kyc.events', event: 'X', data: [], user_id: 'u' }, { channel: 'kyc.events', event: '', data: {}, user_id: 'u' }]) {
    const answer = await post(node, '/publish', body)
    t.equal(answer.status, 400, `refused: ${JSON.stringify(body)}`)
    t.strictSame(Object.keys(answer.body), ENVELOPE_KEYS)
    t.equal(answer.body.data, null)
  }
  // Fastify's validator drops properties the schema does not name (its default removeAdditional).
  t.equal((await post(node, '/publish', { channel: 'settings', event: 'X', data: {}, extra: 1 })).status, 200)
})

t.test('force-logout, disconnect and revoke act on the user\'s socket; the token travels in the body and reaches no log', async (t) => {
  const node = await start(t)
  const carol = await openClient(t, node, node, 'carol')
  t.strictSame(assertOk(t, await post(node, '/force-logout', { user_id: 'carol', data: { reason: 'password_changed' } })), { done: true })
  t.equal((await within(closed(carol.socket), 5000, 'the logout')).code, 4502)
  t.match(carol.inbox.messages.at(-1), { event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', data: { reason: 'password_changed', is_force_logout: true } })

  const dave = await openClient(t, node, node, 'dave')
  t.strictSame(assertOk(t, await post(node, '/disconnect', { user_id: 'dave', code: 4100, reason: 'maintenance' })), { done: true })
  t.strictSame(await within(closed(dave.socket), 5000, 'the disconnect'), { code: 4100, reason: 'maintenance' })

  const erin = await openClient(t, node, node, 'erin')
  t.strictSame(assertOk(t, await post(node, '/revoke', { token: erin.token })), { done: true })
  t.equal((await within(closed(erin.socket), 5000, 'the revocation')).code, 4501)
  t.equal(await node.app.realtime.tokens.resolve(erin.token), null)
  t.notOk(node.logs.some((line) => line.includes(erin.token)), 'the token is in no log line')
})

t.test('operators only, on every route: no credential 401 with a challenge, a customer token 403, authorize lets in; diagnostics.public opens none', async (t) => {
  const node = await start(t, { diagnostics: { ...OPERATOR, authorize: (request: FastifyRequest) => request.headers['x-ops'] === 'yes' } })
  const customer = await node.app.realtime.tokens.issue('frank', { ttlSeconds: 600 })
  const open = await startApp({ diagnostics: { public: true } })
  t.teardown(async () => await open.app.close())
  for (const route of ROUTES) {
    const anonymous = await post(node, route, { user_id: 'x', token: 'x', channel: 'settings', event: 'X', data: {} }, {})
    assertError(t, anonymous, 401, 'Missing bearer token')
    t.equal(anonymous.headers.get('www-authenticate'), 'Bearer')
    assertError(t, await post(node, route, {}, bearer(customer)), 403, 'Forbidden')
    assertError(t, await post(open, route, {}, {}), 403, 'Forbidden')
  }
  t.strictSame(assertOk(t, await post(node, '/publish', { channel: 'settings', event: 'X', data: {} }, { 'x-ops': 'yes' })), { id: null }, 'authorize(request) is a credential')
  t.equal((await http(`${open.httpBase}${PREFIX}/connections`)).status, 200, 'while the diagnostic routes are open')
})

t.test('routeOpts hooks run on the server API routes too; diagnostics.enabled: false removes them', async (t) => {
  const seen: string[] = []
  const validating: string[] = []
  const node = await start(t, {
    diagnostics: {
      ...OPERATOR,
      routeOpts: {
        onRequest: async (request: FastifyRequest) => { seen.push(request.routeOptions.url as string) },
        // A preValidation of the user's runs after the auth: only for an operator.
        preValidation: async (request: FastifyRequest) => { validating.push(request.routeOptions.url as string) }
      }
    }
  })
  for (const route of ROUTES) await post(node, route, {})
  t.strictSame(seen, ROUTES.map((route) => PREFIX + route))
  t.strictSame(validating, ROUTES.map((route) => PREFIX + route))
  await post(node, '/publish', {}, {})
  t.equal(validating.length, ROUTES.length, 'not for a caller without a credential')
  const off = await start(t, { diagnostics: { ...OPERATOR, enabled: false } })
  for (const route of ROUTES) t.equal((await post(off, route, {})).status, 404, `${route}: no such route`)
})

t.test('Redis down: every route answers 503 with Retry-After and FST_REALTIME_REDIS_UNAVAILABLE', async (t) => {
  const redis = await ownRedis(t)
  const node = await start(t, { redis: redis.url, keyPrefix: uniquePrefix(), tokens: { retryAfterSeconds: 2 } })
  await redis.kill()
  const bodies: Record<string, unknown> = {
    '/publish': { channel: 'settings', event: 'X', data: {} },
    '/force-logout': { user_id: 'u' },
    '/disconnect': { user_id: 'u' },
    '/revoke': { token: 'some-token-of-a-user' }
  }
  for (const route of ROUTES) {
    const answer = await post(node, route, bodies[route])
    t.equal(answer.status, 503, route)
    t.strictSame(answer.body.data, { code: 'FST_REALTIME_REDIS_UNAVAILABLE' }, route)
    t.equal(answer.headers.get('retry-after'), '2', route)
  }
})

t.test('a publish Redis did not confirm: 503 with Retry-After and FST_REALTIME_OUTCOME_UNKNOWN', async (t) => {
  const keyPrefix = uniquePrefix()
  const node = await start(t, { redis: REDIS_URL, keyPrefix, history: {} })
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  // A stream whose meta key holds something else: the append script fails inside Redis.
  await redis.set(`${keyPrefix}stream:u:{broken}:meta`, 'garbage')
  const answer = await post(node, '/publish', { channel: 'kyc.events', event: 'X', data: {}, user_id: 'broken' })
  t.equal(answer.status, 503)
  t.strictSame(answer.body.data, { code: 'FST_REALTIME_OUTCOME_UNKNOWN' })
  t.equal(answer.headers.get('retry-after'), '1')
})
