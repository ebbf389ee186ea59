// Redis failover under load with Sentinel: two gateway nodes, each given a
// borrowed ioredis client configured with `sentinels`, a primary/replica pair
// of the test's own. Publishes flow from node A to a phone on node B while the
// primary is killed (or frozen): Sentinel promotes the replica, both nodes
// follow it (publisher and subscriber), delivery resumes, every socket is told
// `resync`, no socket is closed, no refused publish is delivered and nothing
// is delivered twice. (The failure this guards against: a subscriber left on
// the old primary, receiving nothing, centrifugo #1189.)
import t from 'tap'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'
import { waitFor } from '../helpers/cluster.js'
import { audit, deploy, publishLoop } from '../helpers/failover.js'
import { OwnRedisSentinel } from '../helpers/redis-sentinel.js'
import { sentinelClientOptions } from '../helpers/recommended-clients.js'

/** The client README recommends for Sentinel. */
function sentinelClient (pair: OwnRedisSentinel): Redis {
  return new Redis(sentinelClientOptions(pair.sentinelOptions))
}

async function tcpPortOf (client: Redis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(await client.info('server'))?.[1])
}

for (const fault of ['killed (SIGKILL)', 'frozen (SIGSTOP) until Sentinel has failed over'] as const) {
  t.test(`the primary ${fault} under load: both nodes follow the new primary, delivery resumes, every socket told resync`, async (t) => {
    const pair = await OwnRedisSentinel.start()
    t.teardown(async () => await pair.stop())
    const clients: [Redis, Redis] = [sentinelClient(pair), sentinelClient(pair)]
    const deployment = await deploy(t, clients)
    const [a] = deployment.nodes
    // A socket of user `watcher` on node A: told resync too.
    const watcher = await deployment.open(a, 'watcher')
    const oldPrimary = await pair.primaryPort()
    t.strictSame(await Promise.all(clients.map(tcpPortOf)), [oldPrimary, oldPrimary], 'both nodes start on the primary')

    const load = publishLoop(a, 'phone')
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
    // What was published last has a moment to arrive.
    await sleep(600)

    t.strictSame(await Promise.all(clients.map(tcpPortOf)), [newPrimary, newPrimary], 'both publishers follow the new primary')
    for (const [name, inbox] of [['phone (node B)', deployment.phone], ['watcher (node A)', watcher.inbox]] as const) {
      // Told once the link has stayed up a moment, which may be after delivery resumed.
      await waitFor(() => inbox.messages.some((message) => message.event === 'resync'), `${name} told resync`, 5000).catch(() => {})
      const resync = inbox.messages.find((message) => message.event === 'resync')
      t.match(resync, { event: 'resync', channel: null, data: { reason: /^subscriber_(reconnected|replaced)$/ } }, `${name} told resync`)
    }
    t.equal(deployment.phoneSocket.readyState, WebSocket.OPEN, 'the phone was not disconnected')
    t.equal(watcher.socket.readyState, WebSocket.OPEN, 'the watcher was not disconnected')
    audit(t, deployment.phone, load.outcomes)

    // Both subscribers listen on the new primary: a global event published from node A reaches both nodes' sockets.
    const before = [deployment.phone.messages.length, watcher.inbox.messages.length]
    await a.app.realtime.publish('settings', 'after_failover', { ok: true })
    await waitFor(() => deployment.phone.messages.length > before[0] && watcher.inbox.messages.length > before[1], 'a global event on both nodes')
    t.match(deployment.phone.messages.at(-1), { event: 'after_failover' })
    t.match(watcher.inbox.messages.at(-1), { event: 'after_failover' })
    const direct = new Redis(newPrimary, '127.0.0.1')
    t.teardown(() => direct.disconnect())
    const subscribers = String(await direct.client('LIST')).split('\n').filter((line) => line.includes('name=fastify-realtime:subscriber'))
    t.equal(subscribers.length, 2, 'one subscriber connection per node on the new primary')
  })
}
