import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { uniquePrefix } from '../helpers/app.js'
import { startNodes } from '../helpers/cluster.js'
import {
  KYC, MODES, PAYMENTS, SETTINGS, deploy, dropSocket, eventsOf, fiftyMissed, join, offsets, open, publishAll, range, received
} from '../helpers/history.js'
import { within } from '../helpers/outage.js'

t.test('50 missed events published from both nodes are recovered on the other node', async (t) => {
  const [a, b] = await startNodes(t, 2, { history: {} })
  await fiftyMissed(t, { first: a, publishers: [b, a], second: b, disconnect: async (phone) => await dropSocket(phone, [a, b], 'roamer'), userId: 'roamer' })
})

t.test('the node that held the socket is SIGKILLed: the client recovers the 50 on another node', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a] = await startNodes(t, 1, { keyPrefix, history: {} })
  const script = fileURLToPath(new URL('../helpers/cluster-node.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, script], {
    env: { ...process.env, KEY_PREFIX: keyPrefix, HEARTBEAT_MS: '30000', NODE_ID: 'doomed', HISTORY: '{}' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = await within(once(child.stdout, 'data'), 20_000, 'the child node to listen') as [Buffer]
  const { port } = JSON.parse(line.toString())
  await fiftyMissed(t, {
    first: { wsBase: `ws://127.0.0.1:${port}` },
    publishers: [a],
    second: a,
    disconnect: async (phone) => {
      const gone = once(phone.socket, 'close')
      child.kill('SIGKILL')
      await within(once(child, 'exit'), 5000, 'the child node to die')
      t.equal((await within(gone, 5000, 'the client to see its socket die'))[0], 1006)
    },
    userId: 'crashed'
  })
})

t.test('the node that held the socket restarts: the client recovers the 50 on its new life', async (t) => {
  const keyPrefix = uniquePrefix()
  const options = { keyPrefix, history: {} }
  const [a] = await startNodes(t, 1, { ...options, cluster: { nodeId: 'steady' } })
  const old = await startNodes(t, 1, { ...options, cluster: { nodeId: 'restarting' } })
  let restarted = old[0]
  await fiftyMissed(t, {
    first: old[0],
    publishers: [a],
    get second () { return restarted },
    disconnect: async (phone) => {
      const gone = once(phone.socket, 'close')
      await old[0].app.close()
      t.equal((await within(gone, 5000, 'the client to see 1001'))[0], 1001)
      restarted = (await startNodes(t, 1, { ...options, cluster: { nodeId: 'restarting' } }))[0]
    },
    userId: 'restarted'
  })
})

for (const mode of MODES) {
  t.test(`${mode}: 10 users recovering at once each get exactly the events they missed`, async (t) => {
    const nodes = await deploy(t, mode, mode === 'cluster' ? 2 : 1, { history: {} })
    const users = Array.from({ length: 10 }, (_, index) => `crowd-${index}`)
    const devices = await Promise.all(users.map(async (userId, index) => await join(t, nodes[index % nodes.length], userId, [PAYMENTS])))
    const seen = await Promise.all(users.map(async (userId) => (await publishAll(nodes[0], userId, [PAYMENTS]))[0]))
    const [settingsSeen] = await publishAll(nodes[0], '', [SETTINGS], 1000)
    for (const device of devices) await eventsOf(device.phone, 2)
    for (const device of devices) await dropSocket(device.phone, nodes, device.userId)

    // User i misses i + 1 events; everyone misses three settings events.
    const missed = await Promise.all(users.map(async (userId, index) =>
      await publishAll(nodes[(index + 1) % nodes.length], userId, Array(index + 1).fill(PAYMENTS), 10)))
    const settingsMissed = await publishAll(nodes[0], '', [SETTINGS, SETTINGS, SETTINGS], 2000)

    const phones = await Promise.all(devices.map(async (device, index) =>
      await open(t, nodes[(index + 1) % nodes.length], device.token, { [SETTINGS]: settingsSeen.id, [PAYMENTS]: seen[index].id })))
    for (const [index, phone] of phones.entries()) {
      t.strictSame(phone.connected.data.recovery, {
        [SETTINGS]: { recovered: true, replayed: 3 },
        [PAYMENTS]: { recovered: true, replayed: index + 1 }
      }, users[index])
      const events = await eventsOf(phone, index + 4)
      t.strictSame(events.filter((event) => event.channel === PAYMENTS), missed[index].map(received), `${users[index]}: its own missed events, in order`)
      t.strictSame(offsets(events, [PAYMENTS]), range(2, index + 1))
      t.strictSame(events.filter((event) => event.channel === SETTINGS), settingsMissed.map(received))
    }
    // A last event to each: nothing else was replayed before it.
    const last = await Promise.all(users.map(async (userId) => (await publishAll(nodes[0], userId, [PAYMENTS], 99))[0]))
    for (const [index, phone] of phones.entries()) {
      const events = await eventsOf(phone, index + 5)
      t.strictSame(events.at(-1), received(last[index]))
      t.equal(events.length, index + 5, `${users[index]}: nothing more`)
    }
  })
}

t.test('two nodes publishing to one user at once: the socket gets the stream in order, ids contiguous', async (t) => {
  const [a, b] = await startNodes(t, 2, { history: {} })
  const device = await join(t, a, 'contended', [PAYMENTS, KYC])
  const burst = async (node: typeof a, channel: string, from: number) => {
    const ids: string[] = []
    for (let seq = from; seq < from + 100; seq++) ids.push((await node.app.realtime.publish(channel, 'E', { seq }, { userId: 'contended' })).id as string)
    return ids
  }
  const [fromA, fromB] = await Promise.all([burst(a, PAYMENTS, 0), burst(b, KYC, 1000)])
  const events = await eventsOf(device.phone, 200)
  t.strictSame(offsets(events, [PAYMENTS, KYC]), range(1, 200), 'stream order, nothing missing or twice')
  t.strictSame(events.filter((event) => event.channel === PAYMENTS).map((event) => event.id), fromA, 'each publisher\'s events in its order')
  t.strictSame(events.filter((event) => event.channel === KYC).map((event) => event.id), fromB)
})
