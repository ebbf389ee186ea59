// Redis failover under load with Sentinel: two gateway nodes, each given a
// borrowed ioredis client configured with `sentinels`, a primary/replica pair
// of the test's own. Publishes flow from node A to a phone on node B while the
// primary is killed (or frozen): Sentinel promotes the replica, both nodes
// follow it (publisher and subscriber), delivery resumes, every socket is told
// `resync`, no socket is closed, no refused publish is delivered and nothing
// is delivered twice. (The failure this guards against: a subscriber left on
// the old primary, receiving nothing, centrifugo #1189.)
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'
import { OwnRedisSentinel } from '../helpers/redis-sentinel.js'

const CHANNEL = 'payment_order.events'
const PUBLISH_EVERY_MS = 10

/** The client README recommends for Sentinel (see the report's proposed text). */
function sentinelClient (pair: OwnRedisSentinel): Redis {
  return new Redis({
    ...pair.sentinelOptions,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    commandTimeout: 500,
    enableAutoPipelining: true,
    // Ask Sentinel again soon: the primary it named may be the one that died.
    retryStrategy: () => 100,
    sentinelRetryStrategy: () => 100,
    // A primary demoted behind our back answers writes with READONLY: reconnect, and Sentinel names the new one.
    reconnectOnError: (error) => error.message.startsWith('READONLY') ? 2 : false
  })
}

interface Deployment {
  nodes: [TestApp, TestApp]
  clients: [Redis, Redis]
  /** The phone of user `phone`, on node B. */
  phone: Inbox
  phoneSocket: WebSocket
  /** A socket of user `watcher` on node A: told resync too. */
  watcher: Inbox
  watcherSocket: WebSocket
}

async function deploy (t: Test, pair: OwnRedisSentinel): Promise<Deployment> {
  const keyPrefix = uniquePrefix()
  const clients: [Redis, Redis] = [sentinelClient(pair), sentinelClient(pair)]
  for (const client of clients) client.on('error', () => {})
  const nodes: TestApp[] = []
  const sockets: WebSocket[] = []
  t.teardown(async () => {
    for (const socket of sockets) socket.terminate()
    await Promise.all(nodes.map(async (node) => await node.app.close()))
    // Borrowed: the plugin leaves them open, their owner quits them.
    for (const client of clients) client.disconnect()
  })
  for (const [index, client] of clients.entries()) {
    await waitFor(() => client.status === 'ready', 'the Sentinel client to be ready')
    nodes.push(await startApp({
      redis: client,
      keyPrefix,
      limits: { maxConnectionsPerIp: 0 },
      cluster: { nodeId: `node-${index}`, probeIntervalMs: 200, publishTimeoutMs: 500 }
    }))
  }
  const [a, b] = nodes
  const phoneToken = await b.app.realtime.tokens.issue('phone', { ttlSeconds: 600 })
  const watcherToken = await a.app.realtime.tokens.issue('watcher', { ttlSeconds: 600 })
  const phone = await connect(`${b.wsBase}/api/v1/ws?token=${phoneToken}`)
  const watcher = await connect(`${a.wsBase}/api/v1/ws?token=${watcherToken}`)
  sockets.push(phone.socket, watcher.socket)
  const phoneInbox = new Inbox(phone.socket)
  phone.socket.send(JSON.stringify({ event: 'subscribe', channel: CHANNEL }))
  await phoneInbox.until(1)
  return { nodes: [a, b], clients, phone: phoneInbox, phoneSocket: phone.socket, watcher: new Inbox(watcher.socket), watcherSocket: watcher.socket }
}

type Outcome = 'ok' | 'FST_REALTIME_REDIS_UNAVAILABLE' | 'FST_REALTIME_OUTCOME_UNKNOWN'

/** Publishes `seq` 0, 1, … from node A to the phone every few ms until `stop()`; records each outcome. */
function publishLoop (node: TestApp): { outcomes: Map<number, Outcome>, next: () => number, stop: () => Promise<void> } {
  const outcomes = new Map<number, Outcome>()
  const state = { running: true }
  let seq = 0
  const loop = (async () => {
    for (; state.running; seq++) {
      // The outcome settles later, when `seq` has moved on: file it under this publish's own.
      const mine = seq
      node.app.realtime.publish(CHANNEL, 'TICK', { seq: mine }, { userId: 'phone' }).then(
        () => outcomes.set(mine, 'ok'),
        (error: { code: Outcome }) => outcomes.set(mine, error.code)
      )
      await sleep(PUBLISH_EVERY_MS)
    }
  })()
  return { outcomes, next: () => seq, stop: async () => { state.running = false; await loop; await sleep(600) } }
}

async function tcpPortOf (client: Redis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(await client.info('server'))?.[1])
}

/** What the phone got, checked against what the publisher was told. */
function audit (t: Test, phone: Inbox, outcomes: Map<number, Outcome>): void {
  const seqs = phone.messages.filter((message) => message.event === 'TICK').map((message) => message.data.seq as number)
  t.equal(new Set(seqs).size, seqs.length, 'nothing delivered twice')
  t.strictSame(seqs, [...seqs].sort((x, y) => x - y), 'delivered in publish order')
  t.strictSame(seqs.filter((seq) => outcomes.get(seq) === 'FST_REALTIME_REDIS_UNAVAILABLE'), [], 'no refused publish delivered')
  const accepted = [...outcomes].filter(([, outcome]) => outcome === 'ok').map(([seq]) => seq)
  const lost = accepted.filter((seq) => !seqs.includes(seq))
  // An accepted publish may be lost around the failover (async replication, a
  // subscriber still on the old primary): the phone must be told resync after
  // the last event it got before the lost one.
  const unannounced = lost.filter((seq) => {
    const lastBefore = phone.messages.findLastIndex((message) => message.event === 'TICK' && message.data.seq < seq)
    return !phone.messages.slice(lastBefore + 1).some((message) => message.event === 'resync')
  })
  t.strictSame(unannounced, [], `every accepted event lost (${lost.length}) is followed by a resync`)
  const counts: Record<string, number> = {}
  for (const outcome of outcomes.values()) counts[outcome] = (counts[outcome] ?? 0) + 1
  t.comment(`publishes: ${JSON.stringify(counts)}; delivered ${seqs.length}; accepted but lost ${lost.length}`)
}

for (const fault of ['killed (SIGKILL)', 'frozen (SIGSTOP) until Sentinel has failed over'] as const) {
  t.test(`the primary ${fault} under load: both nodes follow the new primary, delivery resumes, every socket told resync`, async (t) => {
    const pair = await OwnRedisSentinel.start()
    t.teardown(async () => await pair.stop())
    const deployment = await deploy(t, pair)
    const [a] = deployment.nodes
    const oldPrimary = await pair.primaryPort()
    t.strictSame(await Promise.all(deployment.clients.map(tcpPortOf)), [oldPrimary, oldPrimary], 'both nodes start on the primary')

    const load = publishLoop(a)
    await waitFor(() => deployment.phone.messages.some((message) => message.event === 'TICK'), 'events to flow')
    if (fault === 'killed (SIGKILL)') {
      await pair.signal(oldPrimary, 'SIGKILL')
    } else {
      await pair.signal(oldPrimary, 'SIGSTOP')
      t.teardown(async () => { await pair.signal(oldPrimary, 'SIGCONT').catch(() => {}) })
    }
    const newPrimary = await pair.waitForFailoverFrom(oldPrimary)

    // Delivery resumes: publishes made after the failover reach the phone on the other node.
    const afterFailover = load.next()
    await waitFor(() => deployment.phone.messages.some((message) => message.event === 'TICK' && message.data.seq >= afterFailover), 'delivery to resume after the failover', 15_000)
    await load.stop()

    t.strictSame(await Promise.all(deployment.clients.map(tcpPortOf)), [newPrimary, newPrimary], 'both publishers follow the new primary')
    for (const [name, inbox] of [['phone (node B)', deployment.phone], ['watcher (node A)', deployment.watcher]] as const) {
      // Told once the link has stayed up a moment, which may be after delivery resumed.
      await waitFor(() => inbox.messages.some((message) => message.event === 'resync'), `${name} told resync`, 5000).catch(() => {})
      const resync = inbox.messages.find((message) => message.event === 'resync')
      t.match(resync, { event: 'resync', channel: null, data: { reason: /^subscriber_(reconnected|replaced)$/ } }, `${name} told resync`)
    }
    t.equal(deployment.phoneSocket.readyState, WebSocket.OPEN, 'the phone was not disconnected')
    t.equal(deployment.watcherSocket.readyState, WebSocket.OPEN, 'the watcher was not disconnected')
    audit(t, deployment.phone, load.outcomes)

    // Both subscribers listen on the new primary: a global event published from node A reaches both nodes' sockets.
    const before = [deployment.phone.messages.length, deployment.watcher.messages.length]
    await a.app.realtime.publish('settings', 'after_failover', { ok: true })
    await waitFor(() => deployment.phone.messages.length > before[0] && deployment.watcher.messages.length > before[1], 'a global event on both nodes')
    t.match(deployment.phone.messages.at(-1), { event: 'after_failover' })
    t.match(deployment.watcher.messages.at(-1), { event: 'after_failover' })
    const direct = new Redis(newPrimary, '127.0.0.1')
    t.teardown(() => direct.disconnect())
    const subscribers = String(await direct.client('LIST')).split('\n').filter((line) => line.includes('name=fastify-realtime:subscriber'))
    t.equal(subscribers.length, 2, 'one subscriber connection per node on the new primary')
  })
}
