import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Cluster, type ClusterOptions, type Redis } from 'ioredis'
import type { RealtimeOptions } from '../../lib/index.js'
import { topicsFor } from '../../lib/node/wire.js'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { connect, closed } from '../helpers/client.js'
import { waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'
import { OwnRedisCluster } from '../helpers/redis-cluster.js'

// Three masters of the test's own: the shared Redis at 6379 is not a cluster.
const redisCluster = await OwnRedisCluster.start()
t.teardown(async () => await redisCluster.stop())

type Sharing = 'one Cluster client shared by both nodes' | 'one Cluster client per node'
const SHARINGS: Sharing[] = ['one Cluster client shared by both nodes', 'one Cluster client per node']

interface Deployment {
  keyPrefix: string
  nodes: TestApp[]
  /** A client of the test's own (not given to the nodes), for looking at the cluster's pub/sub state. */
  inspector: Cluster
  /** Terminates the client sockets, closes the apps, then quits the nodes' Cluster clients; safe to call twice. */
  closeNodes: () => Promise<void>
}

function newClusterClient (t: Test): Cluster {
  const client = new Cluster([redisCluster.startupNodes[0]])
  t.teardown(async () => { await client.quit() })
  return client
}

interface DeploymentOptions {
  sharing?: Sharing
  /** Options of the Cluster clients given to the nodes. */
  clientOptions?: ClusterOptions
  nodeOptions?: RealtimeOptions
}

/** Two nodes of one deployment on the Redis Cluster, with Cluster clients the test owns. */
async function startDeployment (t: Test, sockets: WebSocket[], options: DeploymentOptions = {}): Promise<Deployment> {
  const { sharing = 'one Cluster client shared by both nodes', clientOptions, nodeOptions } = options
  const keyPrefix = uniquePrefix()
  const inspector = newClusterClient(t)
  const newNodeClient = (): Cluster => new Cluster([redisCluster.startupNodes[0]], clientOptions)
  const shared = newNodeClient()
  const clients = sharing === 'one Cluster client shared by both nodes' ? [shared, shared] : [shared, newNodeClient()]
  const nodes: TestApp[] = []
  let closing: Promise<void> | undefined
  const closeNodes = async (): Promise<void> => {
    closing ??= (async () => {
      for (const socket of sockets) socket.terminate()
      await Promise.all(nodes.map(async (node) => await node.app.close()))
      // A client passed to the plugin stays open after app.close(): its owner quits it.
      await Promise.all([...new Set(clients)].map(async (client) => await client.quit()))
    })()
    await closing
  }
  t.teardown(closeNodes)
  for (const [index, client] of clients.entries()) {
    nodes.push(await startApp({ redis: client, keyPrefix, limits: { maxConnectionsPerIp: 0 }, ...nodeOptions, cluster: { nodeId: `node-${index}`, ...nodeOptions?.cluster } }))
  }
  await waitFor(() => inspector.status === 'ready', 'the inspecting Cluster client')
  return { keyPrefix, nodes, inspector, closeNodes }
}

/**
 * `promise`, or a failure naming `what` after `ms`: a lost event or close
 * fails its test rather than hanging the file until tap's timeout (whose kill
 * would skip every teardown).
 */
async function within<T> (promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const subscribe = async (socket: WebSocket, inbox: Inbox, channel: string): Promise<void> => {
  const before = inbox.messages.length
  socket.send(JSON.stringify({ event: 'subscribe', channel }))
  await within(inbox.until(before + 1), `the answer to subscribing to ${channel}`)
}

/** Opens a socket for `userId` on `node` (with a token issued on `issuer`) and subscribes it to `payment_order.events`. */
async function connectUser (node: TestApp, issuer: TestApp, userId: string, sockets: WebSocket[]): Promise<{ socket: WebSocket, inbox: Inbox }> {
  const token = await issuer.app.realtime.tokens.issue(userId, { ttlSeconds: 60 })
  const { socket } = await within(connect(`${node.wsBase}/api/v1/ws?token=${token}`), `the handshake of ${userId}`)
  sockets.push(socket)
  const inbox = new Inbox(socket)
  await subscribe(socket, inbox, 'payment_order.events')
  return { socket, inbox }
}

/**
 * The channels of two nodes (node-0, node-1) under `keyPrefix`, with users
 * user-a and user-b subscribed, each with how many of the nodes subscribe it:
 * the shared channels both, each node's and user's own one.
 */
function subscriberCounts (keyPrefix: string): Record<string, number> {
  const topics = topicsFor(keyPrefix)
  return {
    [topics.control]: 2,
    [topics.global('settings')]: 2,
    [topics.node('node-0')]: 1,
    [topics.node('node-1')]: 1,
    [topics.user('user-a')]: 1,
    [topics.user('user-b')]: 1
  }
}

/** A record as JSON with its keys in order, to compare in `waitFor`. */
function canonical (record: Record<string, unknown>): string {
  return JSON.stringify(Object.entries(record).sort(([left], [right]) => left.localeCompare(right)))
}

function nodeKey (redis: Redis): string {
  return `${redis.options.host ?? ''}:${redis.options.port ?? ''}`
}

/** Per master (`host:port`), the sorted channels under `keyPrefix` that `PUBSUB <subcommand>` lists there. */
async function channelsPerMaster (cluster: Cluster, subcommand: 'CHANNELS' | 'SHARDCHANNELS', keyPrefix: string): Promise<Record<string, string[]>> {
  const masters = cluster.nodes('master')
  const listed = await Promise.all(masters.map(async (master) => await master.call('PUBSUB', subcommand) as string[]))
  return Object.fromEntries(masters.map((master, index) => [
    nodeKey(master),
    listed[index].filter((channel) => channel.startsWith(keyPrefix)).sort()
  ]))
}

/** Per master, the sorted channels of `channels` whose hash slot that master serves: where sharded pub/sub must put them. */
async function placement (cluster: Cluster, channels: string[]): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = Object.fromEntries(cluster.nodes('master').map((master) => [nodeKey(master), []]))
  for (const channel of channels) {
    const slot = await cluster.call('CLUSTER', 'KEYSLOT', channel) as number
    result[cluster.slots[slot][0]].push(channel)
  }
  for (const list of Object.values(result)) list.sort()
  return result
}

/** `PUBSUB SHARDNUMSUB` of each channel, asked on the master that serves it. */
async function shardSubscribers (cluster: Cluster, channels: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const [key, served] of Object.entries(await placement(cluster, channels))) {
    const master = cluster.nodes('master').find((node) => nodeKey(node) === key) as Redis
    for (const channel of served) {
      const [, count] = await master.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
      counts[channel] = count
    }
  }
  return counts
}

t.test('the local Redis Cluster has three masters serving all 16384 slots', async (t) => {
  const cluster = newClusterClient(t)
  await waitFor(() => cluster.status === 'ready', 'the Cluster client')
  t.same(cluster.nodes('master').map(nodeKey).sort(), redisCluster.ports.map((port) => `127.0.0.1:${port}`).sort())
  const info = await cluster.call('CLUSTER', 'INFO') as string
  t.match(info, /cluster_state:ok/)
  t.match(info, /cluster_slots_assigned:16384/)
  t.match(info, /cluster_known_nodes:3/)
})

for (const sharing of SHARINGS) {
  t.test(`Redis Cluster (${sharing}): delivery across nodes over sharded pub/sub`, async (t) => {
    const sockets: WebSocket[] = []
    const { keyPrefix, nodes: [a, b], inspector, closeNodes } = await startDeployment(t, sockets, { sharing })

    // A token issued on one node opens a socket on the other.
    const tokenA = await b.app.realtime.tokens.issue('user-a', { ttlSeconds: 60 })
    const tokenB = await a.app.realtime.tokens.issue('user-b', { ttlSeconds: 60 })
    const userA = await within(connect(`${a.wsBase}/api/v1/ws?token=${tokenA}`), 'the handshake of user-a')
    sockets.push(userA.socket)
    const userB = await within(connect(`${b.wsBase}/api/v1/ws?token=${tokenB}`), 'the handshake of user-b')
    sockets.push(userB.socket)
    t.equal(userA.first.event, 'connected')
    t.equal((userA.first.data as { user_id: string }).user_id, 'user-a')
    t.equal(userB.first.event, 'connected')
    t.equal((userB.first.data as { user_id: string }).user_id, 'user-b')
    const inboxA = new Inbox(userA.socket)
    const inboxB = new Inbox(userB.socket)
    await subscribe(userA.socket, inboxA, 'payment_order.events')
    await subscribe(userB.socket, inboxB, 'payment_order.events')

    await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 2, 'presence of both users')
    t.same((await a.app.realtime.presence.connectedUsers()).sort(), ['user-a', 'user-b'])
    t.same((await b.app.realtime.presence.connectedUsers()).sort(), ['user-a', 'user-b'])

    // Every channel of the deployment is a shard channel on the master serving
    // its slot, and none is a classic channel anywhere.
    const counts = subscriberCounts(keyPrefix)
    const expected = Object.keys(counts)
    const wanted = await placement(inspector, expected)
    await waitFor(async () => canonical(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix)) === canonical(wanted), 'the shard channels of both nodes')
    t.same(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix), wanted)
    t.same(await channelsPerMaster(inspector, 'CHANNELS', keyPrefix), Object.fromEntries(Object.keys(wanted).map((key) => [key, []])))
    // One subscriber per node: the shared channels twice, each node's and user's own once.
    t.same(await shardSubscribers(inspector, expected), counts)

    // Channels on different shards travel over different connections, so
    // their relative order is not defined: each event is awaited before the next.
    await a.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-1', status: 'paid' }, { userId: 'user-b' })
    t.same((await within(inboxB.until(2), 'the event for user-b'))[1], { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-1', status: 'paid' } })
    await b.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-2', status: 'failed' }, { userId: 'user-a' })
    t.same((await within(inboxA.until(2), 'the event for user-a'))[1], { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-2', status: 'failed' } })
    await a.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '1.50' })
    const settings = { event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: '1.50' } }
    t.same((await within(inboxA.until(3), 'settings on node A'))[2], settings)
    t.same((await within(inboxB.until(3), 'settings on node B'))[2], settings)
    // Nothing more arrives (exactly once): a ping's pong is the next message.
    userA.socket.send('{"event":"ping"}')
    userB.socket.send('{"event":"ping"}')
    t.equal((await within(inboxA.until(4), 'the pong on node A'))[3].event, 'pong')
    t.equal((await within(inboxB.until(4), 'the pong on node B'))[3].event, 'pong')

    // Closing the apps leaves no shard channel of theirs subscribed.
    await closeNodes()
    const none = Object.fromEntries(Object.keys(wanted).map((key) => [key, []]))
    await waitFor(async () => canonical(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix)) === canonical(none), 'the shard channels to go')
    t.same(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix), none)
  })

  t.test(`Redis Cluster (${sharing}): a newer socket on the other node replaces the older with 4500`, async (t) => {
    const sockets: WebSocket[] = []
    const { keyPrefix, nodes: [a, b], inspector } = await startDeployment(t, sockets, { sharing })
    const token = await a.app.realtime.tokens.issue('roamer', { ttlSeconds: 60 })
    const first = await within(connect(`${a.wsBase}/api/v1/ws?token=${token}`), 'the first handshake')
    sockets.push(first.socket)
    // The first socket is older only once its claim of a generation is in
    // Redis; a second socket claiming before it would be the one replaced.
    await waitFor(async () => await inspector.get(`${keyPrefix}gen:roamer`) !== null, 'the first socket\'s generation')
    const firstClosed = closed(first.socket)
    const second = await within(connect(`${b.wsBase}/api/v1/ws?token=${token}`), 'the second handshake')
    sockets.push(second.socket)
    t.same(await within(firstClosed, 'the first socket to close'), { code: 4500, reason: 'Replaced by a newer connection' })
    t.equal(second.socket.readyState, WebSocket.OPEN)
    t.same(a.app.realtime.connectedUsers(), [])
    t.same(b.app.realtime.connectedUsers(), ['roamer'])
    await waitFor(async () => {
      const listed = await a.app.realtime.presence.connections()
      return listed.length === 1 && listed[0]?.node_id === 'node-1'
    }, 'the old entry to leave presence and the new one to be listed')
    const [entry] = await a.app.realtime.presence.connections()
    t.equal(entry.node_id, 'node-1')
    t.equal(entry.connection_id, (second.first.data as { connection_id: string }).connection_id)

    // Node A let go of the user's shard channel (SUNSUBSCRIBE); node B alone receives it.
    const userChannel = topicsFor(keyPrefix).user('roamer')
    await waitFor(async () => (await shardSubscribers(inspector, [userChannel]))[userChannel] === 1, 'node A to unsubscribe the user channel')
    const inbox = new Inbox(second.socket)
    await subscribe(second.socket, inbox, 'payment_order.events')
    await a.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-3', status: 'paid' }, { userId: 'roamer' })
    t.same((await within(inbox.until(2), 'the event for roamer'))[1], { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-3', status: 'paid' } })
  })
}

// Cluster-only behaviours that once failed: the client's own keyPrefix, an
// offline queue turned off, and a shard connection lost without a close.

t.test('Redis Cluster: a Cluster client with its own ioredis keyPrefix still delivers user events', async (t) => {
  const sockets: WebSocket[] = []
  const { nodes: [a, b] } = await startDeployment(t, sockets, { clientOptions: { keyPrefix: 'app:' } })
  const userA = await connectUser(a, a, 'user-a', sockets)
  const userB = await connectUser(b, a, 'user-b', sockets)
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 2, 'presence of both users')
  await a.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-4', status: 'paid' }, { userId: 'user-b' })
  await waitFor(() => userB.inbox.messages.length === 2, 'the user event', 3000)
  t.same(userB.inbox.messages[1], { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-4', status: 'paid' } })
  // Nor does it reach the other user subscribed to the same channel.
  userA.socket.send('{"event":"ping"}')
  t.equal((await within(userA.inbox.until(2), 'the pong'))[1].event, 'pong')
})

t.test('Redis Cluster: with a Cluster client that has enableOfflineQueue: false, each node subscribes its channels without a hitch', async (t) => {
  const sockets: WebSocket[] = []
  // Long enough that a node starved of CPU by tests running beside it is not mistaken for a dead subscriber.
  const probeIntervalMs = 1000
  const { keyPrefix, nodes, inspector } = await startDeployment(t, sockets, { clientOptions: { enableOfflineQueue: false }, nodeOptions: { cluster: { probeIntervalMs } } })
  const topics = topicsFor(keyPrefix)
  const expected = [topics.control, topics.global('settings'), topics.node('node-0'), topics.node('node-1')]
  const wanted = await placement(inspector, expected)
  await waitFor(async () => canonical(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix)) === canonical(wanted), 'the nodes\' shard channels')
  t.same(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix), wanted)
  // Several probes later, no node has had to replace its subscriber or warn (but about the client's own retry settings, at startup).
  await new Promise((resolve) => setTimeout(resolve, 4 * probeIntervalMs))
  const warnings = nodes.map((node) => node.logs.filter((line) => JSON.parse(line).level >= 40 && !line.includes('may send a publish again later')))
  t.same(warnings, [[], []])
})

t.test('Redis Cluster: after its shard subscriber links are killed, a node resubscribes, delivery resumes, and sockets get resync', async (t) => {
  const sockets: WebSocket[] = []
  const { keyPrefix, nodes: [a, b], inspector } = await startDeployment(t, sockets)
  const userA = await connectUser(a, a, 'user-a', sockets)
  const userB = await connectUser(b, a, 'user-b', sockets)
  const counts = subscriberCounts(keyPrefix)
  const expected = Object.keys(counts)
  const wanted = await placement(inspector, expected)
  const restored = async (): Promise<boolean> => canonical(await shardSubscribers(inspector, expected)) === canonical(counts)
  await waitFor(restored, 'the shard subscriptions of both nodes')

  // Only this file's cluster: every pub/sub connection on it belongs to these
  // two nodes, one per node on each shard serving a channel the node listens on.
  const ownChannels = [['ctl', 'c:{settings}', 'n:node-0', 'u:{user-a}'], ['ctl', 'c:{settings}', 'n:node-1', 'u:{user-b}']]
  const masters = inspector.nodes('master')
  const killed = await Promise.all(masters.map(async (master) => await master.call('CLIENT', 'KILL', 'TYPE', 'pubsub') as number))
  t.same(killed, masters.map((master) => ownChannels.filter((channels) => channels.some((name) => wanted[nodeKey(master)].includes(keyPrefix + name))).length))
  await waitFor(restored, 'the shard subscriptions to be restored')
  t.same(await channelsPerMaster(inspector, 'SHARDCHANNELS', keyPrefix), wanted)

  await b.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-5', status: 'paid' }, { userId: 'user-a' })
  const event = { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-5', status: 'paid' } }
  await waitFor(() => userA.inbox.messages.some((message) => message.event === event.event), 'the user event after the kill')
  t.same(userA.inbox.messages.filter((message) => message.event === event.event), [event])

  t.test('local sockets are told they may have missed events', async (t) => {
    const resync = { event: 'resync', channel: null, data: { reason: 'subscriber_reconnected' } }
    const resyncs = (inbox: Inbox): unknown[] => inbox.messages.filter((message) => message.event === 'resync')
    await waitFor(() => resyncs(userA.inbox).length > 0 && resyncs(userB.inbox).length > 0, 'resync on both nodes', 3000)
    t.same(resyncs(userA.inbox), [resync])
    t.same(resyncs(userB.inbox), [resync])
  })
})

t.test('Redis Cluster: an idempotent publish (history off) retried from the other node is delivered once, with a client keyPrefix too', async (t) => {
  const sockets: WebSocket[] = []
  const { keyPrefix, nodes: [a, b], inspector } = await startDeployment(t, sockets, { clientOptions: { keyPrefix: 'app:' } })
  const user = await connectUser(b, a, 'user-a', sockets)
  const paid = { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-6', status: 'paid' } }
  const publish = async (node: TestApp): Promise<unknown> => await node.app.realtime.publish('payment_order.events', paid.event, paid.data, { userId: 'user-a', idempotencyKey: 'po-6:paid' })
  t.strictSame(await publish(a), { id: null })
  t.strictSame(await publish(b), { id: null })
  t.strictSame(await publish(a), { id: null })
  await within(user.inbox.until(2), 'the event')
  // Nothing more arrives: a ping's pong is the next message.
  user.socket.send('{"event":"ping"}')
  t.strictSame((await within(user.inbox.until(3), 'the pong')).slice(1).map((message) => message.event), [paid.event, 'pong'])
  t.strictSame(user.inbox.messages[1], paid)
  // The record, under the client's own prefix too, in the slot of the user's topic.
  const record = `app:${keyPrefix}idem:u:{user-a}:payment_order.events|po-6:paid`
  t.equal(await inspector.get(record), '')
  t.equal(await inspector.cluster('KEYSLOT', record), await inspector.cluster('KEYSLOT', `app:${topicsFor(keyPrefix).user('user-a')}`))
})
