import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import { Redis, type RedisOptions } from 'ioredis'
import type { RealtimeOptions } from '../../lib/index.js'
import { uniquePrefix, type TestApp } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { PREFIX, http } from '../helpers/http.js'
import { connectPhone, directClient, outcome, ownRedis, within, type Phone } from '../helpers/outage.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { Publisher } from '../../lib/broker/publisher.js'

const PAYMENTS = 'payment_order.events'
const NOT_SENT = 'FST_REALTIME_REDIS_UNAVAILABLE'
const UNKNOWN = 'FST_REALTIME_OUTCOME_UNKNOWN'

const payment = (orderId: string) => ({ event: 'PAYMENT_ORDER_UPDATED', channel: PAYMENTS, data: { order_id: orderId, status: 'paid' } })
const resync = { event: 'resync', channel: null, data: { reason: 'subscriber_reconnected' } }
const subscribed = { event: 'subscribed', channel: PAYMENTS, data: { subscriptions: ['settings', PAYMENTS] } }

async function pay (node: TestApp, userId: string, orderId: string): Promise<void> {
  await node.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: orderId, status: 'paid' }, { userId })
}

/**
 * What a caller told "not sent" does: publishes again until it is sent. Any
 * other outcome fails the test (a retry after "unknown" could duplicate).
 */
async function payUntilSent (node: TestApp, userId: string, orderId: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const result = await outcome(pay(node, userId, orderId))
    if (result === 'resolved') return
    if (result !== NOT_SENT) throw new Error(`publish of ${orderId} ended ${result}`)
    await sleep(50)
  }
  throw new Error(`publish of ${orderId} was never sent`)
}

/** Waits for `orderId`: every publish the node wrote before it was delivered before it. */
async function lastDelivered (phone: Phone, orderId: string): Promise<unknown[]> {
  await waitFor(() => phone.inbox.messages.some((message) => message.data?.order_id === orderId), `${orderId} delivered`)
  return phone.inbox.messages
}

function clusterOptions (redis: RealtimeOptions['redis'], extra: RealtimeOptions = {}): RealtimeOptions {
  // Long heartbeat and probe intervals: no Redis command of the plugin's own is in flight when the test freezes Redis.
  return { redis, keyPrefix: uniquePrefix(), heartbeat: { intervalMs: 60_000 }, tokens: { recheckIntervalMs: 0 }, ...extra, cluster: { probeIntervalMs: 60_000, ...extra.cluster } }
}

/**
 * One node on a client the test passes in (settings `clientOptions`), through a
 * proxy that can mute and cut its link, with a phone on `a1` subscribed to payments.
 */
async function borrowedBehindProxy (t: Test, clientOptions: RedisOptions) {
  const own = await ownRedis(t)
  const proxy = await TcpProxy.start(own.port)
  t.teardown(async () => await proxy.close())
  const inspector = directClient(t, own.url)
  const client = new Redis(proxy.url, clientOptions)
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const options = clusterOptions(client, { cluster: { publishTimeoutMs: 300 } })
  const [a] = await startNodes(t, 1, options)
  const phone = await connectPhone(t, a, 'a1', PAYMENTS, inspector, options.keyPrefix as string)
  return { a, phone, proxy, client }
}

t.test('Redis frozen: the publish written into the frozen link is reported unknown and arrives once; every later call is refused unsent, settles while Redis is still frozen, and never arrives', async (t) => {
  const own = await ownRedis(t)
  const inspector = directClient(t, own.url)
  const options = clusterOptions(own.url)
  const [a, b] = await startNodes(t, 2, options)
  const phone = await connectPhone(t, b, 'b1', PAYMENTS, inspector, options.keyPrefix as string)

  own.freeze()
  const first = await within(outcome(pay(a, 'b1', 'po-0')), 1500, 'the first publish to settle while Redis is frozen')
  t.equal(first, UNKNOWN, 'written, unanswered by the deadline: its outcome is unknown')
  const later = [
    ...Array.from({ length: 20 }, async (_value, index) => await outcome(pay(a, 'b1', `po-${index + 1}`))),
    outcome(a.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '9.99' })),
    outcome(a.app.realtime.forceLogout('b1')),
    outcome(a.app.realtime.disconnect('b1', { code: 4100, reason: 'maintenance' }))
  ]
  // Bounded well below the 2 s command timeout of the plugin's client: the refusals do not wait for Redis.
  t.strictSame(await within(Promise.all(later), 1000, 'the later calls to settle while Redis is frozen'), Array(later.length).fill(NOT_SENT),
    'the link is stalled: nothing more is written to it')

  own.thaw()
  await payUntilSent(a, 'b1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-0'), payment('po-after')], 'the unknown one arrived once, no refused one arrived')
  t.equal(phone.socket.readyState, WebSocket.OPEN)
  t.strictSame(phone.closes, [], 'the refused forceLogout and disconnect closed nothing')
})

t.test('Redis frozen past the client\'s command timeout: a publish the client gave up on does not reopen the link, Redis answering after the thaw does', async (t) => {
  const own = await ownRedis(t)
  const inspector = directClient(t, own.url)
  const options = clusterOptions(own.url)
  const [a, b] = await startNodes(t, 2, options)
  const phone = await connectPhone(t, b, 'b1', PAYMENTS, inspector, options.keyPrefix as string)

  own.freeze()
  t.equal(await within(outcome(pay(a, 'b1', 'po-0')), 1500, 'the first publish'), UNKNOWN)
  // Past the 2 s command timeout of the plugin's client: it gave up on po-0, which Redis still holds.
  await sleep(1500)
  t.equal(await within(outcome(pay(a, 'b1', 'po-1')), 500, 'a publish after the command timeout'), NOT_SENT, 'still stalled')

  own.thaw()
  await payUntilSent(a, 'b1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-0'), payment('po-after')])
})

t.test('Redis killed: publish, forceLogout, disconnect and tokens.revoke are refused unsent at once, and nothing of them arrives after the restart', async (t) => {
  const own = await ownRedis(t)
  const inspector = directClient(t, own.url)
  const options = clusterOptions(own.url)
  const [a, b] = await startNodes(t, 2, options)
  const phone = await connectPhone(t, b, 'b1', PAYMENTS, inspector, options.keyPrefix as string)

  await own.kill()
  await waitFor(async () => (await http(`${a.httpBase}${PREFIX}/health`)).body.data.redis !== 'ready', 'node A to notice the outage')
  const calls = [
    outcome(pay(a, 'b1', 'po-lost')),
    outcome(a.app.realtime.forceLogout('b1')),
    outcome(a.app.realtime.disconnect('b1')),
    outcome(a.app.realtime.tokens.revoke(phone.token))
  ]
  // "Unknown" is what a deadline gives: a not-sent answer did not wait for one.
  t.strictSame(await within(Promise.all(calls), 1000, 'the calls during the outage'), [NOT_SENT, NOT_SENT, NOT_SENT, NOT_SENT])

  await own.restart()
  await waitFor(() => phone.inbox.messages.some((message) => message.event === 'resync'), 'the resync after the restart')
  await payUntilSent(a, 'b1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, resync, payment('po-after')])
  t.strictSame(phone.closes, [])
})

t.test('a publish whose reply is lost when the link drops arrives once: the plugin\'s client does not send it again after reconnecting', async (t) => {
  const own = await ownRedis(t)
  const proxy = await TcpProxy.start(own.port)
  t.teardown(async () => await proxy.close())
  const inspector = directClient(t, own.url)
  const options = clusterOptions(proxy.url)
  const [a, b] = await startNodes(t, 2, options)
  const phone = await connectPhone(t, b, 'b1', PAYMENTS, inspector, options.keyPrefix as string)

  t.equal(proxy.muteReplies(), 2, 'the main connection of each node')
  const lost = outcome(pay(a, 'b1', 'po-0'))
  await lastDelivered(phone, 'po-0')
  t.equal(await within(lost, 1500, 'the publish without a reply'), UNKNOWN, 'Redis ran it, the node cannot know')
  t.equal(proxy.cutMuted(), 2)

  await payUntilSent(a, 'b1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-0'), payment('po-after')], 'po-0 exactly once')
})

t.test('a borrowed client whose link drops between the call and the write: refused unsent, never delivered', async (t) => {
  const own = await ownRedis(t)
  const inspector = directClient(t, own.url)
  // ioredis writes an auto-pipelined command one turn later; without an offline queue it refuses it then.
  const client = new Redis(own.url, { enableOfflineQueue: false, enableAutoPipelining: true })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const options = clusterOptions(client)
  const [b] = await startNodes(t, 1, { ...options, redis: own.url })
  const [borrower] = await startNodes(t, 1, options)
  const phone = await connectPhone(t, b, 'b1', PAYMENTS, inspector, options.keyPrefix as string)

  const dropped = outcome(pay(borrower, 'b1', 'po-dropped'))
  ;(client as unknown as { stream: Socket }).stream.destroy()
  t.equal(await within(dropped, 1000, 'the publish on the dropped link'), NOT_SENT)

  await payUntilSent(borrower, 'b1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-after')])
})

t.test('a borrowed client without a command timeout: a stalled publish holds the link only until the connection is replaced', async (t) => {
  // ioredis never settles a command that such a client dropped with its connection.
  const { a, phone, proxy, client } = await borrowedBehindProxy(t, { autoResendUnfulfilledCommands: false })

  t.equal(proxy.muteReplies(), 1, 'the borrowed client\'s connection')
  t.equal(await within(outcome(pay(a, 'a1', 'po-0')), 1000, 'the publish without a reply'), UNKNOWN, 'at cluster.publishTimeoutMs')
  t.equal(await outcome(pay(a, 'a1', 'po-1')), NOT_SENT, 'the link is stalled')
  t.equal(proxy.cutMuted(), 1)
  await waitFor(() => client.status !== 'ready', 'the client to see its connection die')
  t.equal(await outcome(pay(a, 'a1', 'po-2')), NOT_SENT, 'not ready: not left in the client\'s offline queue')

  // po-0 never settles, yet the new connection is not held by it.
  await payUntilSent(a, 'a1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-0'), payment('po-after')])
})

t.test('a borrowed client left to resend what was in flight delivers a publish reported unknown twice (why the plugin warns of that setting)', async (t) => {
  // ioredis' defaults: what was in flight when the link dropped is sent again after the reconnect.
  const { a, phone, proxy } = await borrowedBehindProxy(t, {})

  t.equal(proxy.muteReplies(), 1, 'the borrowed client\'s connection')
  t.equal(await within(outcome(pay(a, 'a1', 'po-0')), 1000, 'the publish without a reply'), UNKNOWN)
  await lastDelivered(phone, 'po-0')
  t.equal(proxy.cutMuted(), 1)
  // Sent again on the new connection; its answer there says nothing of a publish made since.
  await waitFor(() => phone.inbox.messages.filter((message) => message.data?.order_id === 'po-0').length === 2, 'po-0 a second time')
  await payUntilSent(a, 'a1', 'po-after')
  t.strictSame(await lastDelivered(phone, 'po-after'), [subscribed, payment('po-0'), payment('po-0'), payment('po-after')])
})

t.test('a link stalled a further publishTimeoutMs is given up: the node reconnects its client itself, and publishes go out again', async (t) => {
  const own = await ownRedis(t)
  const proxy = await TcpProxy.start(own.port)
  t.teardown(async () => await proxy.close())
  const inspector = directClient(t, own.url)
  const options = clusterOptions(proxy.url, { cluster: { publishTimeoutMs: 300 } })
  const [a] = await startNodes(t, 1, options)
  const phone = await connectPhone(t, a, 'a1', PAYMENTS, inspector, options.keyPrefix as string)

  // Replies lost, the TCP link alive (a frozen or partitioned primary): nothing but the plugin can end it.
  t.equal(proxy.muteReplies(), 1, 'the node\'s main connection')
  t.equal(await within(outcome(pay(a, 'a1', 'po-0')), 1000, 'the publish without a reply'), UNKNOWN)
  t.equal(await outcome(pay(a, 'a1', 'po-1')), NOT_SENT, 'the link is stalled')
  // The muted connection never answers again: a publish that succeeds went over a new one. Until
  // then publishes are refused unsent, or end unknown on a new connection still slow to answer.
  let result = ''
  for (let attempt = 0; attempt < 100 && result !== 'resolved'; attempt++) {
    result = await outcome(pay(a, 'a1', 'po-after'))
    if (result !== 'resolved') await sleep(50)
  }
  t.equal(result, 'resolved', 'a publish went out again')
  t.strictSame((await lastDelivered(phone, 'po-after')).at(-1), payment('po-after'), 'delivered on the new connection')
})

t.test('a send that throws at once rejects with its error and sets no deadline: the link is not taken for stalled', async (t) => {
  const client = new Redis({ lazyConnect: true })
  await client.connect()
  t.teardown(() => client.disconnect())
  // A stalled link is checked with a PING behind the overdue publishes: counted here.
  let pings = 0
  const ping = client.ping.bind(client)
  client.ping = (async () => { pings++; return await ping() }) as typeof client.ping
  const publisher = new Publisher({ client, timeoutMs: 50 })
  t.teardown(() => publisher.close())
  await t.rejects(publisher.publish(() => { throw new Error('could not build the command') }), /could not build the command/)
  // Past the deadline a timer would have had.
  await sleep(120)
  t.equal(pings, 0, 'no deadline ran out: the link was never checked')
  t.equal(await publisher.publish(async () => await client.publish(`${uniquePrefix()}nobody`, 'x')), 0)
})
