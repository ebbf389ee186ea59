import t, { type Test } from 'tap'
import { Type } from 'typebox'
import { Redis } from 'ioredis'
import { REDIS_URL, startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { ADMIN_TOKEN, ENVELOPE_KEYS, JSON_TYPE, PREFIX, TRACE_ID, assertError, assertOk, bearer, http, openClient, type Client, type HttpResult } from '../helpers/http.js'
import { ownRedis, within } from '../helpers/outage.js'
import type { RealtimeOptions } from '../../lib/index.js'

const OPERATOR = { adminTokens: [ADMIN_TOKEN] }
const CHANNEL = 'payment_order.events'

async function publish (node: TestApp, body: unknown, headers: Record<string, string> = bearer(ADMIN_TOKEN)): Promise<HttpResult> {
  return await http(`${node.httpBase}${PREFIX}/publish`, headers, 'POST', body)
}

async function start (t: Test, options: RealtimeOptions = {}): Promise<TestApp> {
  const node = await startApp({ diagnostics: OPERATOR, ...options })
  t.teardown(async () => await node.app.close())
  return node
}

const payment = (userId: string, seq: number): Record<string, unknown> =>
  ({ channel: CHANNEL, event: 'PAYMENT_ORDER_UPDATED', data: { order_id: `po_${seq}` }, user_id: userId })

const itemError = (statusCode: number, code: string, message: string): unknown => ({ error: { status_code: statusCode, code, message } })

/**
 * What `client` has received on CHANNEL after its one subscription, once a
 * marker published after everything else has arrived: anything sent twice or
 * out of order is in the list, since the marker travels behind it.
 */
async function eventsBeforeMarker (t: Test, node: TestApp, client: Client, userId: string): Promise<unknown[]> {
  const markers = (): number => client.inbox.messages.filter((message) => message.event === 'MARKER').length
  const before = markers()
  assertOk(t, await publish(node, { channel: CHANNEL, event: 'MARKER', data: {}, user_id: userId }))
  await waitFor(() => markers() > before, `the marker to ${userId}`, 5000)
  const events = client.inbox.messages.slice(1)
  t.equal(events.pop().event, 'MARKER', `the marker is the last event ${userId} received`)
  return events.map(({ data }) => data.order_id)
}

t.test('a batch published over HTTP on one node reaches sockets on both nodes once each, in order; the answer is each item\'s result in order', async (t) => {
  const [a, b] = await startNodes(t, 2, { diagnostics: OPERATOR, history: {} })
  const alice = await openClient(t, a, b, 'alice', [CHANNEL])
  const bob = await openClient(t, a, a, 'bob', [CHANNEL])
  const batch = Array.from({ length: 40 }, (_, seq) => payment(seq % 2 === 0 ? 'alice' : 'bob', seq))
  const results = assertOk(t, await publish(a, batch))
  t.equal(results.length, 40)
  t.ok(results.every((result: Record<string, unknown>) => Object.keys(result).join() === 'id' && typeof result.id === 'string'), 'an id per item')
  const [aliceEvents, bobEvents] = await Promise.all([
    within(alice.inbox.until(21), 5000, 'alice\'s 20 events'), within(bob.inbox.until(21), 5000, 'bob\'s 20 events')
  ])
  t.strictSame(aliceEvents.slice(1).map(({ id }) => id), results.filter((_: unknown, seq: number) => seq % 2 === 0).map(({ id }: { id: string }) => id),
    'alice (on the other node) got her items in order, each with the id its result gave')
  t.strictSame(bobEvents.slice(1).map(({ id }) => id), results.filter((_: unknown, seq: number) => seq % 2 === 1).map(({ id }: { id: string }) => id))
  const expected = (parity: number): string[] => Array.from({ length: 20 }, (_, index) => `po_${index * 2 + parity}`)
  t.strictSame(await eventsBeforeMarker(t, a, alice, 'alice'), expected(0), 'each once, in the batch\'s order')
  t.strictSame(await eventsBeforeMarker(t, a, bob, 'bob'), expected(1))
  t.strictSame(aliceEvents[1], { event: 'PAYMENT_ORDER_UPDATED', channel: CHANNEL, id: results[0].id, data: { order_id: 'po_0' } })
})

t.test('a batch the schema refuses (over the limit, empty, an item without data, an await_ack_ms) answers 400 and publishes nothing', async (t) => {
  const node = await start(t)
  const alice = await openClient(t, node, node, 'alice', [CHANNEL])
  // Fastify's messages for the union of the two forms: what the single form wants, what the batch lacks.
  const refusals: Array<[unknown[], string]> = [
    [Array.from({ length: 101 }, (_, seq) => payment('alice', seq)), 'body must be object, body must NOT have more than 100 items, body must match a schema in anyOf'],
    [[], 'body must be object, body must NOT have fewer than 1 items, body must match a schema in anyOf'],
    [[payment('alice', 1), { channel: CHANNEL, event: 'X', user_id: 'alice' }], 'body must be object, body/1 must have required property \'data\', body must match a schema in anyOf'],
    [[payment('alice', 2), { ...payment('alice', 3), await_ack_ms: 1000 }], 'body must be object, body/1/await_ack_ms must NOT be valid, body must match a schema in anyOf']
  ]
  for (const [body, message] of refusals) assertError(t, await publish(node, body), 400, message)
  t.strictSame(assertOk(t, await publish(node, Array.from({ length: 100 }, (_, seq) => payment('alice', seq)))).length, 100, '100 items are taken')
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), Array.from({ length: 100 }, (_, seq) => `po_${seq}`), 'only the batch of 100 was published')
})

t.test('a batch with items publish refuses: each its coded error in its place, the other items delivered in order', async (t) => {
  const node = await start(t, { channels: { 'transfer.events': { scope: 'user', schema: Type.Object({ amount: Type.Number() }) } } })
  const alice = await openClient(t, node, node, 'alice', [CHANNEL])
  const answer = assertOk(t, await publish(node, [
    payment('alice', 1),
    { channel: 'nope.events', event: 'X', data: {}, user_id: 'alice' },
    { channel: 'kyc.events', event: 'X', data: {} },
    payment('alice', 2),
    { channel: 'settings', event: 'X', data: {}, user_id: 'alice' },
    { channel: 'transfer.events', event: 'X', data: { amount: 'ten' }, user_id: 'alice' },
    payment('alice', 3)
  ]))
  t.strictSame(answer, [
    { id: null },
    itemError(400, 'FST_REALTIME_UNKNOWN_CHANNEL', 'Unknown channel "nope.events"'),
    itemError(400, 'FST_REALTIME_USER_ID_REQUIRED', 'Channel "kyc.events" is user-scoped: publish needs { userId }'),
    { id: null },
    itemError(400, 'FST_REALTIME_USER_ID_FORBIDDEN', 'Channel "settings" is global: publish takes no userId'),
    itemError(400, 'FST_REALTIME_INVALID_DATA', 'Invalid data for channel "transfer.events": data.amount must be number'),
    { id: null }
  ])
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), ['po_1', 'po_2', 'po_3'])
})

t.test('the batch form is for operators only: no credential 401, a customer token 403, diagnostics.public 403; nothing published', async (t) => {
  const node = await start(t)
  const alice = await openClient(t, node, node, 'alice', [CHANNEL])
  const open = await start(t, { diagnostics: { public: true } })
  const customer = await node.app.realtime.tokens.issue('frank', { ttlSeconds: 600 })
  const batch = [payment('alice', 1), payment('alice', 2)]
  const anonymous = await publish(node, batch, {})
  assertError(t, anonymous, 401, 'Missing bearer token')
  t.equal(anonymous.headers.get('www-authenticate'), 'Bearer')
  assertError(t, await publish(node, batch, bearer(customer)), 403, 'Forbidden')
  assertError(t, await publish(open, batch, {}), 403, 'Forbidden')
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), [], 'none of the refused batches was published')
})

/** A 503 answer of a batch: Retry-After, the envelope with the halting error's message, and the per-item results in `data`. */
function assertUnavailable (t: Test, answer: HttpResult, retryAfter: string, message: RegExp, results: unknown[]): void {
  t.equal(answer.status, 503)
  t.equal(answer.headers.get('retry-after'), retryAfter)
  t.equal(answer.headers.get('content-type'), JSON_TYPE)
  t.strictSame(Object.keys(answer.body), ENVELOPE_KEYS)
  t.match(answer.body.trace_id, TRACE_ID)
  t.equal(answer.body.status_code, 503)
  t.match(answer.body.message, message)
  t.strictSame(answer.body.data, results)
}

t.test('Redis down: 503 with Retry-After and the per-item results, the first item FST_REALTIME_REDIS_UNAVAILABLE and the rest halted', async (t) => {
  const redis = await ownRedis(t)
  const node = await start(t, { redis: redis.url, keyPrefix: uniquePrefix(), tokens: { retryAfterSeconds: 2 } })
  await redis.kill()
  const answer = await publish(node, [payment('alice', 1), payment('bob', 2), { channel: 'settings', event: 'X', data: {} }])
  const unavailable = answer.body.data[0].error.message
  t.match(unavailable, /^Redis is unavailable: /)
  const halted = itemError(503, 'FST_REALTIME_BATCH_HALTED',
    'Not published: the item at index 0 of the batch failed with FST_REALTIME_REDIS_UNAVAILABLE, and the items after it wait for it')
  assertUnavailable(t, answer, '2', /^Redis is unavailable: /, [itemError(503, 'FST_REALTIME_REDIS_UNAVAILABLE', unavailable), halted, halted])
  const refusedFirst = await publish(node, [{ channel: 'nope.events', event: 'X', data: {} }, payment('alice', 1)])
  assertUnavailable(t, refusedFirst, '2', /^Redis is unavailable: /, [
    itemError(400, 'FST_REALTIME_UNKNOWN_CHANNEL', 'Unknown channel "nope.events"'),
    itemError(503, 'FST_REALTIME_REDIS_UNAVAILABLE', refusedFirst.body.data[1].error.message)
  ])
})

t.test('an item Redis did not confirm halts the batch after the published ones: 200, and resending the 503 items in order delivers each once', async (t) => {
  const keyPrefix = uniquePrefix()
  const node = await start(t, { redis: REDIS_URL, keyPrefix, history: {} })
  const alice = await openClient(t, node, node, 'alice', [CHANNEL])
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  // A stream whose meta key holds something else: the append script fails inside Redis.
  await redis.set(`${keyPrefix}stream:u:{broken}:meta`, 'garbage')
  const batch = [payment('alice', 1), payment('broken', 2), payment('alice', 3), { channel: 'nope.events', event: 'X', data: {} }]
  const results = assertOk(t, await publish(node, batch))
  const halted = itemError(503, 'FST_REALTIME_BATCH_HALTED',
    'Not published: the item at index 1 of the batch failed with FST_REALTIME_OUTCOME_UNKNOWN, and the items after it wait for it')
  t.strictSame(results, [{ id: results[0].id }, itemError(503, 'FST_REALTIME_OUTCOME_UNKNOWN', results[1].error.message), halted, halted])
  t.type(results[0].id, 'string')
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), ['po_1'], 'nothing after the unconfirmed item went out')

  await redis.del(`${keyPrefix}stream:u:{broken}:meta`)
  const resend = batch.filter((_, index) => results[index].error?.status_code === 503)
  t.strictSame(resend, [batch[1], batch[2], batch[3]], 'the items to resend: from the halting one on, the unknown channel too (it was not tried)')
  const retried = assertOk(t, await publish(node, resend))
  t.strictSame(retried.map((result: Record<string, unknown>) => Object.keys(result)), [['id'], ['id'], ['error']])
  t.strictSame(retried[2], itemError(400, 'FST_REALTIME_UNKNOWN_CHANNEL', 'Unknown channel "nope.events"'))
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), ['po_1', undefined, 'po_3'], 'po_3 once, after po_1 and the first marker')
})

t.test('a fault that is not a coded error ends the batch with a 500, after the items before it were published', async (t) => {
  const throwing = Type.Refine(Type.Object({}), (data: Record<string, unknown>) => {
    if (data.boom === true) throw new Error('a refinement that throws')
    return true
  })
  const node = await start(t, { channels: { 'fragile.events': { scope: 'user', schema: throwing } } })
  const alice = await openClient(t, node, node, 'alice', [CHANNEL])
  const answer = await publish(node, [payment('alice', 1), { channel: 'fragile.events', event: 'X', data: { boom: true }, user_id: 'alice' }, payment('alice', 2)])
  assertError(t, answer, 500, 'Internal Server Error')
  t.strictSame(await eventsBeforeMarker(t, node, alice, 'alice'), ['po_1'])
})
