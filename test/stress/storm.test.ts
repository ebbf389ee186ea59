// Fast version of `npm run stress` reconnect storm: every socket of 2 nodes
// dropped at once (the network cuts them) while the test's own Redis is frozen
// (at least 3 s, and until a reconnect has been refused), so the first
// reconnects are refused (503, token store unavailable); the SDK's backoff
// brings each back; every client resubscribed (one event each, exactly),
// refusals (at least one) only 503/429 with Retry-After, none gives up,
// nothing logged at error level.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { networkCutter } from '../helpers/sdk.js'
import { Fleet } from '../helpers/stress.js'
import { OwnRedis } from '../helpers/redis-server.js'

const SOCKETS = 200
const CHANNEL = 'notification.events'
// Redis frozen at least this long right after the cut: past two token lookups (1 s timeout each), the refused handshake and the GET that asks why.
const FREEZE_MS = 3000
// ...and until a refusal is seen: on a loaded machine the first reconnects can come after FREEZE_MS.
const REFUSAL_TIMEOUT_MS = 30_000

t.test('a reconnect storm: every socket back, resubscribed, refused only with 503/429 and Retry-After', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = await OwnRedis.start()
  const cutters = [networkCutter(), networkCutter()]
  const nodes: TestApp[] = []
  for (const [index, cutter] of cutters.entries()) {
    nodes.push(await startApp({ redis: redis.url, keyPrefix, limits: { maxConnectionsPerIp: 0 }, cluster: { nodeId: `node-${index}` }, heartbeat: { intervalMs: 60_000 } }, {}, cutter.beforeListen))
  }
  const fleet = new Fleet(nodes.map((node) => node.port))
  t.teardown(async () => {
    fleet.close()
    await Promise.all(nodes.map(async (node) => await node.app.close()))
    await redis.kill()
  })
  const subscribed = (): number => nodes.flatMap((node) => node.app.realtime.connections()).filter((connection) => connection.subscriptions.includes(CHANNEL)).length
  const users = Array.from({ length: SOCKETS }, (_, index) => `storm-${index}`)
  for (const [index, user] of users.entries()) {
    fleet.add(user, index % 2, async () => await nodes[0].app.realtime.tokens.issue(user, { ttlSeconds: 600 }), [CHANNEL])
  }
  await fleet.connected('every client connected')
  await waitFor(() => subscribed() === SOCKETS, 'every socket subscribed')
  t.same(nodes.map((node) => node.app.realtime.connections().length), [SOCKETS / 2, SOCKETS / 2])

  for (const cutter of cutters) cutter.cut()
  redis.freeze()
  try {
    await Promise.all([sleep(FREEZE_MS), waitFor(() => fleet.refusals.length > 0, 'a reconnect refused while Redis is frozen', REFUSAL_TIMEOUT_MS)])
  } finally {
    redis.thaw()
  }
  await fleet.connected('every client back', 2)
  await waitFor(() => subscribed() === SOCKETS, 'every socket resubscribed')
  t.same(nodes.map((node) => node.app.realtime.connections().length), [SOCKETS / 2, SOCKETS / 2], 'each client back on its node')
  t.same(fleet.members.filter((member) => member.closed).length, 0, 'no client gave up')

  await Promise.all(users.map(async (user, seq) => await nodes[seq % 2].app.realtime.publish(CHANNEL, 'storm', { seq }, { userId: user })))
  await waitFor(() => fleet.members.every((member) => member.received.size === 1), 'one event at every client')
  t.same(fleet.members.filter((member, seq) => member.received.get(seq) !== 1 || member.received.size !== 1).map((member) => member.user), [], 'each client got exactly its own event once')
  t.ok(fleet.refusals.length > 0, `reconnects refused while Redis was frozen (${fleet.refusals.length})`)
  t.same(fleet.refusals.filter((refusal) => refusal.status !== 503 && refusal.status !== 429), [], 'refusals only 503 or 429')
  t.same(fleet.refusals.filter((refusal) => refusal.retryAfter === null), [], 'every refusal with Retry-After')
  const errors = nodes.flatMap((node) => node.logs.map((line) => JSON.parse(line)).filter((entry) => entry.level >= 50))
  t.same(errors, [], 'nothing logged at error level')
  t.same(nodes.map((node) => node.app.realtime.stats().closes), [{ 1006: SOCKETS / 2 }, { 1006: SOCKETS / 2 }], 'the nodes saw each cut socket end once, and closed none')
})
