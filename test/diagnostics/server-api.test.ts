import t, { type Test } from 'tap'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { ADMIN_TOKEN, JSON_TYPE, PREFIX, TRACE_ID, bearer } from '../helpers/http.js'
import { ownRedis, within } from '../helpers/outage.js'
import { openPhone, type Phone } from '../helpers/phone.js'
import type { RealtimeOptions } from '../../lib/index.js'

interface Answer { status: number, headers: Headers, body: any }

async function post (node: TestApp, path: string, body: unknown, headers: Record<string, string> = bearer(ADMIN_TOKEN)): Promise<Answer> {
  const response = await fetch(`${node.httpBase}${PREFIX}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

async function start (t: Test, options: RealtimeOptions = {}): Promise<TestApp> {
  const node = await startApp({ diagnostics: { adminTokens: [ADMIN_TOKEN] }, ...options })
  t.teardown(async () => await node.app.close())
  return node
}

async function phone (t: Test, node: TestApp, userId: string, channels: string[] = []): Promise<Phone> {
  const opened = await openPhone(`${node.wsBase}${PREFIX}?token=${await node.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })}`)
  t.teardown(() => opened.socket.terminate())
  for (const channel of channels) {
    opened.send({ event: 'subscribe', channel })
    await within(opened.inbox.until(opened.inbox.messages.length + 1), 5000, 'subscribed')
  }
  return opened
}

/** A coded error answer: its status, the envelope, and the code in `data`. */
function assertCoded (t: Test, answer: Answer, status: number, code: string): void {
  t.equal(answer.status, status, `${status} ${code}`)
  t.equal(answer.headers.get('content-type'), JSON_TYPE)
  t.strictSame(Object.keys(answer.body), ['status_code', 'message', 'trace_id', 'data'])
  t.equal(answer.body.status_code, status)
  t.match(answer.body.trace_id, TRACE_ID)
  t.strictSame(answer.body.data, { code })
}

t.test('POST publish: an operator publishes to a user and to everyone; the answer is the publish result', async (t) => {
  const node = await start(t)
  const alice = await phone(t, node, 'alice', ['payment_order.events'])
  const toAlice = await post(node, '/publish', { channel: 'payment_order.events', event: 'PAYMENT_ORDER_UPDATED', data: { order_id: 'po_1' }, user_id: 'alice' })
  t.equal(toAlice.status, 200)
  t.match(toAlice.body, { status_code: 200, message: 'OK', trace_id: TRACE_ID, data: { id: null } })
  const toAll = await post(node, '/publish', { channel: 'settings', event: 'withdrawal_settings_updated', data: { withdrawal_fee_rate: '1.50' } })
  t.equal(toAll.status, 200)
  const [, first, second] = await within(alice.inbox.until(4), 5000, 'both events').then((messages) => messages.slice(1))
  t.strictSame(first, { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po_1' } })
  t.strictSame(second, { event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: '1.50' } })
})

t.test('POST publish with history: the id, and await_ack_ms answers acked once the client acks', async (t) => {
  const node = await start(t, { history: {} })
  const bob = await phone(t, node, 'bob', ['kyc.events'])
  const answering = post(node, '/publish', { channel: 'kyc.events', event: 'KYC_APPROVED', data: { level: 2 }, user_id: 'bob', await_ack_ms: 5000 })
  const [event] = (await within(bob.inbox.until(3), 5000, 'the event')).slice(2)
  bob.send({ event: 'ack', channel: 'kyc.events', id: event.id })
  const answer = await answering
  t.equal(answer.status, 200)
  t.strictSame(answer.body.data, { id: event.id, acked: true })
  const unacked = await post(node, '/publish', { channel: 'kyc.events', event: 'KYC_APPROVED', data: {}, user_id: 'nobody', await_ack_ms: 50 })
  t.strictSame(unacked.body.data.acked, false, 'nobody connected: acked false')
})

t.test('every coded publish error answers its 4xx with the code; a bad body is refused by the schema', async (t) => {
  const node = await start(t)
  assertCoded(t, await post(node, '/publish', { channel: 'nope.events', event: 'X', data: {}, user_id: 'u' }), 400, 'FST_REALTIME_UNKNOWN_CHANNEL')
  assertCoded(t, await post(node, '/publish', { channel: 'kyc.events', event: 'X', data: {} }), 400, 'FST_REALTIME_USER_ID_REQUIRED')
  assertCoded(t, await post(node, '/publish', { channel: 'settings', event: 'X', data: {}, user_id: 'u' }), 400, 'FST_REALTIME_USER_ID_FORBIDDEN')
  assertCoded(t, await post(node, '/publish', { channel: 'kyc.events', event: 'X', data: {}, user_id: 'u', await_ack_ms: 10 }), 400, 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED')
  assertCoded(t, await post(node, '/publish', { channel: 'kyc.events', event: 'X', data: {}, user_id: 'has space' }), 400, 'FST_REALTIME_INVALID_ARGUMENT')
  assertCoded(t, await post(node, '/disconnect', { user_id: 'u', code: 1234 }), 400, 'FST_REALTIME_INVALID_ARGUMENT')
  for (const body of [{ channel: 'kyc.events', event: 'X', user_id: 'u' }, { channel: 'kyc.events', event: 'X', data: [], user_id: 'u' }, { channel: 'kyc.events', event: '', data: {}, user_id: 'u' }]) {
    const answer = await post(node, '/publish', body)
    t.equal(answer.status, 400, `refused: ${JSON.stringify(body)}`)
    t.equal(answer.body.data, null)
  }
  // Fastify's validator drops properties the schema does not name (its default removeAdditional).
  t.equal((await post(node, '/publish', { channel: 'settings', event: 'X', data: {}, extra: 1 })).status, 200)
})

t.test('data failing a channel\'s schema answers FST_REALTIME_INVALID_DATA', async (t) => {
  const { Type } = await import('typebox')
  const node = await start(t, { channels: { 'transfer.events': { scope: 'user', schema: Type.Object({ amount: Type.Number() }) } } })
  assertCoded(t, await post(node, '/publish', { channel: 'transfer.events', event: 'X', data: { amount: 'ten' }, user_id: 'u' }), 400, 'FST_REALTIME_INVALID_DATA')
})

t.test('force-logout, disconnect and revoke act on the user\'s socket; the token travels in the body and reaches no log', async (t) => {
  const node = await start(t)
  const carol = await phone(t, node, 'carol')
  const logout = await post(node, '/force-logout', { user_id: 'carol', data: { reason: 'password_changed' } })
  t.strictSame(logout.body.data, { done: true })
  t.equal((await within(closed(carol.socket), 5000, 'the logout')).code, 4502)
  t.match(carol.inbox.messages.at(-1), { event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', data: { reason: 'password_changed', is_force_logout: true } })

  const dave = await phone(t, node, 'dave')
  t.strictSame((await post(node, '/disconnect', { user_id: 'dave', code: 4100, reason: 'maintenance' })).body.data, { done: true })
  t.strictSame(await within(closed(dave.socket), 5000, 'the disconnect'), { code: 4100, reason: 'maintenance' })

  const token = await node.app.realtime.tokens.issue('erin', { ttlSeconds: 600 })
  const erin = await openPhone(`${node.wsBase}${PREFIX}?token=${token}`)
  t.teardown(() => erin.socket.terminate())
  t.strictSame((await post(node, '/revoke', { token })).body.data, { done: true })
  t.equal((await within(closed(erin.socket), 5000, 'the revocation')).code, 4501)
  t.equal(await node.app.realtime.tokens.resolve(token), null)
  t.notOk(node.logs.some((line) => line.includes(token)), 'the token is in no log line')
})

t.test('operators only: no credential 401, a customer token 403; diagnostics.public does not open the server API', async (t) => {
  const node = await start(t)
  const customer = await node.app.realtime.tokens.issue('frank', { ttlSeconds: 600 })
  const body = { channel: 'settings', event: 'X', data: {} }
  t.equal((await post(node, '/publish', body, {})).status, 401)
  t.equal((await post(node, '/publish', body, bearer(customer))).status, 403)
  const open = await startApp({ diagnostics: { public: true } })
  t.teardown(async () => await open.app.close())
  t.equal((await post(open, '/publish', body, {})).status, 403, 'public: still 403')
  t.equal((await post(open, '/revoke', { token: customer }, {})).status, 403)
  t.equal((await fetch(`${open.httpBase}${PREFIX}/connections`)).status, 200, 'while the diagnostic routes are open')
})

t.test('Redis down: 503 with Retry-After and FST_REALTIME_REDIS_UNAVAILABLE, nothing sent', async (t) => {
  const redis = await ownRedis(t)
  const node = await start(t, { redis: redis.url, keyPrefix: uniquePrefix(), tokens: { retryAfterSeconds: 2 } })
  await redis.kill()
  const answer = await post(node, '/publish', { channel: 'settings', event: 'X', data: {} })
  assertCoded(t, answer, 503, 'FST_REALTIME_REDIS_UNAVAILABLE')
  t.equal(answer.headers.get('retry-after'), '2')
})
