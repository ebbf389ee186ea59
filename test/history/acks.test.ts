import t from 'tap'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { KYC, MODES, PAYMENTS, SETTINGS, deploy, eventsOf, join, open } from '../helpers/history.js'
import { outcome, within } from '../helpers/outage.js'
import type { Phone } from '../helpers/phone.js'
import type { PublishResult } from '../../lib/index.js'

/** A promise with a flag that says whether it settled yet. */
function watch<T> (promise: Promise<T>): { promise: Promise<T>, settled: () => boolean } {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  return { promise, settled: () => done }
}

const ack = (phone: Phone, channel: string, id: string): void => phone.send({ event: 'ack', channel, id })

/** Pings and waits for its pong: the socket answered everything sent before. */
async function roundTrip (phone: Phone): Promise<any[]> {
  const before = phone.inbox.messages.length
  phone.send({ event: 'ping' })
  await waitFor(() => phone.inbox.messages.slice(before).some((message) => message.event === 'pong'), 'pong', 5000)
  return phone.inbox.messages.slice(before).filter((message) => message.event !== 'pong')
}

t.test('awaitAck resolves acked: true once the client acks, its socket on another node than the publisher', async (t) => {
  const [a, b] = await startNodes(t, 2, { history: {} })
  const device = await join(t, b, 'acker', [PAYMENTS])
  const publish = watch(a.app.realtime.publish(PAYMENTS, 'PAID', { order: 1 }, { userId: 'acker', awaitAck: { timeoutMs: 20_000 } }))
  const [event] = await eventsOf(device.phone, 1)
  t.strictSame(event, { event: 'PAID', channel: PAYMENTS, data: { order: 1 }, id: event.id })
  await roundTrip(device.phone)
  t.equal(publish.settled(), false, 'not before the ack')
  ack(device.phone, PAYMENTS, event.id)
  t.strictSame(await within(publish.promise, 10_000, 'the publish'), { id: event.id, acked: true })
  t.equal(b.app.realtime.stats().acks, 1, 'counted where the socket is')
  t.equal(a.app.realtime.stats().ack_timeouts, 0)
  t.strictSame(await roundTrip(device.phone), [], 'an ack gets no reply')

  // The channel helper takes awaitAck too.
  const helper = watch(a.app.realtime.channels[PAYMENTS].publish('acker', 'PAID', { order: 2 }, { awaitAck: { timeoutMs: 20_000 } }))
  const second = (await eventsOf(device.phone, 2))[1]
  ack(device.phone, PAYMENTS, second.id)
  t.strictSame(await within(helper.promise, 10_000, 'the helper\'s publish'), { id: second.id, acked: true })
})

for (const mode of MODES) {
  t.test(`${mode}: acked: false at the timeout when the client never acks; at once when the user has no socket`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, 'silent', [PAYMENTS])
    const result = await within(node.app.realtime.publish(PAYMENTS, 'PAID', { order: 1 }, { userId: 'silent', awaitAck: { timeoutMs: 200 } }), 10_000, 'the timeout')
    const [event] = await eventsOf(device.phone, 1)
    t.strictSame(result, { id: event.id, acked: false }, 'delivered, never acked')
    t.equal(node.app.realtime.stats().ack_timeouts, 1)
    // An ack after the timeout changes nothing.
    ack(device.phone, PAYMENTS, event.id)
    t.strictSame(await roundTrip(device.phone), [])

    // Nobody to ack: an hour's timeout answers at once.
    const offline = await within(node.app.realtime.publish(PAYMENTS, 'PAID', { order: 2 }, { userId: 'nobody', awaitAck: { timeoutMs: 3_600_000 } }), 5000, 'acked: false for a user without a socket')
    t.equal(offline.acked, false)
    t.match(offline.id, /^[A-Za-z0-9_-]{8}:1$/, 'the event is kept all the same')
    t.equal(node.app.realtime.stats().ack_timeouts, 2)
  })

  t.test(`${mode}: a client that got the event by replay, after reconnecting elsewhere, acks it and the awaiting publish resolves`, async (t) => {
    const nodes = await deploy(t, mode, mode === 'cluster' ? 2 : 1, { history: {} })
    const [a] = nodes
    const device = await join(t, a, 'mover', [PAYMENTS])
    const seen = watch(a.app.realtime.publish(PAYMENTS, 'SEEN', {}, { userId: 'mover' }))
    const [first] = await eventsOf(device.phone, 1)
    await seen.promise
    // The phone's network goes: it reads nothing more, and the node still holds its socket.
    ;(device.phone.socket as unknown as { _socket: Socket })._socket.pause()
    const publish = watch(a.app.realtime.publish(PAYMENTS, 'PAID', { order: 1 }, { userId: 'mover', awaitAck: { timeoutMs: 20_000 } }))
    await sleep(50)
    t.equal(publish.settled(), false, 'the user had a socket: the publish waits')
    device.phone.socket.terminate()
    const phone = await open(t, nodes[nodes.length - 1], device.token, { [PAYMENTS]: first.id })
    t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 1 } })
    const [replayed] = await eventsOf(phone, 1)
    t.strictSame(replayed, { event: 'PAID', channel: PAYMENTS, data: { order: 1 }, id: replayed.id })
    ack(phone, PAYMENTS, replayed.id)
    t.strictSame(await within(publish.promise, 10_000, 'the publish'), { id: replayed.id, acked: true })
  })
}

t.test('acks are cumulative per channel: acking a later id resolves the earlier awaits; another channel\'s ack does not', async (t) => {
  const [a, b] = await startNodes(t, 2, { history: {} })
  const device = await join(t, b, 'batcher', [PAYMENTS, KYC])
  const awaited = [1, 2, 3].map((order) => watch(a.app.realtime.publish(PAYMENTS, 'PAID', { order }, { userId: 'batcher', awaitAck: { timeoutMs: 20_000 } })))
  const events = await eventsOf(device.phone, 3)
  const ids = events.map((event) => event.id)
  t.strictSame(events.map((event) => event.data.order), [1, 2, 3])

  ack(device.phone, PAYMENTS, ids[0])
  t.strictSame(await within(awaited[0].promise, 10_000, 'the first'), { id: ids[0], acked: true })
  // The same id on kyc.events: the socket was never sent it there.
  ack(device.phone, KYC, ids[2])
  await roundTrip(device.phone)
  // The ack travels through Redis like the one before, which has arrived.
  ack(device.phone, PAYMENTS, ids[0])
  await sleep(100)
  t.strictSame([awaited[1].settled(), awaited[2].settled()], [false, false], 'only what the ack covers')

  ack(device.phone, PAYMENTS, ids[2])
  t.strictSame(await within(Promise.all([awaited[1].promise, awaited[2].promise]), 10_000, 'the later ones'), [
    { id: ids[1], acked: true }, { id: ids[2], acked: true }
  ])
  t.equal(b.app.realtime.stats().acks, 4, 'every well-formed ack counted')
})

t.test('a malformed ack gets INVALID_MESSAGE; an ack of an unknown id, or of a channel the socket lacks, is ignored', async (t) => {
  const [node] = await deploy(t, 'embedded', 1, { history: {} })
  const device = await join(t, node, 'sloppy', [PAYMENTS])
  const publish = watch(node.app.realtime.publish(PAYMENTS, 'PAID', { order: 1 }, { userId: 'sloppy', awaitAck: { timeoutMs: 20_000 } }))
  const [event] = await eventsOf(device.phone, 1)
  const invalid = (channel: string | null, message: string) => ({ event: 'error', channel, data: { code: 'INVALID_MESSAGE', message } })

  device.phone.send({ event: 'ack', channel: PAYMENTS })
  device.phone.send({ event: 'ack', channel: PAYMENTS, id: 7 })
  device.phone.send({ event: 'ack', id: event.id })
  t.strictSame(await roundTrip(device.phone), [
    invalid(PAYMENTS, '"ack" needs an "id" string'),
    invalid(PAYMENTS, '"ack" needs an "id" string'),
    invalid(null, '"ack" needs a "channel" string of 1 to 128 characters')
  ])

  const [epoch, offset] = event.id.split(':')
  for (const id of [`${epoch}:${Number(offset) + 1}`, `AAAAAAAA:${offset}`, 'not-an-id', '']) ack(device.phone, PAYMENTS, id)
  ack(device.phone, KYC, event.id)
  ack(device.phone, SETTINGS, event.id)
  t.strictSame(await roundTrip(device.phone), [], 'no reply to any of them')
  t.equal(publish.settled(), false, 'none of them acked the event')
  t.strictSame(node.app.realtime.connections()[0].acked, {})
  ack(device.phone, PAYMENTS, event.id)
  t.strictSame(await within(publish.promise, 5000, 'the publish'), { id: event.id, acked: true })
  t.equal(device.phone.socket.readyState, device.phone.socket.OPEN)
})

t.test('a client acking 100 events a second for two seconds is never rate limited (messages are, at 10/s)', async (t) => {
  const [node] = await deploy(t, 'embedded', 1, { history: {} })
  const device = await join(t, node, 'busy', [PAYMENTS])
  for (let order = 0; order < 200; order++) await node.app.realtime.publish(PAYMENTS, 'TICK', { order }, { userId: 'busy' })
  const events = await eventsOf(device.phone, 200)
  for (let tick = 0; tick < 20; tick++) {
    for (const event of events.slice(tick * 10, tick * 10 + 10)) ack(device.phone, PAYMENTS, event.id)
    await sleep(100)
  }
  t.strictSame(await roundTrip(device.phone), [], 'no RATE_LIMITED, no other answer')
  t.equal(node.app.realtime.stats().acks, 200)
  t.strictSame(node.app.realtime.connections()[0].acked, { [PAYMENTS]: events[199].id })
  // The same socket's other messages have their bucket (burst 20).
  for (let index = 0; index < 25; index++) device.phone.send({ event: 'ping' })
  await waitFor(() => device.phone.inbox.messages.filter((message) => message.event === 'pong' || message.event === 'error').length >= 26, 'answers', 5000)
  t.ok(device.phone.inbox.messages.some((message) => message.data?.code === 'RATE_LIMITED'), 'pings are limited')
})

t.test('awaitAck: refused without history or on a global channel, and with a bad timeoutMs', async (t) => {
  const [off] = await deploy(t, 'embedded', 1)
  const [on] = await deploy(t, 'embedded', 1, { history: {} })
  t.equal(await outcome(off.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'u', awaitAck: { timeoutMs: 1000 } })), 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED')
  t.equal(await outcome(off.app.realtime.channels[PAYMENTS].publish('u', 'E', {}, { awaitAck: { timeoutMs: 1000 } })), 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED')
  t.equal(await outcome(on.app.realtime.publish(SETTINGS, 'E', {}, { awaitAck: { timeoutMs: 1000 } })), 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED')
  const refusal = await off.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'u', awaitAck: { timeoutMs: 1000 } }).catch((error: Error) => error)
  t.match(refusal, { statusCode: 400, message: /^awaitAck is not possible here: history is off/ })
  for (const timeoutMs of [0, -1, 1.5, 3_600_001, Number.NaN, '100', undefined]) {
    const awaitAck = { timeoutMs } as unknown as { timeoutMs: number }
    t.equal(await outcome(on.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'u', awaitAck })), 'FST_REALTIME_INVALID_ARGUMENT', `timeoutMs ${String(timeoutMs)}`)
  }
  t.equal(await outcome(on.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'u', awaitAck: null as unknown as { timeoutMs: number } })), 'FST_REALTIME_INVALID_ARGUMENT')
  const fine = await on.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'u', awaitAck: { timeoutMs: 3_600_000 } })
  t.strictSame(fine, { id: fine.id, acked: false } satisfies PublishResult, 'the bounds themselves are fine')
  t.equal(on.app.realtime.stats().publishes, 1, 'nothing refused was published')
})

t.test('closing the app ends every wait with acked: false', async (t) => {
  const [node] = await startNodes(t, 1, { history: {} })
  const device = await join(t, node, 'closing', [PAYMENTS])
  const publish = watch(node.app.realtime.publish(PAYMENTS, 'PAID', {}, { userId: 'closing', awaitAck: { timeoutMs: 60_000 } }))
  const [event] = await eventsOf(device.phone, 1)
  t.equal(event.event, 'PAID')
  device.phone.socket.terminate()
  await node.app.close()
  t.strictSame(await within(publish.promise, 5000, 'the publish'), { id: event.id, acked: false })
})

t.test('acks cost no Redis round trip unless a publish awaits them: one forwarded message per awaited event acked', async (t) => {
  const client = new Redis(REDIS_URL)
  t.teardown(() => client.disconnect())
  const forwarded: string[] = []
  const publish = client.publish.bind(client) as (channel: string, message: Buffer) => Promise<number>
  ;(client as unknown as { publish: typeof publish }).publish = async (channel, message) => {
    if (message[0] === 0x41) forwarded.push(`${channel} ${message.toString()}`)
    return await publish(channel, message)
  }
  const keyPrefix = uniquePrefix()
  const [node] = await startNodes(t, 1, { redis: client, keyPrefix, history: {} })
  const device = await join(t, node, 'cheap', [PAYMENTS])
  for (let order = 0; order < 10; order++) await node.app.realtime.publish(PAYMENTS, 'TICK', { order }, { userId: 'cheap' })
  for (const event of await eventsOf(device.phone, 10)) ack(device.phone, PAYMENTS, event.id)
  await roundTrip(device.phone)
  t.equal(node.app.realtime.stats().acks, 10)
  t.strictSame(forwarded, [], 'nobody awaited them')

  const awaited = node.app.realtime.publish(PAYMENTS, 'PAID', {}, { userId: 'cheap', awaitAck: { timeoutMs: 20_000 } })
  const event = (await eventsOf(device.phone, 11))[10]
  ack(device.phone, PAYMENTS, event.id)
  t.strictSame(await within(awaited, 10_000, 'the ack'), { id: event.id, acked: true })
  ack(device.phone, PAYMENTS, event.id)
  await roundTrip(device.phone)
  t.strictSame(forwarded, [`${keyPrefix}n:node-0 A${JSON.stringify({ userId: 'cheap', channel: PAYMENTS, id: event.id })}`], 'one message, to the publishing node')
})
