// Redis Cluster failover under load with sharded pub/sub: two gateway nodes,
// each with a borrowed ioredis Cluster client, on three masters with a
// replica each. The master serving the phone's user channel is killed while
// node A publishes to the phone on node B: its replica is promoted, the
// sharded subscriber of node B resubscribes on it (SSUBSCRIBE), delivery
// resumes, the phone is told resync, no socket is closed, no refused publish
// is delivered and nothing is delivered twice.
import t from 'tap'
import { Cluster } from 'ioredis'
import WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'
import { topicsFor } from '../../lib/node/wire.js'
import { waitFor } from '../helpers/cluster.js'
import { audit, deploy, publishLoop } from '../helpers/failover.js'
import { OwnRedisCluster } from '../helpers/redis-cluster.js'
import { CLUSTER_CLIENT_OPTIONS } from '../helpers/recommended-clients.js'

const USER = 'phone'

t.test('the master of the phone\'s channel killed under load: its replica takes over, sharded delivery resumes, the phone told resync', async (t) => {
  // A replica per master, promoted within a few seconds of its master's death.
  const redis = await OwnRedisCluster.start({ replicas: 1, nodeTimeoutMs: 1000 })
  t.teardown(async () => await redis.stop())
  // Set as README says (no resend, no delayed failover retry).
  const clients = [0, 1].map(() => new Cluster([redis.startupNodes[0]], { ...CLUSTER_CLIENT_OPTIONS })) as [Cluster, Cluster]
  const { nodes: [a], keyPrefix, phone, phoneSocket } = await deploy(t, clients)

  const load = publishLoop(a, USER)
  const outcomes = load.outcomes
  await waitFor(() => phone.messages.some((message) => message.event === 'TICK'), 'events to flow')

  // The user's channel, its slot set by the hash tag (the user id).
  const userChannel = topicsFor(keyPrefix).user(USER)
  const master = await redis.masterOf(userChannel)
  await redis.signal(master, 'SIGKILL')
  const promoted = await redis.waitForPromotion(userChannel, master)

  const afterPromotion = load.next()
  await waitFor(() => phone.messages.some((message) => message.event === 'TICK' && message.data.seq >= afterPromotion), 'delivery to resume on the promoted replica', 15_000)
  await load.stop()
  // The resync comes once the shard's subscription is back.
  await waitFor(() => phone.messages.some((message) => message.event === 'resync'), 'the phone told resync', 5000).catch(() => {})
  await sleep(600)

  // What the phone saw, in order: seq (with ? for a publish of unknown outcome), r for resync.
  t.comment(phone.messages.map((message) => message.event === 'TICK' ? `${String(message.data.seq)}${outcomes.get(message.data.seq) === 'ok' ? '' : '?'}` : message.event[0]).join(' ').replace(/( r)+/g, (run) => ` r×${run.length / 2}`))
  audit(t, phone, outcomes)
  const resyncs = phone.messages.filter((message) => message.event === 'resync')
  t.match(resyncs[0], { event: 'resync', channel: null, data: { reason: /^subscriber_(reconnected|replaced)$/ } }, 'the phone was told resync')
  // The sharded subscriber reports a failing shard lost and back many times, each a resync (each return
  // may follow lost events, so none is held back); the client SDK coalesces them.
  t.comment(`resyncs: ${resyncs.length}`)
  t.equal(phoneSocket.readyState, WebSocket.OPEN, 'the phone was not disconnected')

  // The promoted replica holds node B's sharded subscription to the channel.
  const promotedClient = clients[0].nodes('master').find((node) => node.options.port === promoted)
  t.ok(promotedClient !== undefined, 'the Cluster client knows the promoted master')
  const [, subscribers] = await promotedClient?.call('PUBSUB', 'SHARDNUMSUB', userChannel) as [string, number]
  t.equal(subscribers, 1, 'one SSUBSCRIBE on the promoted master: node B\'s')
})
