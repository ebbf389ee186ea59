// Node death under load: one of two nodes is SIGKILLed while node 0 publishes
// to every user. The dead node's clients reconnect (their load balancer now
// sends them to node 0) with `recover`: with history on, each gets every event
// it missed, once, or is told `recovered: false` (a `resync`). Clients of
// node 0 lose nothing. Presence drops the dead node within two heartbeats.
import { Cluster } from '../lib/cluster.js'
import { Fleet, until } from '../lib/fleet.js'
import { RedisState } from '../lib/redis-state.js'
import { Checks } from '../lib/checks.js'
import { sleep } from '../../bench/lib/rpc.js'

const CHANNEL = 'notification.events'

export async function nodeDeath ({ redis, keyPrefix, onCleanup, sockets, rate, seconds, killAfterMs, heartbeatMs }) {
  const checks = new Checks()
  const cluster = await Cluster.start(2, { redis: redis.url, keyPrefix, heartbeatMs, history: { size: 256, ttlSeconds: 600 } })
  const fleet = new Fleet(cluster)
  onCleanup(() => fleet.close())
  const state = await new RedisState(redis.url, keyPrefix).connect()
  onCleanup(() => state.close())
  try {
    const users = Array.from({ length: sockets }, (_, index) => `death-${index}`)
    const tokens = await cluster.nodes[0].child.request('tokens', { users })
    await fleet.addAll(users.map((user, index) => ({ user, token: tokens[index], home: index % 2, channels: [CHANNEL] })))
    checks.equal('sockets per node before the kill', await cluster.all('sockets'), [Math.ceil(sockets / 2), Math.floor(sockets / 2)])
    await until(async () => (await state.liveNodes()).length === 2, 'both nodes in presence')

    const flow = cluster.nodes[0].child.request('flow', { channel: CHANNEL, users, rate, seconds }, (seconds + 60) * 1000)
    await sleep(killAfterMs)
    await cluster.kill(1)
    const killedAt = Date.now()
    await until(async () => !(await state.liveNodes()).includes('node-1'), 'presence to drop node-1', 4 * heartbeatMs + 5000)
    const presenceGoneMs = Date.now() - killedAt
    const { accepted, refused, total } = await flow

    const victims = fleet.members.filter((member) => member.home === 1)
    const survivors = fleet.members.filter((member) => member.home === 0)
    const told = (member) => member.resyncs.some((resync) => resync.channel === CHANNEL)
    const complete = (member) => (accepted[member.user] ?? []).every(([seq]) => member.received.has(seq))
    await until(() => victims.every((member) => member.connects >= 2 && member.client.state.state === 'connected'), 'the dead node\'s clients back', 60_000)
    await until(() => fleet.members.every((member) => complete(member) || told(member)), 'every client complete or told', 30_000).catch(() => {})

    const tally = (members) => {
      let missingUntold = 0
      let duplicates = 0
      let unexpected = 0
      let deliveries = 0
      for (const member of members) {
        const wanted = new Set((accepted[member.user] ?? []).map(([seq]) => seq))
        for (const [seq, times] of member.received) {
          deliveries += times
          if (times > 1) duplicates += times - 1
          if (!wanted.has(seq)) unexpected++
        }
        if (!told(member)) for (const seq of wanted) if (!member.received.has(seq)) missingUntold++
      }
      return { missingUntold, duplicates, unexpected, deliveries }
    }
    const survivorTally = tally(survivors)
    const victimTally = tally(victims)
    const recoveries = victims.flatMap((member) => member.recoveries.map((recovery) => recovery[CHANNEL])).filter(Boolean)
    checks.equal('publishes refused (node 0 survived)', refused, {})
    checks.equal('node 0 clients: events missing / duplicated / unexpected', [survivorTally.missingUntold, survivorTally.duplicates, survivorTally.unexpected], [0, 0, 0])
    checks.equal('node 0 clients told to resync', survivors.filter(told).length, 0)
    checks.equal('dead node\'s clients back on node 0', (await cluster.nodes[0].child.request('sockets')), sockets)
    checks.equal('dead node\'s clients answered on recovery (recovered or not)', victims.filter((member) => member.recoveries.some((recovery) => recovery[CHANNEL] !== undefined)).length, victims.length)
    checks.equal('dead node\'s clients: events missing without being told', victimTally.missingUntold, 0)
    checks.equal('dead node\'s clients: events twice / never published', [victimTally.duplicates, victimTally.unexpected], [0, 0])
    checks.equal('clients that gave up (closed)', fleet.members.filter((member) => member.closed !== null).length, 0)
    checks.atMost('presence dropped the dead node after (ms; 2 heartbeats)', presenceGoneMs, 2 * heartbeatMs)
    checks.equal('presence: live nodes', await state.liveNodes(), ['node-0'])
    checks.equal('node 0 errors (uncaught, error logs)', await cluster.errors(), [])
    return {
      checks,
      figures: {
        sockets,
        published: total,
        deliveries: survivorTally.deliveries + victimTally.deliveries,
        recovered: recoveries.filter((recovery) => recovery.recovered).length,
        replayed: recoveries.reduce((sum, recovery) => sum + (recovery.replayed ?? 0), 0),
        toldRecoveredFalse: victims.filter(told).length,
        presenceGoneMs
      }
    }
  } finally {
    state.close()
    fleet.close()
    await cluster.stop()
  }
}
