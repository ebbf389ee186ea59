import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { uniquePrefix, type TestApp } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { KYC, PAYMENTS, SETTINGS, dropSocket, epochOf, eventsOf, join, open, publishAll, received, subscribe } from '../helpers/history.js'
import { directClient, eventually, ownRedis, within } from '../helpers/outage.js'
import type { OwnRedis } from '../helpers/redis-server.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

type Loss = 'FLUSHALL' | 'a restart without persistence'

const lose: Record<Loss, (own: OwnRedis, redis: Redis) => Promise<void>> = {
  FLUSHALL: async (_own, redis) => { await redis.flushall() },
  'a restart without persistence': async (own) => {
    await own.kill()
    await own.restart()
  }
}

/**
 * Two users on two nodes of a Redis of the test's own: `leaver` saw five
 * payments events and two settings events, then lost its socket; `stayer`
 * keeps its socket. Redis loses everything; then more events than the
 * leaver had seen are published (new offsets past its old ones). The leaver
 * recovering is told epoch_changed for both streams and gets no replay; the
 * stayer gets every new event.
 */
async function historyLost (t: Test, loss: Loss): Promise<void> {
  const own = await ownRedis(t)
  const redis = directClient(t, own.url)
  const keyPrefix = uniquePrefix()
  const nodes = await startNodes(t, 2, { redis: own.url, keyPrefix, history: {}, tokens: { recheckIntervalMs: 0 } })
  const [a, b] = nodes
  const leaver = await join(t, a, 'leaver', [PAYMENTS])
  const stayer = await join(t, b, 'stayer', [PAYMENTS])
  const seen = await publishAll(a, 'leaver', [PAYMENTS, PAYMENTS, SETTINGS, PAYMENTS, PAYMENTS, SETTINGS, PAYMENTS])
  await eventsOf(leaver.phone, 7)
  await eventsOf(stayer.phone, 2)
  const oldUserEpoch = epochOf(seen[0].id)
  const oldSettingsEpoch = epochOf(seen[2].id)
  t.strictSame(seen.map((event) => event.id.slice(9)), ['1', '2', '1', '3', '4', '2', '5'])
  await dropSocket(leaver.phone, nodes, 'leaver')

  await lose[loss](own, redis)
  // Both nodes listen again (after a restart they resubscribe): what follows reaches every socket.
  const numsub = async (topic: string): Promise<number> => Number((await redis.pubsub('NUMSUB', topic) as Array<string | number>)[1])
  const listening = async (): Promise<boolean> => await numsub(`${keyPrefix}c:{settings}`) === 2 && await numsub(`${keyPrefix}u:{stayer}`) === 1
  await waitFor(async () => await listening().catch(() => false), 'both nodes to listen again', 15_000)
  const publish = async (node: TestApp, userId: string, channels: string[], firstSeq: number) =>
    await eventually(async () => await publishAll(node, userId, channels, firstSeq), 'a publish to go through')
  const after = await publish(b, 'leaver', Array(8).fill(PAYMENTS), 10)
  const settingsAfter = await publish(b, 'leaver', [SETTINGS, SETTINGS, SETTINGS], 20)
  const stayerAfter = await publish(a, 'stayer', [PAYMENTS], 30)
  const newUserEpoch = epochOf(after[0].id)
  t.not(newUserEpoch, oldUserEpoch, 'a new life of the user stream')
  t.not(epochOf(settingsAfter[0].id), oldSettingsEpoch, 'a new life of the settings stream')
  t.strictSame(after.map((event) => event.id), after.map((_, index) => `${newUserEpoch}:${index + 1}`), 'offsets begin again at 1')

  // The stayer's socket takes events of the new life, whose offsets are below the ones it was sent.
  const stayerEvents = await eventsOf(stayer.phone, 2 + 3 + 1, 'the stayer\'s events')
  t.strictSame(stayerEvents.filter((event) => event.channel === SETTINGS), [...seen.filter((event) => event.channel === SETTINGS), ...settingsAfter].map(received))
  t.strictSame(stayerEvents.filter((event) => event.channel === PAYMENTS), stayerAfter.map(received))

  // Tokens lived in the lost Redis too.
  const token = await eventually(async () => await a.app.realtime.tokens.issue('leaver', { ttlSeconds: 600 }), 'a token')
  const phone = await open(t, a, token, { [PAYMENTS]: seen[6].id, [SETTINGS]: seen[5].id })
  t.strictSame(phone.connected.data.recovery, {
    [PAYMENTS]: { recovered: false, reason: 'epoch_changed' },
    [SETTINGS]: { recovered: false, reason: 'epoch_changed' }
  }, 'never a replay of another life presented as the rest of the old one')
  t.strictSame(phone.connected.data.positions, { [SETTINGS]: settingsAfter[2].id, [PAYMENTS]: after[7].id })
  const [live] = await publish(b, 'leaver', [PAYMENTS], 40)
  t.strictSame(await eventsOf(phone, 1), [received(live)], 'nothing replayed; the live event follows')
  phone.send({ event: 'ping' })
  await waitFor(() => phone.inbox.messages.at(-1)?.event === 'pong', 'pong', 5000)
  t.equal(phone.events().length, 1)

  // Per channel later: subscribe with an id of the old life.
  const answer = await within((async () => {
    phone.send({ event: 'subscribe', channel: 'kyc.events', since: seen[6].id })
    await waitFor(() => phone.inbox.messages.some((message) => message.event === 'subscribed'))
    return phone.inbox.messages.find((message) => message.event === 'subscribed')
  })(), 5000, 'subscribed')
  t.strictSame(answer.data, { subscriptions: [SETTINGS, PAYMENTS, 'kyc.events'], position: live.id, recovered: false, reason: 'epoch_changed' })
}

t.test('FLUSHALL on the Redis of the history: recovering ids of before answers epoch_changed, never a wrong replay', async (t) => {
  await historyLost(t, 'FLUSHALL')
})

t.test('Redis restarted without persistence: recovering ids of before answers epoch_changed, never a wrong replay', async (t) => {
  await historyLost(t, 'a restart without persistence')
})

t.test('a node whose subscriber link died silently reads stream positions again: what it missed is not taken as its last position', async (t) => {
  const own = await ownRedis(t)
  const proxy = await TcpProxy.start(own.port)
  t.teardown(async () => await proxy.close())
  const keyPrefix = uniquePrefix()
  // a talks to Redis through the proxy, whose subscriber links the test can cut silently; b straight.
  const [a] = await startNodes(t, 1, { redis: proxy.url, keyPrefix, history: {}, cluster: { nodeId: 'cut', probeIntervalMs: 100 } })
  const [b] = await startNodes(t, 1, { redis: own.url, keyPrefix, history: {}, cluster: { nodeId: 'whole' } })
  const watcher = await join(t, a, 'watcher', [KYC])
  const heard = await publishAll(b, 'watcher', [SETTINGS, KYC])
  t.strictSame(await eventsOf(watcher.phone, 2), heard.map(received))

  t.ok(proxy.blackholeSubscribers() >= 1, 'a\'s subscriber link cut')
  const missed = await publishAll(b, 'watcher', [SETTINGS, PAYMENTS, SETTINGS], 10)
  await waitFor(() => watcher.phone.inbox.messages.some((message) => message.event === 'resync'), 'the resync', 10_000)
  t.strictSame(watcher.phone.events(), heard.map(received), 'the missed events never came')

  const newcomer = await join(t, a, 'newcomer', [])
  t.equal(newcomer.phone.connected.data.positions[SETTINGS], missed[2].id, 'settings: the stream\'s top, not the last event a heard')
  t.equal((await subscribe(watcher.phone, PAYMENTS)).data.position, missed[1].id, 'the user stream: read again, not the last event a heard')
  const [live] = await publishAll(b, 'watcher', [SETTINGS], 20)
  t.strictSame(await eventsOf(newcomer.phone, 1), [received(live)])
})
