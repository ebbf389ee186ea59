import t from 'tap'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { Redis } from 'ioredis'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import {
  KYC, MODES, PAYMENTS, SETTINGS, WS_PATH, deploy, dropSocket, eventsOf, join, offsetOf, open, publishAll, received, subscribe
} from '../helpers/history.js'
import { directClient, outcome, ownRedis, within } from '../helpers/outage.js'
import { Inbox } from '../helpers/messages.js'
import type { Phone } from '../helpers/phone.js'

const FORCE_LOGOUT = 'mobile.force.logout'

/** The messages after the first `skip`, once the last one is a pong. */
async function untilPong (phone: Phone, skip: number): Promise<any[]> {
  await waitFor(() => phone.inbox.messages.length > skip && phone.inbox.messages.at(-1)?.event === 'pong', 'pong', 10_000)
  return phone.inbox.messages.slice(skip)
}

for (const mode of MODES) {
  t.test(`${mode}: messages sent while a subscribe catches up are answered after its replay, in order`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, 'eager', [PAYMENTS])
    const seen = await publishAll(node, 'eager', [PAYMENTS])
    await eventsOf(device.phone, 1)
    const skip = device.phone.inbox.messages.length
    device.phone.send({ event: 'unsubscribe', channel: PAYMENTS })
    await waitFor(() => device.phone.inbox.messages.at(-1)?.event === 'unsubscribed', 'unsubscribed', 5000)
    const missed = await publishAll(node, 'eager', [PAYMENTS, KYC, PAYMENTS], 1)
    device.phone.send({ event: 'subscribe', channel: PAYMENTS, since: seen[0].id })
    device.phone.send({ event: 'subscribe', channel: KYC })
    device.phone.send({ event: 'ping' })
    const messages = await untilPong(device.phone, skip)
    t.strictSame(messages.map((message) => message.event), ['unsubscribed', 'subscribed', 'E1', 'E3', 'subscribed', 'pong'])
    t.strictSame(messages[1].data, { subscriptions: [SETTINGS, PAYMENTS], position: missed[2].id, recovered: true, replayed: 2 })
    t.strictSame(messages.slice(2, 4), [received(missed[0]), received(missed[2])], 'only the channel asked for')
    t.strictSame(messages[4].data, { subscriptions: [SETTINGS, PAYMENTS, KYC], position: missed[2].id })
  })

  t.test(`${mode}: messages sent before connected wait for it and its replay, and are answered in order`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, 'hasty', [PAYMENTS])
    const [seen] = await publishAll(node, 'hasty', [PAYMENTS])
    await eventsOf(device.phone, 1)
    await dropSocket(device.phone, [node], 'hasty')
    const missed = await publishAll(node, 'hasty', [PAYMENTS, PAYMENTS], 1)
    const socket = new WebSocket(`${node.wsBase}${WS_PATH}?token=${device.token}&recover=${PAYMENTS}@${seen.id}`)
    t.teardown(() => socket.terminate())
    const inbox = new Inbox(socket)
    await within(once(socket, 'open'), 5000, 'the upgrade')
    socket.send(JSON.stringify({ event: 'subscribe', channel: KYC }))
    socket.send(JSON.stringify({ event: 'ping' }))
    await waitFor(() => inbox.messages.at(-1)?.event === 'pong', 'pong', 5000)
    t.strictSame(inbox.messages.map((message) => message.event), ['connected', 'E1', 'E2', 'subscribed', 'pong'])
    t.strictSame(inbox.messages.slice(1, 3), missed.map(received))
    t.strictSame(inbox.messages[3].data, { subscriptions: [SETTINGS, PAYMENTS, KYC], position: missed[1].id })
  })

  t.test(`${mode}: a replay far larger than the send-buffer cap goes out whole`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: { size: 300 }, limits: { maxBufferedBytes: 64 * 1024 } })
    const device = await join(t, node, 'bulky', [PAYMENTS])
    const [seen] = await publishAll(node, 'bulky', [PAYMENTS])
    await eventsOf(device.phone, 1)
    await dropSocket(device.phone, [node], 'bulky')
    const padding = 'x'.repeat(8000)
    const ids: string[] = []
    for (let seq = 0; seq < 256; seq++) ids.push((await node.app.realtime.publish(PAYMENTS, 'BIG', { seq, padding }, { userId: 'bulky' })).id as string)
    const phone = await open(t, node, device.token, { [PAYMENTS]: seen.id })
    t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 256 } })
    const events = await eventsOf(phone, 256, 'the 2 MB replay')
    t.strictSame(events.map((event) => event.id), ids)
    t.ok(events.every((event, seq) => event.data.seq === seq && event.data.padding === padding))
    t.equal(phone.socket.readyState, phone.socket.OPEN, 'not cut as a slow consumer')
  })

  t.test(`${mode}: after unsubscribe, the channel's events stop, its awaited events are forgotten and its acks ignored`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, 'leaving', [PAYMENTS])
    const awaited = node.app.realtime.publish(PAYMENTS, 'PAID', {}, { userId: 'leaving', awaitAck: { timeoutMs: 300 } })
    const [event] = await eventsOf(device.phone, 1)
    const skip = device.phone.inbox.messages.length
    device.phone.send({ event: 'unsubscribe', channel: PAYMENTS })
    device.phone.send({ event: 'ack', channel: PAYMENTS, id: event.id })
    device.phone.send({ event: 'ping' })
    t.strictSame((await untilPong(device.phone, skip)).map((message) => message.event), ['unsubscribed', 'pong'])
    t.strictSame(await within(awaited, 5000, 'the timeout'), { id: event.id, acked: false })
    t.strictSame(node.app.realtime.connections()[0].acked, {})
    const [unseen] = await publishAll(node, 'leaving', [PAYMENTS], 1)
    const again = await subscribe(device.phone, PAYMENTS)
    const [live] = await publishAll(node, 'leaving', [PAYMENTS], 2)
    await waitFor(() => device.phone.events().some((candidate) => candidate.id === live.id), 'the live event', 5000)
    // In cluster mode the node may receive `unseen` only after the subscribe: then the position is before it, and it follows.
    t.ok([event.id, unseen.id].includes(again.data.position), 'the position is the last event the node had')
    const messages = device.phone.inbox.messages
    const subscribedAt = messages.indexOf(again)
    t.strictSame(messages.slice(skip, subscribedAt).map((message) => message.event), ['unsubscribed', 'pong'], 'nothing while unsubscribed')
    t.strictSame(messages.slice(subscribedAt + 1), [unseen, live].filter((later) => offsetOf(later.id) > offsetOf(again.data.position)).map(received),
      'after the subscribe, exactly the events after its position')
  })

  t.test(`${mode}: forceLogout with history: the event is kept in the user's stream, and the close follows it`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, '120046', [PAYMENTS])
    const [seen] = await publishAll(node, '120046', [PAYMENTS])
    await eventsOf(device.phone, 1)
    const gone = once(device.phone.socket, 'close')
    await node.app.realtime.forceLogout('120046', { reason: 'password_changed' })
    t.equal((await within(gone, 5000, 'the close'))[0], 4502)
    const [, logout] = device.phone.events()
    t.strictSame(logout, {
      event: 'MOBILE_USER_FORCE_LOGOUT_EVENT',
      channel: FORCE_LOGOUT,
      data: { reason: 'password_changed', mobile_user_id: 120046, is_force_logout: true },
      id: logout.id
    })
    t.equal(logout.id, seen.id.replace(/:1$/, ':2'), 'next in the user stream')

    await waitFor(() => node.app.realtime.connections().length === 0, 'the socket to be gone', 5000)
    const phone = await open(t, node, device.token, { [PAYMENTS]: seen.id, [FORCE_LOGOUT]: seen.id })
    t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 0 }, [FORCE_LOGOUT]: { recovered: true, replayed: 1 } })
    t.strictSame(await eventsOf(phone, 1), [logout], 'a phone that missed it gets it by replay')
  })
}

t.test('a stream whose keys hold something else (WRONGTYPE): a subscribe answers HISTORY_UNAVAILABLE and leaves an already subscribed channel subscribed; publish rejects', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  const [node] = await startNodes(t, 1, { keyPrefix, history: {} })
  const device = await join(t, node, 'broken', [])
  await redis.set(`${keyPrefix}stream:u:{broken}:meta`, 'garbage')
  await redis.set(`${keyPrefix}stream:c:{settings}:meta`, 'garbage')
  const skip = device.phone.inbox.messages.length
  device.phone.send({ event: 'subscribe', channel: PAYMENTS })
  device.phone.send({ event: 'subscribe', channel: SETTINGS, since: device.phone.connected.data.positions.settings })
  device.phone.send({ event: 'ping' })
  const unavailable = (channel: string) => ({ event: 'error', channel, data: { code: 'HISTORY_UNAVAILABLE', message: 'History is unavailable; try again' } })
  const messages = await untilPong(device.phone, skip)
  t.strictSame(messages.slice(0, 2), [unavailable(PAYMENTS), unavailable(SETTINGS)])
  t.equal(messages.length, 3)
  t.strictSame(node.app.realtime.connections()[0].subscriptions, [SETTINGS], 'payments left unsubscribed, settings still subscribed')

  t.equal(await outcome(node.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'broken' })), 'FST_REALTIME_OUTCOME_UNKNOWN')
  t.equal(await outcome(node.app.realtime.publish(PAYMENTS, 'E', {}, { userId: 'broken', awaitAck: { timeoutMs: 60_000 } })), 'FST_REALTIME_OUTCOME_UNKNOWN')
  t.equal(await outcome(node.app.realtime.forceLogout('broken')), 'FST_REALTIME_OUTCOME_UNKNOWN')
  t.equal(device.phone.socket.readyState, device.phone.socket.OPEN)
})

t.test('a socket that goes away while its subscribe catches up is sent nothing, whether the read then answers or fails', async (t) => {
  const own = await ownRedis(t)
  const redis = directClient(t, own.url)
  const keyPrefix = uniquePrefix()
  // One node whose reads outlast the freeze, one whose reads fail during it.
  const [patient] = await startNodes(t, 1, { redis: own.url, keyPrefix, history: { readTimeoutMs: 10_000 }, cluster: { nodeId: 'patient' } })
  const [hasty] = await startNodes(t, 1, { redis: own.url, keyPrefix, history: { readTimeoutMs: 100 }, cluster: { nodeId: 'hasty' } })
  for (const [read, node] of [['answers', patient], ['fails', hasty]] as const) {
    const userId = `vanishing-${read}`
    const device = await join(t, node, userId, [])
    const logged = node.logs.length
    const { dropped } = node.app.realtime.stats()
    own.freeze()
    device.phone.send({ event: 'subscribe', channel: PAYMENTS })
    device.phone.socket.terminate()
    await waitFor(() => node.app.realtime.connections().length === 0, 'the socket to be gone', 5000)
    // The hasty node's read passes its deadline while Redis is frozen; the patient one's is answered at the thaw.
    if (read === 'fails') await sleep(300)
    own.thaw()
    await within(redis.ping(), 5000, 'Redis back')
    await sleep(50)
    t.notOk(node.logs.slice(logged).some((line) => line.includes('history read failed')), `${read}: nothing to tell a socket that is gone`)
    t.equal(node.app.realtime.stats().dropped, dropped, `${read}: nothing was written to it`)
  }
  const after = await join(t, patient, 'after', [PAYMENTS])
  t.equal(after.phone.inbox.messages.at(-1).event, 'subscribed', 'the node still serves')
})

t.test('a subscribe whose read fails drops what was held of that channel only: the events of the others go out', async (t) => {
  const keyPrefix = uniquePrefix()
  // The node's client is the test's: its history reads of the user's stream wait for the test's go.
  const client = new Redis(REDIS_URL)
  const inspector = new Redis(REDIS_URL)
  t.teardown(() => { client.disconnect(); inspector.disconnect() })
  const stream = `${keyPrefix}stream:u:{held}`
  let go: () => void = () => {}
  const gate = new Promise<void>((resolve) => { go = resolve })
  let reads = 0
  // Scripts go out through client.call('evalsha', sha, numkeys, ...keys, ...args).
  const call = client.call.bind(client) as (...args: unknown[]) => Promise<unknown>
  ;(client as unknown as { call: typeof call }).call = async (...args) => {
    if (args[0] === 'evalsha' && args[3] === stream) {
      reads++
      await gate
    }
    return await call(...args)
  }
  const [node] = await startNodes(t, 1, { redis: client, keyPrefix, history: {} })
  const device = await join(t, node, 'held', [])
  const observer = await join(t, node, 'observer', [])
  await inspector.set(`${stream}:meta`, 'garbage')
  const skip = device.phone.inbox.messages.length
  device.phone.send({ event: 'subscribe', channel: PAYMENTS })
  await waitFor(() => reads === 1, 'the read to start', 5000)
  // Live events that arrive while the read is held: one of the channel being subscribed, one of settings.
  const payment = '{"event":"LIVE","channel":"payment_order.events","data":{},"id":"abcdefgh:7"}'
  const setting = '{"event":"LIVE","channel":"settings","data":{},"id":"abcdefgh:9"}'
  await inspector.publish(`${keyPrefix}u:{held}`, `E${Date.now()} ${PAYMENTS} abcdefgh:7\n${payment}`)
  await inspector.publish(`${keyPrefix}c:{settings}`, `E${Date.now()} ${SETTINGS} abcdefgh:9\n${setting}`)
  device.phone.send({ event: 'ping' })
  // The node handles its subscriber's messages in order: once another socket has the settings event, both were held.
  await waitFor(() => observer.phone.events().length === 1, 'the observer\'s settings event', 5000)
  go()
  const messages = await untilPong(device.phone, skip)
  t.strictSame(messages, [
    JSON.parse(setting),
    { event: 'error', channel: PAYMENTS, data: { code: 'HISTORY_UNAVAILABLE', message: 'History is unavailable; try again' } },
    messages[2]
  ], 'the settings event, the error; nothing of payments')
  t.equal(messages[2].event, 'pong')
})

t.test('an event published while a subscribe+since read is in flight reaches the socket live and in the replay: it goes out once, in order', async (t) => {
  const keyPrefix = uniquePrefix()
  // The node's client is the test's: its reads of the user's stream wait for the test's go.
  const client = new Redis(REDIS_URL)
  t.teardown(() => { client.disconnect() })
  const stream = `${keyPrefix}stream:u:{merge}`
  let go: () => void = () => {}
  const gate = new Promise<void>((resolve) => { go = resolve })
  let reads = 0
  // Scripts go out through client.call('evalsha', sha, numkeys, ...keys, ...args).
  const call = client.call.bind(client) as (...args: unknown[]) => Promise<unknown>
  ;(client as unknown as { call: typeof call }).call = async (...args) => {
    // The read script (stream, meta and 3 arguments), not the append one, which runs on the same client.
    if (args[0] === 'evalsha' && args[3] === stream && args.length === 8) {
      reads++
      await gate
    }
    return await call(...args)
  }
  const [node] = await startNodes(t, 1, { redis: client, keyPrefix, history: {} })
  const [before] = await publishAll(node, 'merge', [PAYMENTS], 1)
  const device = await join(t, node, 'merge', [])
  const observer = await join(t, node, 'observer', [])
  const skip = device.phone.inbox.messages.length
  device.phone.send({ event: 'subscribe', channel: PAYMENTS, since: before.id })
  await waitFor(() => reads === 1, 'the read to start', 5000)
  // Appended before the read runs, and delivered live to the held socket.
  const [during] = await publishAll(node, 'merge', [PAYMENTS], 2)
  // The node handles its subscriber's messages in order: once another socket has this one, `during` was held.
  const [setting] = await publishAll(node, 'merge', [SETTINGS], 3)
  await waitFor(() => observer.phone.events().length === 1, 'the observer\'s settings event', 5000)
  go()
  await waitFor(() => device.phone.inbox.messages.length >= skip + 3, 'the answer, the replay and the held settings event', 5000)
  const [after] = await publishAll(node, 'merge', [PAYMENTS], 4)
  await waitFor(() => device.phone.events().some((event) => event.data.seq === 4), 'the live event after', 5000)
  const messages = device.phone.inbox.messages.slice(skip)
  t.match(messages[0], { event: 'subscribed', channel: PAYMENTS, data: { recovered: true, replayed: 1 } })
  t.strictSame(messages.slice(1), [received(during), received(setting), received(after)], 'the replay, what was held without its copy, then live')
})
