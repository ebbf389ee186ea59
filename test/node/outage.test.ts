import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { topicsFor } from '../../lib/node/wire.js'
import { uniquePrefix, type TestApp } from '../helpers/app.js'
import { closed, connect, handshake, type HandshakeResult } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'
import { directClient, eventually, ownRedis, within } from '../helpers/outage.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const WS_PATH = '/api/v1/ws'
const PAYMENTS = 'payment_order.events'

const resync = (reason: string): Record<string, unknown> => ({ event: 'resync', channel: null, data: { reason } })
const isResync = (message: { event?: unknown }): boolean => message.event === 'resync'

/** A client of the test's own Redis, straight to the server, to look at its pub/sub state. */
function inspector (t: Test, url: string) {
  const redis = directClient(t, url)
  return {
    /** Subscriber counts of `channels`, in order. */
    async numsub (channels: string[]): Promise<number[]> {
      const reply = await redis.pubsub('NUMSUB', ...channels) as Array<string | number>
      return channels.map((_channel, index) => Number(reply[2 * index + 1]))
    },
    /** Every pub/sub channel under `keyPrefix` with at least one subscriber, sorted. */
    async channels (keyPrefix: string): Promise<string[]> {
      return (await redis.pubsub('CHANNELS', `${keyPrefix}*`) as string[]).sort()
    },
    /** The names of the connections Redis has now (unnamed ones as ''). */
    async clientNames (): Promise<string[]> {
      const list = await redis.client('LIST') as string
      return list.split('\n').filter(Boolean).map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '')
    }
  }
}

interface User {
  id: string
  socket: WebSocket
  inbox: Inbox
  /** Close codes the client saw; stays empty while the socket is open. */
  closes: number[]
}

/** Connects `userId` to `node` with a fresh token and subscribes it to `channels`. */
async function joinUser (t: Test, node: TestApp, userId: string, channels: string[] = []): Promise<User> {
  const token = await node.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const { socket, first } = await connect(`${node.wsBase}${WS_PATH}?token=${token}`)
  t.teardown(() => socket.terminate())
  t.equal(first.event, 'connected')
  const user: User = { id: userId, socket, inbox: new Inbox(socket), closes: [] }
  socket.on('close', (code) => user.closes.push(code))
  for (const channel of channels) {
    const before = user.inbox.messages.length
    socket.send(JSON.stringify({ event: 'subscribe', channel }))
    await within(user.inbox.until(before + 1), 5000, `${userId} subscribed to ${channel}`)
  }
  return user
}

const subscribed = (...channels: string[]) => ({ event: 'subscribed', channel: channels[channels.length - 1], data: { subscriptions: ['settings', ...channels] } })
const payment = (orderId: string) => ({ event: 'PAYMENT_ORDER_UPDATED', channel: PAYMENTS, data: { order_id: orderId, status: 'paid' } })
const settingsEvent = (rate: string) => ({ event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: rate } })

/** A pong as `pingPong` leaves it in the inbox: its timestamp varies, its type does not. */
const PONG = { event: 'pong', channel: null, data: { timestamp: 'number' } }

/**
 * After everything expected arrived: a ping's pong is the next message, so
 * nothing extra was queued in between.
 */
async function pingPong (users: User[]): Promise<void> {
  await Promise.all(users.map(async (user) => {
    const before = user.inbox.messages.length
    user.socket.send('{"event":"ping"}')
    await within(user.inbox.until(before + 1), 5000, `${user.id}'s pong`)
    const pong = user.inbox.messages[before]
    user.inbox.messages[before] = { event: pong.event, channel: pong.channel, data: { timestamp: typeof pong.data?.timestamp } }
  }))
}

function assertRejectedUnavailable (t: Test, result: HandshakeResult, what: string): void {
  if (result.kind !== 'rejected') {
    result.socket.terminate()
    t.fail(`${what}: the handshake opened a socket`)
    return
  }
  t.equal(result.status, 503, `${what}: status`)
  t.equal(result.headers['retry-after'], '1', `${what}: Retry-After`)
  t.match(result.body, { status_code: 503, message: 'Token store unavailable', trace_id: String, data: null }, `${what}: body`)
}

/**
 * Two nodes on the Redis at `url`, quick to notice an outage, and an inspector
 * of the Redis server at `inspectUrl` (the same unless `url` is a proxy).
 */
async function twoNodes (t: Test, url: string, inspectUrl = url) {
  const keyPrefix = uniquePrefix()
  // No token recheck: this Redis keeps nothing across a restart, so every token would be gone (revoked) after it.
  const [a, b] = await startNodes(t, 2, { redis: url, keyPrefix, heartbeat: { intervalMs: 200 }, cluster: { probeIntervalMs: 100 }, tokens: { recheckIntervalMs: 0 } })
  const topics = topicsFor(keyPrefix)
  /** What the nodes listen on whatever their sockets: settings, control, each node's own. */
  const nodeChannels = [topics.global('settings'), topics.control, topics.node(a.app.realtime.nodeId), topics.node(b.app.realtime.nodeId)]
  return {
    a,
    b,
    keyPrefix,
    topics,
    nodeChannels,
    redis: inspector(t, inspectUrl),
    /** The channels of `userIds` then the nodes' own, and their subscriber counts while each user has one socket. */
    subscriptions: (userIds: string[]) => ({ wanted: [...userIds.map(topics.user), ...nodeChannels], baseline: [...userIds.map(() => 1), 2, 2, 1, 1] })
  }
}

t.test('Redis killed and restarted: sockets stay open, handshakes 503, publish rejects; then every subscription is back, one resync per socket, delivery resumes', async (t) => {
  const own = await ownRedis(t)
  const { a, b, keyPrefix, topics, nodeChannels, redis, subscriptions } = await twoNodes(t, own.url)

  const a1 = await joinUser(t, a, 'a1', [PAYMENTS])
  const a2 = await joinUser(t, a, 'a2')
  const b1 = await joinUser(t, b, 'b1', [PAYMENTS])
  const b2 = await joinUser(t, b, 'b2')
  const users = [a1, a2, b1, b2]
  const { wanted, baseline } = subscriptions(users.map((user) => user.id))
  await waitFor(async () => String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed before the outage')
  const pendingToken = await a.app.realtime.tokens.issue('late', { ttlSeconds: 600 })

  await own.kill()
  // Give the nodes time to notice and to do something wrong (heartbeats, probes, maintenance all tick meanwhile).
  await sleep(1000)
  for (const user of users) t.equal(user.socket.readyState, WebSocket.OPEN, `${user.id} still open during the outage`)
  for (const node of [a, b]) {
    assertRejectedUnavailable(t, await within(handshake(`${node.wsBase}${WS_PATH}?token=${pendingToken}`), 3000, 'handshake during the outage'), `handshake on ${node.app.realtime.nodeId}`)
  }
  await t.rejects(within(a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'lost', status: 'paid' }, { userId: 'b1' }), 3000, 'publish during the outage'),
    { code: 'FST_REALTIME_REDIS_UNAVAILABLE' }, 'a user publish says Redis is unavailable')
  await t.rejects(within(b.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: 'lost' }), 3000, 'settings publish during the outage'),
    { code: 'FST_REALTIME_REDIS_UNAVAILABLE' }, 'a global publish says Redis is unavailable')

  await own.restart()
  await waitFor(() => users.every((user) => user.inbox.messages.some(isResync)), 'a resync on every socket', 15_000)
  // Every subscription is back, on the subscriber the nodes already had (no restart of either app).
  await waitFor(async () => String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed again', 10_000)
  // The main connections are back too (publishes fail fast until then, and fail before being sent).
  await eventually(async () => await a.app.realtime.tokens.issue('probe-a', { ttlSeconds: 60 }), 'node A writing to Redis again')
  await eventually(async () => await b.app.realtime.tokens.issue('probe-b', { ttlSeconds: 60 }), 'node B writing to Redis again')

  await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-1', status: 'paid' }, { userId: 'b1' })
  await b.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-2', status: 'paid' }, { userId: 'a1' })
  await a.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '1.50' })
  await within(Promise.all([b1.inbox.until(4), a1.inbox.until(4), a2.inbox.until(2), b2.inbox.until(2)]), 5000, 'delivery after the restart')
  await pingPong(users)

  const reconnected = resync('subscriber_reconnected')
  t.strictSame(a1.inbox.messages, [subscribed(PAYMENTS), reconnected, payment('po-2'), settingsEvent('1.50'), PONG])
  t.strictSame(b1.inbox.messages, [subscribed(PAYMENTS), reconnected, payment('po-1'), settingsEvent('1.50'), PONG])
  t.strictSame(a2.inbox.messages, [reconnected, settingsEvent('1.50'), PONG])
  t.strictSame(b2.inbox.messages, [reconnected, settingsEvent('1.50'), PONG])
  for (const user of users) t.strictSame(user.closes, [], `${user.id} was never closed`)

  // Token keys did not survive the restart (no persistence): a new handshake needs a new token.
  const fresh = await joinUser(t, b, 'fresh')
  t.equal(fresh.socket.readyState, WebSocket.OPEN)

  // Nothing leaks: once the sockets are gone, so are their user channels.
  for (const user of [...users, fresh]) user.socket.terminate()
  await waitFor(async () => (await redis.channels(keyPrefix)).join() === [...nodeChannels].sort().join(), 'only the nodes\' own channels left')
  t.strictSame(await redis.numsub([topics.global('settings'), topics.control]), [2, 2])
})

t.test('Redis frozen (SIGSTOP) then thawed: sockets stay open, handshakes 503 at the token deadline, nothing is lost silently, delivery works after the thaw', async (t) => {
  const own = await ownRedis(t)
  const { a, b, redis, subscriptions } = await twoNodes(t, own.url)

  const a1 = await joinUser(t, a, 'a1', [PAYMENTS])
  const b1 = await joinUser(t, b, 'b1', [PAYMENTS])
  const users = [a1, b1]
  const { wanted, baseline } = subscriptions(users.map((user) => user.id))
  await waitFor(async () => String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed before the freeze')
  const pendingToken = await a.app.realtime.tokens.issue('late', { ttlSeconds: 600 })

  own.freeze()
  // Both at once: each waits out the 1 s token deadline, and the freeze stays
  // shorter than the 2 s command timeout of the plugin's Redis clients.
  const [onA, onB] = await within(Promise.all([
    handshake(`${a.wsBase}${WS_PATH}?token=${pendingToken}`),
    handshake(`${b.wsBase}${WS_PATH}?token=${pendingToken}`)
  ]), 3000, 'handshakes during the freeze')
  assertRejectedUnavailable(t, onA, 'handshake on node A')
  assertRejectedUnavailable(t, onB, 'handshake on node B')
  // Redis reads this one only after the thaw (or the client gives up on it).
  const during = a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-frozen', status: 'paid' }, { userId: 'b1' })
    .then(() => 'published', (error: { code?: string }) => error.code)
  for (const user of users) t.equal(user.socket.readyState, WebSocket.OPEN, `${user.id} still open during the freeze`)
  const beforeThaw = users.map((user) => user.inbox.messages.length)
  own.thaw()

  const outcome = await within(during, 5000, 'the publish made during the freeze to settle')
  t.ok(['published', 'FST_REALTIME_REDIS_UNAVAILABLE', 'FST_REALTIME_OUTCOME_UNKNOWN'].includes(String(outcome)), `a publish during the freeze is sent, refused unsent, or of unknown outcome (${String(outcome)})`)
  // Only the nodes' current subscriber connections are left, and they hold every channel again.
  await waitFor(async () => (await redis.clientNames()).filter((name) => name === 'fastify-realtime:subscriber').length === 2 &&
    String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed after the thaw', 10_000)

  await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-1', status: 'paid' }, { userId: 'b1' })
  await b.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-2', status: 'paid' }, { userId: 'a1' })
  await a.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '1.50' })
  await waitFor(() => users.every((user) => user.inbox.messages.some((message) => message.channel === 'settings')), 'the settings event on every socket', 5000)
  await pingPong(users)

  // Which resyncs a freeze produces is not pinned down here. Observed with
  // probeIntervalMs 100 and a ~1.1 s freeze (shorter than the 2 s command
  // timeout, so ioredis itself notices nothing): the probe's PUBLISH waits for
  // Redis, which the probe does not blame on the subscriber, so nothing is
  // replaced; after the thaw Redis handles the queued PUBLISH and the event
  // published during the freeze is delivered, with no resync. A longer freeze
  // (past the command timeout) can end differently, so the test asserts the
  // contract: every event at most once and in order, and an accepted event
  // that is lost is followed by a resync once Redis is back.
  const frozenDelivered = b1.inbox.messages.some((message) => message.data?.order_id === 'po-frozen')
  const withoutResync = (user: User): unknown[] => user.inbox.messages.filter((message) => !isResync(message))
  t.strictSame(withoutResync(a1), [subscribed(PAYMENTS), payment('po-2'), settingsEvent('1.50'), PONG])
  t.strictSame(withoutResync(b1), [subscribed(PAYMENTS), ...(frozenDelivered ? [payment('po-frozen')] : []), payment('po-1'), settingsEvent('1.50'), PONG])
  for (const user of users) {
    for (const message of user.inbox.messages.filter(isResync)) {
      t.ok([JSON.stringify(resync('subscriber_replaced')), JSON.stringify(resync('subscriber_reconnected'))].includes(JSON.stringify(message)), `${user.id}: a well-formed resync (${JSON.stringify(message)})`)
    }
    t.strictSame(user.closes, [], `${user.id} was never closed`)
  }
  if (outcome === 'FST_REALTIME_REDIS_UNAVAILABLE') t.notOk(frozenDelivered, 'a publish refused as not sent is never delivered')
  // An event accepted during the freeze and then not delivered must be
  // followed by a resync once Redis is back: nothing is lost silently.
  if (outcome === 'published' && !frozenDelivered) {
    t.ok(b1.inbox.messages.slice(beforeThaw[1]).some(isResync), 'the event published during the freeze was lost: b1 was told to resync after the thaw')
  }
  t.comment(`observed: publish during the freeze ${String(outcome)}, ${frozenDelivered ? 'delivered' : 'not delivered'}; resyncs a1 ${JSON.stringify(a1.inbox.messages.filter(isResync).map((message) => message.data.reason))} (before thaw ${a1.inbox.messages.slice(0, beforeThaw[0]).filter(isResync).length}), b1 ${JSON.stringify(b1.inbox.messages.filter(isResync).map((message) => message.data.reason))} (before thaw ${b1.inbox.messages.slice(0, beforeThaw[1]).filter(isResync).length})`)
})

t.test('no leak: user channels drop to zero subscribers once their sockets close; after close() no channel and no plugin connection is left', async (t) => {
  const own = await ownRedis(t)
  const { a, b, keyPrefix, topics, nodeChannels, redis } = await twoNodes(t, own.url)

  const a1 = await joinUser(t, a, 'a1', [PAYMENTS])
  const a2 = await joinUser(t, a, 'a2')
  const b1 = await joinUser(t, b, 'b1', [PAYMENTS, 'kyc.events'])
  // A user who moves from node A to node B: A must leave the user's channel.
  const roamerOnA = await joinUser(t, a, 'roamer')
  const roamerReplaced = closed(roamerOnA.socket)
  const roamer = await joinUser(t, b, 'roamer')
  t.strictSame(await within(roamerReplaced, 5000, 'the roamer\'s old socket to close'), { code: 4500, reason: 'Replaced by a newer connection' })

  const userChannels = ['a1', 'a2', 'b1', 'roamer'].map(topics.user)
  await waitFor(async () => String(await redis.numsub(userChannels)) === '1,1,1,1', 'one subscriber per user channel')
  t.strictSame(await redis.channels(keyPrefix), [...nodeChannels, ...userChannels].sort(), 'with sockets open')
  t.strictSame(await redis.numsub(nodeChannels), [2, 2, 1, 1])

  for (const user of [a1, a2, b1, roamer]) user.socket.terminate()
  await waitFor(async () => (await redis.channels(keyPrefix)).join() === [...nodeChannels].sort().join(), 'the user channels to go')
  t.strictSame(await redis.numsub(userChannels), [0, 0, 0, 0], 'user channels back to zero subscribers')
  t.strictSame(await redis.numsub(nodeChannels), [2, 2, 1, 1], 'the nodes\' own channels stay')

  await a.app.close()
  await b.app.close()
  const pluginConnections = async (): Promise<string[]> => (await redis.clientNames()).filter((name) => name.startsWith('fastify-realtime'))
  await waitFor(async () => (await redis.channels(keyPrefix)).length === 0 && (await pluginConnections()).length === 0, 'every channel and plugin connection to go', 5000)
  t.strictSame(await redis.channels(keyPrefix), [])
  t.strictSame(await pluginConnections(), [])
})

t.test('a silently dead subscriber link is found by the probe and replaced: subscriptions restored, one resync per socket, delivery resumes', async (t) => {
  const own = await ownRedis(t)
  const proxy = await TcpProxy.start(own.port)
  t.teardown(async () => await proxy.close())
  // The inspector goes straight to the server: what Redis itself sees, not what the proxy forwards.
  const { a, b, redis, subscriptions } = await twoNodes(t, proxy.url, own.url)

  const a1 = await joinUser(t, a, 'a1', [PAYMENTS])
  const b1 = await joinUser(t, b, 'b1', [PAYMENTS])
  const users = [a1, b1]
  const { wanted, baseline } = subscriptions(users.map((user) => user.id))
  await waitFor(async () => String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed through the proxy')
  await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-0', status: 'paid' }, { userId: 'b1' })
  await within(b1.inbox.until(2), 5000, 'delivery through the proxy')

  t.equal(proxy.blackholeSubscribers(), 2, 'one subscriber connection per node, cut silently')
  await waitFor(() => users.every((user) => user.inbox.messages.some(isResync)), 'a resync on every socket', 10_000)
  // The dead links were dropped by their nodes; the new subscribers came through the proxy, healthy.
  await waitFor(() => {
    const links = proxy.links()
    return !links.some((link) => link.blackholed) && links.filter((link) => link.subscriber).length === 2
  }, 'two healthy subscriber connections through the proxy', 10_000)
  await waitFor(async () => (await redis.clientNames()).filter((name) => name === 'fastify-realtime:subscriber').length === 2 &&
    String(await redis.numsub(wanted)) === String(baseline), 'every channel subscribed on the new connections', 10_000)

  await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-1', status: 'paid' }, { userId: 'b1' })
  await b.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po-2', status: 'paid' }, { userId: 'a1' })
  await a.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '1.50' })
  await waitFor(() => users.every((user) => user.inbox.messages.some((message) => message.channel === 'settings')), 'the settings event on every socket', 5000)
  // Five probe intervals for a needless second replacement (another resync) to show itself.
  await sleep(500)
  await pingPong(users)

  const replaced = resync('subscriber_replaced')
  const expected = {
    a1: [subscribed(PAYMENTS), replaced, payment('po-2'), settingsEvent('1.50'), PONG],
    b1: [subscribed(PAYMENTS), payment('po-0'), replaced, payment('po-1'), settingsEvent('1.50'), PONG]
  }
  for (const user of users) {
    const messages = user.inbox.messages
    const wanted = expected[user.id as keyof typeof expected]
    t.strictSame(messages.filter((message) => !isResync(message)), wanted.filter((message) => !isResync(message)), `${user.id}: every event exactly once, in order`)
    t.strictSame(messages.find(isResync), replaced, `${user.id}: told that the subscriber was replaced`)
    t.ok(messages.findIndex(isResync) < messages.findIndex((message) => message.event === 'PAYMENT_ORDER_UPDATED' && message.data.order_id !== 'po-0'), `${user.id}: the resync came before the events delivered by the new subscriber`)
    t.strictSame(messages, wanted, `${user.id}: exactly one resync`)
    t.strictSame(user.closes, [], `${user.id} was never closed`)
  }
})
