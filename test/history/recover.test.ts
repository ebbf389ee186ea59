import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import {
  MODES, PAYMENTS, SETTINGS, deploy, dropSocket, epochOf, eventsOf, fiftyMissed, join, open, publishAll, received, subscribe
} from '../helpers/history.js'
import { within } from '../helpers/outage.js'

for (const mode of MODES) {
  t.test(`${mode}: 50 events missed on three channels are replayed exactly, in stream order, then live ones follow`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    await fiftyMissed(t, { first: node, publishers: [node], second: node, disconnect: async (phone) => await dropSocket(phone, [node], 'u-50'), userId: 'u-50' })
  })

  t.test(`${mode}: a client that never got an event recovers from the position it was given`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {} })
    const device = await join(t, node, 'u-quiet', [])
    const given = { [SETTINGS]: device.phone.connected.data.positions[SETTINGS], [PAYMENTS]: (await subscribe(device.phone, PAYMENTS)).data.position }
    t.match(given[PAYMENTS], /:0$/)
    await dropSocket(device.phone, [node], 'u-quiet')
    const missed = await publishAll(node, 'u-quiet', [PAYMENTS, SETTINGS, PAYMENTS])
    const phone = await open(t, node, device.token, given)
    t.strictSame(phone.connected.data.recovery, { [SETTINGS]: { recovered: true, replayed: 1 }, [PAYMENTS]: { recovered: true, replayed: 2 } })
    const events = await eventsOf(phone, 3)
    t.strictSame(events.filter((event) => event.channel === PAYMENTS), [received(missed[0]), received(missed[2])])
    t.strictSame(events.filter((event) => event.channel === SETTINGS), [received(missed[1])])
  })

  t.test(`${mode}: a recover or since older than the stream retains is too_old, nothing is replayed, live events follow`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: { size: 5 } })
    const device = await join(t, node, 'u-old', [PAYMENTS])
    const seen = await publishAll(node, 'u-old', [PAYMENTS, PAYMENTS])
    await eventsOf(device.phone, 2)
    await dropSocket(device.phone, [node], 'u-old')
    // Offsets 3 to 12; the stream keeps 8 to 12.
    const missed = await publishAll(node, 'u-old', Array(10).fill(PAYMENTS), 10)
    const epoch = epochOf(seen[0].id)
    const top = missed[9].id

    // The oldest retained is 8: from 7 on the stream holds everything, from 6 it does not.
    for (const [since, expected, replayed] of [
      [`${epoch}:7`, { recovered: true, replayed: 5 }, missed.slice(5)],
      [`${epoch}:6`, { recovered: false, reason: 'too_old' }, []]
    ] as const) {
      const phone = await open(t, node, device.token)
      const answer = await subscribe(phone, PAYMENTS, since)
      t.strictSame(answer.data, { subscriptions: [SETTINGS, PAYMENTS], position: top, ...expected }, `since ${since}`)
      phone.send({ event: 'ping' })
      await waitFor(() => phone.inbox.messages.at(-1)?.event === 'pong', 'pong', 5000)
      t.strictSame(phone.events(), replayed.map(received), `since ${since}: the replay is all that came`)
      await dropSocket(phone, [node], 'u-old')
    }

    const tooOld = await open(t, node, device.token, { [PAYMENTS]: seen[1].id })
    t.strictSame(tooOld.connected.data.recovery, { [PAYMENTS]: { recovered: false, reason: 'too_old' } })
    t.strictSame(tooOld.connected.data.positions, { [SETTINGS]: tooOld.connected.data.positions.settings, [PAYMENTS]: top })
    const [live] = await publishAll(node, 'u-old', [PAYMENTS], 50)
    t.strictSame(await eventsOf(tooOld, 1), [received(live)], 'nothing replayed, the live event follows')
    t.equal(live.id, `${epoch}:13`)
  })
}

t.test('embedded: an expired stream is forgotten whole, so its ids answer epoch_changed', async (t) => {
  const [node] = await deploy(t, 'embedded', 1, { history: { ttlSeconds: 1 } })
  const device = await join(t, node, 'u-exp', [PAYMENTS])
  const [seen] = await publishAll(node, 'u-exp', [PAYMENTS])
  await eventsOf(device.phone, 1)
  await dropSocket(device.phone, [node], 'u-exp')
  await publishAll(node, 'u-exp', [PAYMENTS], 1)
  // The stream's TTL runs from its last append.
  await sleep(1100)
  const phone = await open(t, node, device.token, { [PAYMENTS]: seen.id })
  t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: false, reason: 'epoch_changed' } })
  const position = phone.connected.data.positions[PAYMENTS]
  t.not(epochOf(position), epochOf(seen.id), 'a new life of the stream')
  t.equal(position, `${epochOf(position)}:0`)
  const [live] = await publishAll(node, 'u-exp', [PAYMENTS], 2)
  t.strictSame(await eventsOf(phone, 1), [received(live)])
  t.equal(live.id, `${epochOf(position)}:1`)
})

t.test('cluster: an expired stream answers too_old while its epoch lives on, epoch_changed once that expired too', async (t) => {
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  for (const [metaTtlSeconds, reason] of [[600, 'too_old'], [1, 'epoch_changed']] as const) {
    const keyPrefix = uniquePrefix()
    const [node] = await deploy(t, 'cluster', 1, { keyPrefix, history: { ttlSeconds: 1, metaTtlSeconds } })
    const device = await join(t, node, 'u-exp', [PAYMENTS])
    const [seen] = await publishAll(node, 'u-exp', [PAYMENTS])
    await eventsOf(device.phone, 1)
    await dropSocket(device.phone, [node], 'u-exp')
    const [missed] = await publishAll(node, 'u-exp', [PAYMENTS], 1)
    const stream = `${keyPrefix}stream:u:{u-exp}`
    const gone = metaTtlSeconds === 1 ? [stream, `${stream}:meta`] : [stream]
    await within(waitFor(async () => await redis.exists(...gone) === 0, 'the stream to expire', 5000), 6000, 'the stream to expire')
    const phone = await open(t, node, device.token, { [PAYMENTS]: seen.id })
    t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: false, reason } }, `metaTtlSeconds ${metaTtlSeconds}`)
    const position = phone.connected.data.positions[PAYMENTS]
    t.equal(position, reason === 'too_old' ? missed.id : `${epochOf(position)}:0`)
    const [live] = await publishAll(node, 'u-exp', [PAYMENTS], 2)
    t.strictSame(await eventsOf(phone, 1), [received(live)], 'nothing replayed, the live event follows')
    phone.socket.terminate()
  }
})

for (const mode of MODES) {
  t.test(`${mode}: history off, events carry no id and publish resolves { id: null }`, async (t) => {
    const [node] = await deploy(t, mode, 1)
    const device = await join(t, node, 'u-off', [PAYMENTS])
    t.notOk('positions' in device.phone.connected.data)
    t.strictSame(await node.app.realtime.publish(PAYMENTS, 'E1', { seq: 1 }, { userId: 'u-off' }), { id: null })
    t.strictSame(await node.app.realtime.channels['kyc.events'].publish('u-off', 'E2', { seq: 2 }), { id: null })
    t.strictSame(await node.app.realtime.publish(SETTINGS, 'E3', { seq: 3 }), { id: null })
    t.strictSame(await eventsOf(device.phone, 2), [
      { event: 'E1', channel: PAYMENTS, data: { seq: 1 } },
      { event: 'E3', channel: SETTINGS, data: { seq: 3 } }
    ])
  })
}

t.test('cluster: during a rolling deploy that shrinks history.size, a replay is never cut short and presented as complete', async (t) => {
  const keyPrefix = uniquePrefix()
  const [old] = await startNodes(t, 1, { keyPrefix, history: { size: 256 }, cluster: { nodeId: 'old' } })
  const [shrunk] = await startNodes(t, 1, { keyPrefix, history: { size: 5 }, cluster: { nodeId: 'new' } })
  const device = await join(t, old, 'rolling', [PAYMENTS])
  const [seen] = await publishAll(old, 'rolling', [PAYMENTS])
  await eventsOf(device.phone, 1)
  await dropSocket(device.phone, [old, shrunk], 'rolling')
  // The old node appends and trims to 256: the stream holds all 20.
  const missed = await publishAll(old, 'rolling', Array(20).fill(PAYMENTS), 1)
  const phone = await open(t, shrunk, device.token, { [PAYMENTS]: seen.id })
  // A read returns every retained event, whatever the reader's own size: the whole gap is there.
  t.strictSame(phone.connected.data.recovery[PAYMENTS], { recovered: true, replayed: 20 }, 'recovered, with every missed event')
  t.strictSame(await eventsOf(phone, 20), missed.map(received))
  const [live] = await publishAll(shrunk, 'rolling', [PAYMENTS], 50)
  const events = await eventsOf(phone, 21)
  t.strictSame(events.at(-1), received(live))
})
