// Churn: connect / subscribe / receive / close, over and over, across 2 nodes.
// Each cycle connects to one node and gets its event published on the other.
// Afterwards every trace of the sockets must be gone: heap (within 10 %),
// active handles, Redis subscriptions, presence entries, fencing state.
import { Cluster } from '../lib/cluster.js'
import { RedisState } from '../lib/redis-state.js'
import { RawClient } from '../lib/raw-client.js'
import { Checks, countBy } from '../lib/checks.js'
import { sleep } from '../../bench/lib/rpc.js'

export async function churn ({ redis, keyPrefix, onCleanup, cycles, concurrency, warmup }) {
  const checks = new Checks()
  const cluster = await Cluster.start(2, { redis: redis.url, keyPrefix, heartbeatMs: 1000 })
  const state = await new RedisState(redis.url, keyPrefix).connect()
  onCleanup(() => state.close())
  try {
    const users = Array.from({ length: concurrency }, (_, slot) => `churn-${slot}`)
    const tokens = await cluster.nodes[0].child.request('tokens', { users })
    const tally = { cycles: 0, events: 0, wrongEvents: 0, extraMessages: 0, closeCodes: {}, failures: [] }
    let next = 0
    const run = async (count) => {
      const limit = next + count
      await Promise.all(users.map(async (user, slot) => {
        while (next < limit) {
          const seq = next++
          await cycle(cluster, seq, user, tokens[slot], tally).catch((error) => {
            if (tally.failures.length < 10) tally.failures.push(`cycle ${seq}: ${error.message}`)
          })
        }
      }))
    }
    // Warm-up first, so the baseline includes the JIT code and the pools a first connect creates.
    await run(warmup)
    await settle()
    const before = await snapshot(cluster, state, users)
    const started = performance.now()
    await run(cycles)
    const seconds = (performance.now() - started) / 1000
    await settle()
    let after = await snapshot(cluster, state, users)
    // Closing sockets and batched UNSUBSCRIBEs settle within a turn or two; give them up to 3 s.
    for (let attempt = 0; attempt < 15 && !sameHandles(before, after); attempt++) {
      await sleep(200)
      after = await snapshot(cluster, state, users)
    }

    checks.equal('cycles completed (all steps done)', tally.cycles, warmup + cycles)
    checks.equal('events received (one per cycle)', tally.events, warmup + cycles)
    checks.equal('wrong or unexpected events', tally.wrongEvents + tally.extraMessages, 0)
    checks.equal('close codes seen by clients', tally.closeCodes, { 1000: warmup + cycles })
    checks.equal('cycle failures', tally.failures, [])
    for (const [index, node] of cluster.nodes.entries()) {
      const growth = (after.heap[index] - before.heap[index]) / before.heap[index]
      checks.atMost(`${node.id} heap growth after GC (%)`, round(growth * 100), 10)
      checks.equal(`${node.id} active resources (by type) vs baseline`, after.resources[index], before.resources[index])
      checks.equal(`${node.id} open sockets`, after.sockets[index], 0)
    }
    checks.equal('PUBSUB NUMSUB of the users\' topics', after.userSubscribers, before.userSubscribers)
    checks.equal('deployment topics subscribed (PUBSUB CHANNELS)', after.topics, before.topics)
    checks.equal('presence entries', after.presence, before.presence)
    checks.equal('fencing keys ({p}gen:*)', after.fencing, before.fencing)
    checks.equal('node errors (uncaught, error logs)', await cluster.errors(), [])
    return {
      checks,
      figures: {
        cycles: warmup + cycles,
        seconds: round(seconds),
        cyclesPerSecond: round(cycles / seconds),
        heapBefore: before.heap.map(mib),
        heapAfter: after.heap.map(mib),
        userSubscribers: after.userSubscribers
      }
    }
  } finally {
    state.close()
    await cluster.stop()
  }
}

async function cycle (cluster, seq, user, token, tally) {
  const target = seq % 2
  const client = new RawClient(`${cluster.url(target)}?token=${token}`)
  try {
    await client.next((message) => message.event === 'connected', 'connected')
    client.send({ event: 'subscribe', channel: 'notification.events' })
    await client.next((message) => message.event === 'subscribed' && message.channel === 'notification.events', 'subscribed')
    const publisher = cluster.nodes[1 - target].child
    const answer = await publisher.request('publish', { channel: 'notification.events', data: { seq }, userId: user })
    if (answer.error !== undefined) throw new Error(`publish refused: ${answer.error}`)
    const event = await client.next((message) => message.channel === 'notification.events', 'the event')
    if (event.event === 'stress' && event.data.seq === seq) tally.events++
    else tally.wrongEvents++
    tally.cycles++
  } finally {
    const code = await client.close()
    tally.extraMessages += client.rest.filter((message) => message.channel === 'notification.events').length
    tally.closeCodes[code] = (tally.closeCodes[code] ?? 0) + 1
  }
}

async function snapshot (cluster, state, users) {
  const mem = await cluster.all('mem')
  return {
    heap: mem.map((usage) => usage.heapUsed),
    resources: (await cluster.all('resources')).map(countBy),
    sockets: await cluster.all('sockets'),
    userSubscribers: await state.userSubscribers(users),
    topics: await state.topics(),
    presence: await state.presence(cluster.nodes.map((node) => node.id)),
    fencing: await state.count('gen:*')
  }
}

function sameHandles (before, after) {
  return JSON.stringify(before.resources) === JSON.stringify(after.resources) && after.userSubscribers === before.userSubscribers
}

// Unsubscribes are batched per turn and presence is written in MULTIs: let them land.
const settle = () => sleep(300)
const round = (value) => Math.round(value * 100) / 100
const mib = (bytes) => round(bytes / 2 ** 20)
