import t, { type Test } from 'tap'
import { Cluster } from 'ioredis'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { PAYMENTS, dropSocket, eventsOf, fiftyMissed, join, open } from '../helpers/history.js'
import { within } from '../helpers/outage.js'
import { OwnRedisCluster } from '../helpers/redis-cluster.js'

// Three masters of the test's own: the shared Redis at 6379 is not a cluster.
const redisCluster = await OwnRedisCluster.start()
t.teardown(async () => await redisCluster.stop())

/** Two nodes with history, each with a Cluster client of its own (quit after the apps close). */
async function startDeployment (t: Test): Promise<{ nodes: TestApp[], inspector: Cluster, keyPrefix: string }> {
  const keyPrefix = uniquePrefix()
  const clients = [0, 1].map(() => new Cluster([redisCluster.startupNodes[0]]))
  const inspector = new Cluster([redisCluster.startupNodes[0]])
  const nodes: TestApp[] = []
  t.teardown(async () => {
    await Promise.all(nodes.map(async (node) => await node.app.close()))
    await Promise.all([...clients, inspector].map(async (client) => await client.quit()))
  })
  for (const [index, client] of clients.entries()) {
    nodes.push(await startApp({ redis: client, keyPrefix, history: {}, limits: { maxConnectionsPerIp: 0 }, cluster: { nodeId: `node-${index}` } }))
  }
  await waitFor(() => inspector.status === 'ready', 'the inspecting Cluster client')
  return { nodes, inspector, keyPrefix }
}

t.test('Redis Cluster: 50 missed events published from both nodes are recovered on the other node', async (t) => {
  const { nodes: [a, b] } = await startDeployment(t)
  await fiftyMissed(t, { first: a, publishers: [b, a], second: b, disconnect: async (phone) => await dropSocket(phone, [a, b], 'sharded'), userId: 'sharded' })
})

t.test('Redis Cluster: a user\'s stream, its meta hash and its topic share one slot; an ack travels back to the publishing node', async (t) => {
  const { nodes: [a, b], inspector, keyPrefix } = await startDeployment(t)
  const device = await join(t, b, 'slotted', [PAYMENTS])
  const publish = a.app.realtime.publish(PAYMENTS, 'PAID', { order: 1 }, { userId: 'slotted', awaitAck: { timeoutMs: 20_000 } })
  const [event] = await eventsOf(device.phone, 1)
  device.phone.send({ event: 'ack', channel: PAYMENTS, id: event.id })
  t.strictSame(await within(publish, 10_000, 'the ack'), { id: event.id, acked: true })

  const stream = `${keyPrefix}stream:u:{slotted}`
  const slots = await Promise.all([stream, `${stream}:meta`, `${keyPrefix}u:{slotted}`].map(async (key) => await inspector.cluster('KEYSLOT', key)))
  t.equal(new Set(slots).size, 1, 'one slot')
  t.equal(await inspector.xlen(stream), 1)
  t.strictSame(await inspector.hgetall(`${stream}:meta`), { epoch: event.id.split(':')[0], top: '1' })

  await dropSocket(device.phone, [a, b], 'slotted')
  const missed = await a.app.realtime.publish(PAYMENTS, 'PAID', { order: 2 }, { userId: 'slotted' })
  const phone = await open(t, a, device.token, { [PAYMENTS]: event.id })
  t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 1 } })
  t.strictSame(await eventsOf(phone, 1), [{ event: 'PAID', channel: PAYMENTS, data: { order: 2 }, id: missed.id }])
})

t.test('Redis Cluster: an idempotent publish retried from the other node is delivered once; its record shares the slot of the stream and topic', async (t) => {
  const { nodes: [a, b], inspector, keyPrefix } = await startDeployment(t)
  const device = await join(t, b, 'once', [PAYMENTS])
  const first = await a.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'once', idempotencyKey: 'po_9:paid' })
  t.strictSame(await b.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'once', idempotencyKey: 'po_9:paid' }), first)
  const fees = await b.app.realtime.publish('settings', 'FEES', { n: 2 }, { idempotencyKey: 'po_9:paid' })
  t.strictSame(await a.app.realtime.publish('settings', 'FEES', { n: 2 }, { idempotencyKey: 'po_9:paid' }), fees)
  const last = await b.app.realtime.publish(PAYMENTS, 'LAST', {}, { userId: 'once' })
  await eventsOf(device.phone, 3)
  await waitFor(() => device.phone.events().some((event) => event.id === fees.id), 'the settings event')
  t.strictSame(device.phone.events().filter((event) => event.channel === PAYMENTS), [
    { event: 'PAID', channel: PAYMENTS, data: { n: 1 }, id: first.id },
    { event: 'LAST', channel: PAYMENTS, data: {}, id: last.id }
  ])
  t.strictSame(device.phone.events().filter((event) => event.channel === 'settings'), [{ event: 'FEES', channel: 'settings', data: { n: 2 }, id: fees.id }])

  const record = `${keyPrefix}idem:u:{once}:${PAYMENTS}|po_9:paid`
  const keys = [record, `${keyPrefix}stream:u:{once}`, `${keyPrefix}u:{once}`]
  t.equal(new Set(await Promise.all(keys.map(async (key) => await inspector.cluster('KEYSLOT', key)))).size, 1, 'one slot')
  t.equal(await inspector.get(record), first.id)
  t.equal(await inspector.get(`${keyPrefix}idem:c:{settings}|po_9:paid`), fees.id)
})
