// Reconnect storm: thousands of SDK clients over 2 nodes lose their sockets at
// the same instant (every TCP connection destroyed) and come back with the
// SDK's own backoff (exponential, full jitter), while the run's Redis is frozen
// for the first 3 s (up to 10 s, until a refusal is recorded), so the first
// reconnects are refused (503, token store unavailable). Every one must be back and subscribed (proved by one event to
// each), at least one refused and every refusal 503/429 with Retry-After, no
// client giving up, no error in a node.
import { Cluster } from '../lib/cluster.js'
import { Fleet, until } from '../lib/fleet.js'
import { Checks } from '../lib/checks.js'
import { sleep } from '../../bench/lib/rpc.js'

const CHANNEL = 'notification.events'
// Redis frozen this long right after the cut: the first reconnects find the token store unavailable.
const FREEZE_MS = 3000
// On a busy machine the SDKs' GETs (what records a refusal) can all come after the thaw: the freeze then lasts until the first one, at most this long.
const FREEZE_MAX_MS = 10_000

export async function storm ({ redis, keyPrefix, onCleanup, sockets }) {
  const checks = new Checks()
  const cluster = await Cluster.start(2, { redis: redis.url, keyPrefix, heartbeatMs: 30_000 })
  const fleet = new Fleet(cluster)
  onCleanup(() => fleet.close())
  try {
    const users = Array.from({ length: sockets }, (_, index) => `storm-${index}`)
    const tokens = await cluster.nodes[0].child.request('tokens', { users })
    await fleet.addAll(users.map((user, index) => ({ user, token: tokens[index], home: index % 2, channels: [CHANNEL] })))
    await until(async () => (await subscribedOnServers(cluster)) === sockets, 'every socket subscribed on its node')
    checks.equal('sockets before the drop (per node)', await cluster.all('sockets'), [Math.ceil(sockets / 2), Math.floor(sockets / 2)])

    const dropped = await cluster.all('drop')
    const droppedAt = performance.now()
    redis.freeze()
    try {
      await sleep(FREEZE_MS)
      await until(() => fleet.refusals.length > 0, 'a reconnect refused', FREEZE_MAX_MS - FREEZE_MS).catch(() => {})
    } finally {
      redis.thaw()
    }
    const frozenMs = Math.round(performance.now() - droppedAt)
    // A wait that times out leaves its rows below to show what was counted.
    const back = await until(() => fleet.members.every((member) => member.connects >= 2 && member.client.state.state === 'connected'), 'every client back', 120_000).then(() => true, () => false)
    const backAfter = (performance.now() - droppedAt) / 1000
    await until(async () => (await subscribedOnServers(cluster)) === sockets, 'every socket resubscribed', 30_000).catch(() => {})

    // One event to each user, published on node 0: each client gets exactly its own, once.
    const flow = await cluster.nodes[0].child.request('flow', { channel: CHANNEL, users, rate: 2000, seconds: sockets / 2000 }, 120_000)
    await until(() => fleet.members.every((member) => member.received.size === 1), 'one event at every client', 30_000).catch(() => {})

    checks.equal('TCP connections destroyed at once (one per socket)', dropped.reduce((sum, answer) => sum + answer.count, 0), sockets)
    checks.equal('clients connected again', fleet.connected(), sockets)
    checks.equal('clients that gave up (closed)', fleet.members.filter((member) => member.closed !== null).length, 0)
    checks.equal('sockets subscribed to notification.events on the nodes', await subscribedOnServers(cluster), sockets)
    checks.equal('publishes accepted after the storm', Object.values(flow.accepted).reduce((sum, list) => sum + list.length, 0), sockets)
    checks.equal('publishes refused', flow.refused, {})
    checks.equal('clients with exactly their one event', fleet.members.filter((member) => member.received.size === 1 && [...member.received.values()][0] === 1).length, sockets)
    const statuses = {}
    for (const refusal of fleet.refusals) statuses[refusal.status] = (statuses[refusal.status] ?? 0) + 1
    checks.atLeast('reconnects refused while Redis was frozen', fleet.refusals.length, 1)
    checks.equal('refusals other than 503/429', fleet.refusals.filter((refusal) => refusal.status !== 503 && refusal.status !== 429).length, 0)
    checks.equal('503/429 without Retry-After', fleet.refusals.filter((refusal) => refusal.retryAfter === null).length, 0)
    checks.equal('node errors (uncaught, error logs)', await cluster.errors(), [])
    const stats = await cluster.all('stats')
    return {
      checks,
      figures: {
        sockets,
        backAfterSeconds: back ? Math.round(backAfter * 100) / 100 : null,
        refusals: statuses,
        refusedThenGateOpen: fleet.gateOpen,
        redisFrozenMs: frozenMs,
        reconnectsPerClient: Math.round(fleet.members.reduce((sum, member) => sum + member.connects - 1, 0) / sockets * 100) / 100,
        serverCloses: stats.map((snapshot) => snapshot.closes)
      }
    }
  } finally {
    fleet.close()
    await cluster.stop()
  }
}

async function subscribedOnServers (cluster) {
  const lists = await cluster.all('connections')
  return lists.flat().filter((connection) => connection.subscriptions.includes(CHANNEL)).length
}
