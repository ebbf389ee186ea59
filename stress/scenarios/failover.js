// Redis failover under load. Three parts, each on a fresh deployment of the
// run's own: a Sentinel-managed primary/replica pair whose primary is (1)
// SIGKILLed, (2) frozen (SIGSTOP, never thawed: the links to it stay open,
// the case where a subscriber stays wedged on the old primary, centrifugo
// #1189); (3) a Redis Cluster (3 masters, a replica each, sharded pub/sub)
// whose master serving the first user's slot is SIGKILLed and its replica
// promoted. The two gateway nodes borrow an ioredis client configured as
// README's Scaling out section says; node 0 publishes to every user at a steady
// rate from before the fault until `tailMs` after the failover. Asserted: both
// nodes follow the new primary (Cluster: know the promoted master), their
// subscribers listen there, delivery resumes (every publish of the tail and one
// event per user afterwards delivered), every accepted publish delivered
// exactly once or its client told (`resync`) after the last event it got
// before it, no refused-unsent publish delivered, publish order kept per
// client, no socket closed, every client connected at the end.
import { Cluster } from '../lib/cluster.js'
import { Fleet, until } from '../lib/fleet.js'
import { Checks } from '../lib/checks.js'
import { OwnRedisCluster, OwnSentinel } from '../lib/redis-failover.js'
import { sleep } from '../../bench/lib/rpc.js'

const CHANNEL = 'payment_order.events'
// Refused before anything was sent: such a publish must never be delivered.
const UNSENT = 'FST_REALTIME_REDIS_UNAVAILABLE'
// Sent, but Redis did not confirm it: delivered or not, the client must be complete or told.
const UNKNOWN = 'FST_REALTIME_OUTCOME_UNKNOWN'
// The publisher's flow goes out in chunks of this length, each started on the clock (not after the previous one settled), so the rate stays steady through the failover.
const CHUNK_MS = 1000

const PARTS = {
  'Sentinel, primary killed': { deployment: OwnSentinel, fault: 'SIGKILL' },
  'Sentinel, primary frozen': { deployment: OwnSentinel, fault: 'SIGSTOP' },
  'Cluster, master killed': { deployment: OwnRedisCluster, fault: 'SIGKILL' }
}

export async function failover ({ keyPrefix, onCleanup, sockets, rate, leadMs, tailMs }) {
  const checks = new Checks()
  const figures = {}
  for (const [part, { deployment: Deployment, fault }] of Object.entries(PARTS)) {
    const redis = await Deployment.start()
    onCleanup(() => redis.stop())
    try {
      Object.assign(figures, await runPart({ part, redis, fault, checks, keyPrefix: `${keyPrefix}${Object.keys(PARTS).indexOf(part)}:`, onCleanup, sockets, rate, leadMs, tailMs }))
    } finally {
      redis.stop()
    }
  }
  return { checks, figures }
}

async function runPart ({ part, redis, fault, checks, keyPrefix, onCleanup, sockets, rate, leadMs, tailMs }) {
  const sharded = redis instanceof OwnRedisCluster
  const cluster = await Cluster.start(2, { redisClient: redis.clientConfig, keyPrefix, heartbeatMs: 1000, cluster: { probeIntervalMs: 200, publishTimeoutMs: 500 } })
  const fleet = new Fleet(cluster)
  onCleanup(() => fleet.close())
  try {
    const users = Array.from({ length: sockets }, (_, index) => `failover-${index}`)
    const tokens = await cluster.nodes[0].child.request('tokens', { users })
    await fleet.addAll(users.map((user, index) => ({ user, token: tokens[index], home: index % 2, channels: [CHANNEL] })))
    await until(async () => (await cluster.all('connections')).flat().filter((connection) => connection.subscriptions.includes(CHANNEL)).length === sockets, `${part}: every socket subscribed`)

    // What the fault takes down: Sentinel's primary, or the Cluster master of the first user's slot (the users' topics are hash-tagged by user id).
    const slots = sharded ? await redis.slotsOf(users) : []
    const victim = sharded ? await redis.masterOfSlot(slots[0]) : await redis.primaryPort()
    const victimSlots = sharded ? await redis.slotsServedBy(victim) : undefined
    const before = await cluster.all('redisServer')

    // The flow: chunk k publishes seqs [k·rate·CHUNK_MS/1000, …) from its start on, until `tailMs` after the failover.
    const perChunk = Math.round(rate * CHUNK_MS / 1000)
    const chunks = []
    const flowStart = performance.now()
    // Shared with the publisher loop: when both nodes were seen on the new primary, the tail's first seq, whether to stop.
    const flow = { followedAt: undefined, tailFrom: undefined, stopped: false }
    const publisher = (async () => {
      for (let chunk = 0; ; chunk++) {
        const startsAt = flowStart + chunk * CHUNK_MS
        await sleep(Math.max(0, startsAt - performance.now()))
        if (flow.stopped || (flow.followedAt !== undefined && performance.now() >= flow.followedAt + tailMs)) return
        // The tail: chunks started at least a second after both nodes' clients followed (their subscribers take a moment more: what is lost before is announced by `resync`).
        if (flow.followedAt !== undefined && flow.tailFrom === undefined && performance.now() >= flow.followedAt + 1000) flow.tailFrom = chunk * perChunk
        chunks.push(cluster.nodes[0].child.request('flow', { channel: CHANNEL, users, rate, seconds: CHUNK_MS / 1000, from: chunk * perChunk }, 60_000))
      }
    })()
    await sleep(leadMs)
    const faultAt = performance.now()
    redis.signal(victim, fault)
    let promoted
    let failoverAt
    try {
      promoted = sharded ? await redis.waitForPromotion(slots[0], victim) : await redis.waitForFailoverFrom(victim)
      failoverAt = performance.now()
      // The nodes' clients follow: the Sentinel client reconnects to the new primary, the Cluster client learns the promoted master.
      const follows = ({ port, masters }) => sharded ? masters.includes(promoted) : port === promoted
      await until(async () => (await cluster.all('redisServer')).every(follows), `${part}: both nodes to follow the new primary`, 20_000)
      flow.followedAt = performance.now()
    } finally {
      flow.stopped = flow.followedAt === undefined
    }
    await publisher
    const flows = await Promise.all(chunks)
    const accepted = {}
    const refused = {}
    for (const answer of flows) {
      for (const [user, list] of Object.entries(answer.accepted)) (accepted[user] ??= []).push(...list)
      for (const [code, list] of Object.entries(answer.refused)) (refused[code] ??= []).push(...list)
    }
    const published = flows.reduce((sum, answer) => sum + answer.total, 0)
    const told = (member) => member.resyncs.some((resync) => resync.channel === CHANNEL)
    const complete = (member) => (accepted[member.user] ?? []).every(([seq]) => member.received.get(seq) === 1)
    await until(() => fleet.members.every((member) => member.client.state.state === 'connected' && (complete(member) || told(member))), `${part}: every client complete or told`, 30_000).catch(() => {})
    // What was published last has a moment to arrive.
    await sleep(500)

    // Delivery resumed on both nodes and every shard: one more event to each user, after the failover.
    const afterFrom = published
    const after = await cluster.nodes[0].child.request('flow', { channel: CHANNEL, users, rate: 2000, seconds: sockets / 2000, from: afterFrom }, 60_000)
    const afterSeq = (member) => after.accepted[member.user]?.[0]?.[0]
    await until(() => fleet.members.every((member) => member.received.has(afterSeq(member))), `${part}: the event after the failover at every client`, 15_000).catch(() => {})

    const tally = audit(fleet.members, accepted, refused, (seq) => seq < afterFrom, flow.tailFrom ?? Infinity)
    const refusedCodes = Object.fromEntries(Object.entries(refused).map(([code, list]) => [code, list.length]))
    const acceptedCount = Object.values(accepted).reduce((sum, list) => sum + list.length, 0)
    const drops = fleet.members.flatMap((member) => member.states).filter((state) => state.startsWith('dropped')).length
    const nowServing = await cluster.all('redisServer')
    const warnings = await cluster.all('warnings')
    const partFigures = {}
    if (sharded) {
      // Only the sockets of users whose slot moved depend on the promoted master.
      const moved = users.filter((_, index) => victimSlots.has(slots[index]))
      const movedSet = new Set(moved)
      const movedMembers = fleet.members.filter((member) => movedSet.has(member.user))
      checks.equal(`${part}: both nodes' Cluster clients know the promoted master, not the dead one`, nowServing.map(({ masters }) => masters.includes(promoted) && !masters.includes(victim)), [true, true])
      checks.equal(`${part}: sharded subscribers (SSUBSCRIBE) of the moved users' topics on the promoted master`, await redis.shardSubscribers(promoted, moved.map((user) => `${keyPrefix}u:{${user}}`)), moved.length)
      checks.equal(`${part}: clients of the moved slot told to resync`, movedMembers.filter(told).length, moved.length)
      partFigures.movedUsers = moved.length
    } else {
      checks.equal(`${part}: both nodes on the primary before the fault`, before.map(({ port }) => port), [victim, victim])
      checks.equal(`${part}: both nodes' clients on the new primary`, nowServing.map(({ port }) => port), [promoted, promoted])
      checks.equal(`${part}: subscriber connections on the new primary (one per node)`, (await redis.clientNames(promoted)).filter((name) => name === 'fastify-realtime:subscriber').length, 2)
      checks.equal(`${part}: clients told to resync`, fleet.members.filter(told).length, sockets)
    }
    checks.equal(`${part}: publishes refused with a code other than ${UNSENT} / ${UNKNOWN}`, Object.keys(refusedCodes).filter((code) => code !== UNSENT && code !== UNKNOWN), [])
    checks.atLeast(`${part}: tail publishes (from 1 s after both nodes followed on) accepted`, tally.tailAccepted, 1)
    checks.equal(`${part}: tail publishes refused`, tally.tailRefused, 0)
    checks.equal(`${part}: tail publishes accepted, not delivered once`, tally.tailMissing, 0)
    checks.equal(`${part}: accepted events missing at an untold client`, tally.missingUntold, 0)
    // Cluster: the known open defect (test/stress/failover-cluster.test.ts, its todo) shows here when it occurs.
    checks.equal(`${part}: accepted events lost without a resync after the client's last event before them`, tally.lostUnannounced, 0)
    checks.equal(`${part}: events out of publish order (per client)`, tally.outOfOrder, 0)
    checks.equal(`${part}: events delivered twice`, tally.duplicates, 0)
    checks.equal(`${part}: refused-unsent publishes delivered`, tally.unsentDelivered, 0)
    checks.equal(`${part}: events never published to that client`, tally.unexpected, 0)
    checks.equal(`${part}: the event after the failover, once at each client`, fleet.members.filter((member) => member.received.get(afterSeq(member)) === 1).length, sockets)
    checks.equal(`${part}: publishes after the failover refused`, after.refused, {})
    checks.equal(`${part}: open sockets that ended`, drops, 0)
    checks.equal(`${part}: clients connected at the end`, fleet.connected(), sockets)
    checks.equal(`${part}: clients that gave up (closed)`, fleet.members.filter((member) => member.closed !== null).length, 0)
    checks.equal(`${part}: node errors (uncaught, error logs)`, await cluster.errors(), [])
    if (tally.details.length > 0) console.error(`${part}: ${JSON.stringify(tally.details)}`)
    return {
      [part]: {
        sockets,
        failoverMs: Math.round(failoverAt - faultAt),
        followedMs: Math.round(flow.followedAt - faultAt),
        published,
        accepted: acceptedCount,
        refused: refusedCodes,
        lost: tally.lost,
        lostUnannounced: tally.lostUnannounced,
        outOfOrder: tally.outOfOrder,
        toldClients: fleet.members.filter(told).length,
        ...partFigures
      },
      [`${part}, details`]: {
        resyncs: fleet.members.reduce((sum, member) => sum + member.resyncs.length, 0),
        oldPrimary: victim,
        newPrimary: promoted,
        // Per node: how often the probe replaced the subscriber, and SUBSCRIBE batches retried.
        subscriberReplaced: warnings.map((counts) => counts['fastify-realtime: Redis subscriber stopped receiving; replacing it'] ?? 0),
        subscribeRetried: warnings.map((counts) => counts['fastify-realtime: SUBSCRIBE failed; retrying'] ?? 0)
      }
    }
  } finally {
    fleet.close()
    await cluster.stop()
  }
}

/**
 * Per client, what it got (its `timeline`, in arrival order) against what the
 * publisher was told. `inFlow(seq)`: a seq of the failover flow; `tailFrom`:
 * the first seq of the tail.
 */
function audit (members, accepted, refused, inFlow, tailFrom) {
  const unsent = new Set((refused[UNSENT] ?? []).map(([user, seq]) => `${user} ${seq}`))
  const refusedAny = new Set(Object.values(refused).flat().map(([user, seq]) => `${user} ${seq}`))
  const tally = { missingUntold: 0, lost: 0, lostUnannounced: 0, outOfOrder: 0, duplicates: 0, unsentDelivered: 0, unexpected: 0, tailAccepted: 0, tailMissing: 0, tailRefused: 0, details: [] }
  for (const [, seq] of Object.values(refused).flat()) if (seq >= tailFrom) tally.tailRefused++
  for (const member of members) {
    const mine = accepted[member.user] ?? []
    const acceptedSeqs = new Set(mine.map(([seq]) => seq))
    const told = member.resyncs.some((resync) => resync.channel === CHANNEL)
    const events = member.timeline.filter((entry) => entry !== 'resync' && inFlow(entry))
    let highest = -1
    for (const seq of events) {
      if (seq < highest) tally.outOfOrder++
      highest = Math.max(highest, seq)
    }
    for (const [seq, times] of member.received) {
      if (!inFlow(seq)) continue
      if (times > 1) tally.duplicates += times - 1
      if (unsent.has(`${member.user} ${seq}`)) tally.unsentDelivered++
      if (!acceptedSeqs.has(seq) && !refusedAny.has(`${member.user} ${seq}`)) tally.unexpected++
    }
    for (const [seq] of mine) {
      const times = member.received.get(seq) ?? 0
      if (seq >= tailFrom) {
        tally.tailAccepted++
        if (times !== 1) tally.tailMissing++
      }
      if (times === 1) continue
      if (!told) tally.missingUntold++
      if (times > 0) continue
      tally.lost++
      // Told in time: a resync after the last event the client got that was published before the lost one.
      const lastBefore = member.timeline.findLastIndex((entry) => entry !== 'resync' && entry < seq)
      if (!member.timeline.slice(lastBefore + 1).includes('resync')) {
        tally.lostUnannounced++
        if (tally.details.length < 5) tally.details.push({ user: member.user, seq, lostWithoutResync: true, around: member.timeline.slice(Math.max(0, lastBefore - 3), lastBefore + 4) })
      }
    }
  }
  return tally
}
