// Redis chaos under load, with history on and off: while node 0 publishes to
// every user, the deployment's Redis is (1) SIGKILLed for 5 s and restarted
// with its data (an fsynced append-only file), (2) SIGKILLed and restarted
// without its data, (3) frozen (SIGSTOP) for 5 s (run first, then 2, then 1). Through each: the nodes
// close no socket; every accepted publish reaches its client exactly once, or
// the client is told (`resync`, `recovered: false`); a publish refused unsent
// is never delivered; a handshake during the fault is answered 503 with
// Retry-After, fast.
import WebSocket from 'ws'
import { Cluster } from '../lib/cluster.js'
import { Fleet, until } from '../lib/fleet.js'
import { Checks } from '../lib/checks.js'
import { sleep } from '../../bench/lib/rpc.js'

const CHANNEL = 'notification.events'
// Refused before anything was sent: such a publish must never be delivered.
const UNSENT = 'FST_REALTIME_REDIS_UNAVAILABLE'
// Sent, but Redis did not confirm it: delivered or not, the client must be complete or told.
const UNKNOWN = 'FST_REALTIME_OUTCOME_UNKNOWN'
const FAULTS = {
  frozen: { start (redis) { redis.freeze() }, end (redis) { redis.thaw() } },
  'killed, restarted with its data': { async start (redis) { await redis.kill() }, async end (redis) { await redis.restart() } },
  // Last: it loses the tokens too, so what it breaks cannot hide in the other faults' counts.
  'killed, restarted empty': { async start (redis) { await redis.kill() }, async end (redis) { await redis.restart({ empty: true }) } }
}

export async function chaos ({ redis, keyPrefix, onCleanup, sockets, rate, faultMs, leadMs, tailMs, handshakeLimitMs }) {
  const checks = new Checks()
  const figures = {}
  for (const history of [true, false]) {
    const mode = history ? 'history on' : 'history off'
    // Each mode starts on an empty Redis.
    await redis.kill()
    await redis.restart({ empty: true })
    const cluster = await Cluster.start(2, {
      redis: redis.url,
      keyPrefix: `${keyPrefix}${history ? 'on' : 'off'}:`,
      heartbeatMs: 1000,
      cluster: { probeIntervalMs: 1000 },
      tokens: { recheckIntervalMs: 0 },
      ...(history ? { history: { size: 1000, ttlSeconds: 600 } } : {})
    })
    const fleet = new Fleet(cluster)
    onCleanup(() => fleet.close())
    try {
      const users = Array.from({ length: sockets }, (_, index) => `chaos-${index}`)
      // A token from whichever node is up; after a restart without data the old ones are gone (401), so the SDK asks again.
      const getToken = (user) => async () => (await cluster.nodes[0].child.request('tokens', { users: [user] }))[0]
      await fleet.addAll(users.map((user, index) => ({ user, getToken: getToken(user), home: index % 2, channels: [CHANNEL] })))
      await until(async () => (await cluster.all('connections')).flat().filter((connection) => connection.subscriptions.includes(CHANNEL)).length === sockets, 'every socket subscribed')
      const [probeToken] = await cluster.nodes[0].child.request('tokens', { users: ['chaos-probe'] })
      let from = 0
      for (const [name, fault] of Object.entries(FAULTS)) {
        const label = `${mode}, ${name}`
        const marks = fleet.members.map((member) => ({ resyncs: member.resyncs.length, states: member.states.length }))
        const closesBefore = serverCloses(await cluster.all('stats'))
        const seconds = (leadMs + faultMs + tailMs) / 1000
        const flow = cluster.nodes[0].child.request('flow', { channel: CHANNEL, users, rate, seconds, from }, (seconds + 60) * 1000)
        const first = from
        from += Math.round(rate * seconds)
        await sleep(leadMs)
        await fault.start(redis)
        const faultEnds = Date.now() + faultMs
        const handshakes = []
        await sleep(300)
        while (Date.now() < faultEnds - 1500) {
          handshakes.push(...await Promise.all(cluster.nodes.map((node, index) => handshake(`${cluster.url(index)}?token=${probeToken}`))))
          await sleep(500)
        }
        await sleep(Math.max(0, faultEnds - Date.now()))
        await fault.end(redis)
        const { accepted, refused, total } = await flow
        const told = (member, index) => member.resyncs.slice(marks[index].resyncs).some((resync) => resync.channel === CHANNEL)
        const inPhase = (seq) => seq >= first && seq < first + total
        const complete = (member) => (accepted[member.user] ?? []).every(([seq]) => member.received.get(seq) === 1)
        await fleet.quiet(`${label}: the clients settled`).catch(() => {})
        await until(() => fleet.members.every((member, index) => member.client.state.state === 'connected' && (complete(member) || told(member, index))), `${label}: every client complete or told`, 30_000).catch(() => {})

        const refusedUnsent = new Map()
        for (const [user, seq] of refused[UNSENT] ?? []) refusedUnsent.set(`${user} ${seq}`, true)
        let missingUntold = 0
        const missingDetails = []
        let duplicates = 0
        let unsentDelivered = 0
        let toldCount = 0
        for (const [index, member] of fleet.members.entries()) {
          const isTold = told(member, index)
          if (isTold) toldCount++
          for (const [seq, times] of member.received) {
            if (!inPhase(seq)) continue
            if (times > 1) duplicates += times - 1
            if (refusedUnsent.has(`${member.user} ${seq}`)) unsentDelivered++
          }
          if (!isTold) {
            for (const [seq, id] of accepted[member.user] ?? []) {
              if (member.received.get(seq) === 1) continue
              missingUntold++
              if (missingDetails.length < 5) missingDetails.push({ user: member.user, seq, id, states: member.states.slice(marks[index].states), recoveries: member.recoveries.slice(-2), lastIds: member.ids.slice(-4) })
            }
          }
        }
        const acceptedCount = Object.values(accepted).reduce((sum, list) => sum + list.length, 0)
        const refusedCodes = Object.fromEntries(Object.entries(refused).map(([code, list]) => [code, list.length]))
        const closes = diff(serverCloses(await cluster.all('stats')), closesBefore)
        const phaseStates = fleet.members.flatMap((member, index) => member.states.slice(marks[index].states))
        const drops = phaseStates.filter((state) => state.startsWith('dropped')).length
        const handshakeRefusals = {}
        for (const state of phaseStates) if (state.startsWith('refused')) handshakeRefusals[state] = (handshakeRefusals[state] ?? 0) + 1
        checks.equal(`${label}: publishes refused with a code other than ${UNSENT} / ${UNKNOWN}`, Object.keys(refusedCodes).filter((code) => code !== UNSENT && code !== UNKNOWN), [])
        checks.equal(`${label}: accepted events missing at an untold client`, missingUntold, 0)
        checks.equal(`${label}: events delivered twice`, duplicates, 0)
        checks.equal(`${label}: refused-unsent publishes delivered`, unsentDelivered, 0)
        checks.equal(`${label}: open sockets that ended (not by the SDK's own reconnect)`, drops, 0)
        checks.equal(`${label}: clients connected at the end`, fleet.connected(), sockets)
        checks.atLeast(`${label}: probe handshakes during the fault`, handshakes.length, 1)
        checks.equal(`${label}: handshakes during the fault not 503 with Retry-After`, handshakes.filter((answer) => answer.status !== 503 || answer.retryAfter === null).map((answer) => answer.status), [])
        checks.atMost(`${label}: slowest handshake answer during the fault (ms)`, Math.max(0, ...handshakes.map((answer) => answer.ms)), handshakeLimitMs)
        if (missingDetails.length > 0) console.error(`${label}: missing at untold clients: ${JSON.stringify(missingDetails)}`)
        figures[label] = { published: total, accepted: acceptedCount, refused: refusedCodes, toldClients: toldCount, sdkReconnectsRefused: handshakeRefusals, serverRecordedCloses: closes, probeHandshakes: handshakes.length }
      }
      checks.equal(`${mode}: clients that gave up (closed)`, fleet.members.filter((member) => member.closed !== null).length, 0)
      checks.equal(`${mode}: node errors (uncaught, error logs)`, await cluster.errors(), [])
    } finally {
      fleet.close()
      await cluster.stop()
    }
  }
  return { checks, figures }
}

/** A handshake's answer: the HTTP status (101 when it opened), Retry-After, and how long it took. */
function handshake (url) {
  const started = performance.now()
  return new Promise((resolve) => {
    const socket = new WebSocket(url)
    const done = (status, retryAfter = null) => {
      socket.terminate()
      resolve({ status, retryAfter, ms: Math.round(performance.now() - started) })
    }
    socket.once('unexpected-response', (_request, response) => { response.resume(); done(response.statusCode, response.headers['retry-after'] ?? null) })
    socket.once('upgrade', () => done(101))
    socket.once('error', () => done(0))
  })
}

/** Closes the nodes recorded, summed over nodes, without 1000 (the SDK's own reconnect after a `resync`) and 1005 (a close frame without a code). */
function serverCloses (snapshots) {
  const sum = {}
  for (const snapshot of snapshots) {
    for (const [code, count] of Object.entries(snapshot.closes)) if (code !== '1000' && code !== '1005') sum[code] = (sum[code] ?? 0) + count
  }
  return sum
}

function diff (after, before) {
  const result = {}
  for (const [code, count] of Object.entries(after)) if (count !== (before[code] ?? 0)) result[code] = count - (before[code] ?? 0)
  return result
}
