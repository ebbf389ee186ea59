// Fast version of `npm run stress` Redis chaos, history on and off: while node
// 0 publishes to every user, the deployment's own redis-server is frozen, then
// killed and restarted (without its data: the test's Redis keeps none).
// Through both: no open socket ends, every accepted publish reaches its client
// once or the client is told (resync / recovered: false), a publish refused
// unsent is never delivered, a handshake meanwhile gets 503 with Retry-After.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { handshake } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { ownRedis } from '../helpers/outage.js'
import { uniquePrefix } from '../helpers/app.js'
import { Fleet } from '../helpers/stress.js'
import type { OwnRedis } from '../helpers/redis-server.js'

const SOCKETS = 30
const CHANNEL = 'notification.events'
const UNSENT = 'FST_REALTIME_REDIS_UNAVAILABLE'

for (const history of [true, false]) {
  t.test(`Redis frozen, then killed and restarted empty, under load (history ${history ? 'on' : 'off'}): delivered once or told`, async (t) => {
    const redis = await ownRedis(t)
    const nodes = await startNodes(t, 2, {
      redis: redis.url,
      keyPrefix: uniquePrefix(),
      heartbeat: { intervalMs: 60_000 },
      cluster: { probeIntervalMs: 200, publishTimeoutMs: 300 },
      // A Redis restarted empty lost every token: with the recheck on, open sockets would get 4501 (README, Token state).
      tokens: { timeoutMs: 300, recheckIntervalMs: 0 },
      ...(history ? { history: { size: 256, ttlSeconds: 600 } } : {})
    })
    const fleet = new Fleet(nodes.map((node) => node.port))
    t.teardown(() => fleet.close())
    const users = Array.from({ length: SOCKETS }, (_, index) => `chaos-${index}`)
    for (const [index, user] of users.entries()) {
      fleet.add(user, index % 2, async () => await nodes[0].app.realtime.tokens.issue(user, { ttlSeconds: 600 }), [CHANNEL])
    }
    await fleet.connected('every client connected')
    await waitFor(() => nodes.flatMap((node) => node.app.realtime.connections()).filter((connection) => connection.subscriptions.includes(CHANNEL)).length === SOCKETS, 'every socket subscribed')
    const probeToken = await nodes[0].app.realtime.tokens.issue('probe', { ttlSeconds: 600 })

    const faults: Array<[string, (redis: OwnRedis) => Promise<void>, (redis: OwnRedis) => Promise<void>]> = [
      ['frozen', async (redis) => { redis.freeze() }, async (redis) => { redis.thaw() }],
      ['killed, restarted empty', async (redis) => { await redis.kill() }, async (redis) => { await redis.restart() }]
    ]
    let seq = 0
    for (const [name, start, end] of faults) {
      const resyncMarks = fleet.members.map((member) => member.resyncs.length)
      const accepted = new Map<string, number[]>()
      const refusedUnsent = new Set<string>()
      const outcomes = new Map<string, number>()
      const control = { flowing: true }
      const first = seq
      const flow = (async () => {
        const pending: Array<Promise<void>> = []
        while (control.flowing) {
          const mine = seq++
          const user = users[mine % SOCKETS]
          pending.push(nodes[0].app.realtime.publish(CHANNEL, 'chaos', { seq: mine }, { userId: user }).then(
            () => { accepted.set(user, [...accepted.get(user) ?? [], mine]); outcomes.set('accepted', (outcomes.get('accepted') ?? 0) + 1) },
            (error: { code: string }) => {
              if (error.code === UNSENT) refusedUnsent.add(`${user} ${mine}`)
              outcomes.set(error.code, (outcomes.get(error.code) ?? 0) + 1)
            }))
          await sleep(10)
        }
        await Promise.all(pending)
      })()
      await sleep(200)
      await start(redis)
      await sleep(100)
      const during = await Promise.all(nodes.map(async (node) => await handshake(`${node.wsBase}/api/v1/ws?token=${probeToken}`)))
      await sleep(400)
      await end(redis)
      await sleep(300)
      control.flowing = false
      await flow

      const told = (index: number): boolean => fleet.members[index].resyncs.slice(resyncMarks[index]).some((resync) => resync.channel === CHANNEL)
      const complete = (index: number): boolean => (accepted.get(fleet.members[index].user) ?? []).every((mine) => fleet.members[index].received.get(mine) === 1)
      await waitFor(() => fleet.members.every((member, index) => member.client.state.state === 'connected' && (complete(index) || told(index))), `${name}: every client complete or told`)
      t.ok((outcomes.get('accepted') ?? 0) > 0 && (outcomes.get(UNSENT) ?? 0) > 0, `${name}: some publishes accepted, some refused unsent (${JSON.stringify(Object.fromEntries(outcomes))})`)
      t.same(during.map((answer) => answer.kind === 'rejected' ? [answer.status, typeof answer.headers['retry-after']] : ['open']), [[503, 'string'], [503, 'string']], `${name}: a handshake meanwhile gets 503 with Retry-After`)
      const inPhase = (mine: number): boolean => mine >= first && mine < seq
      t.same(fleet.members.filter((_member, index) => !complete(index) && !told(index)).map((member) => member.user), [], `${name}: no accepted event missing at a client that was not told`)
      t.same(fleet.members.flatMap((member) => [...member.received].filter(([mine, times]) => inPhase(mine) && times > 1)), [], `${name}: no event twice`)
      t.same(fleet.members.flatMap((member) => [...member.received.keys()].filter((mine) => refusedUnsent.has(`${member.user} ${mine}`))), [], `${name}: no refused publish delivered`)
      // The nodes' own close counts (4001 is a slow-consumer cut, seen by the client as 1006) tell who ended a socket.
      const serverCloses = JSON.stringify(nodes.map((node) => node.app.realtime.stats().closes))
      t.same(fleet.members.filter((member) => member.drops > 0).map((member) => `${member.user} (${member.dropCodes.join(', ')})`), [], `${name}: no open socket ended (the nodes recorded closes ${serverCloses})`)
      if (name.startsWith('killed')) {
        // Redis lost everything: each client is told, by the node's resync (history off) or by recovered: false after the SDK's reconnect (history on).
        await waitFor(() => fleet.members.every((_member, index) => told(index)), `${name}: every client told`)
        const reasons = new Set(fleet.members.flatMap((member, index) => member.resyncs.slice(resyncMarks[index]).map((resync) => resync.reason)))
        t.same([...reasons], [history ? 'epoch_changed' : 'subscriber_reconnected'], `${name}: every client told why`)
        await waitFor(() => fleet.members.every((member) => member.client.state.state === 'connected'), 'every client connected')
      }
    }
    t.same(fleet.members.filter((member) => member.closed).length, 0, 'no client gave up')
  })
}
