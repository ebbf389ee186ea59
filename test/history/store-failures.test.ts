import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { directClient, ownRedis, within } from '../helpers/outage.js'
import { openPhone } from '../helpers/phone.js'
import type { OwnRedis } from '../helpers/redis-server.js'

// A resolver of the test's own: the handshake passes while Redis, where the streams live, is down.
const resolver = (token: string): { userId: string, expiresAt: number } | null =>
  token.startsWith('user-') ? { userId: token.slice(5), expiresAt: Math.floor(Date.now() / 1000) + 600 } : null

async function startNode (t: Test, redis: OwnRedis): Promise<TestApp> {
  const node = await startApp({
    redis: redis.url,
    keyPrefix: uniquePrefix(),
    history: { size: 50, ttlSeconds: 60, readTimeoutMs: 300 },
    tokens: { resolver },
    cluster: { publishTimeoutMs: 300, probeIntervalMs: 60_000 }
  })
  t.teardown(async () => await node.app.close())
  return node
}

t.test('a connecting socket whose catch-up read fails is closed with 4003, before anything else is sent', async (t) => {
  const redis = await ownRedis(t)
  const node = await startNode(t, redis)
  await redis.kill()
  const socket = new WebSocket(`${node.wsBase}/api/v1/ws?token=user-u1&recover=kyc.events@abc:1`)
  const messages: string[] = []
  socket.on('message', (data) => messages.push(data.toString()))
  const { code, reason } = await within(closed(socket), 5000, 'the socket closed')
  t.equal(code, 4003)
  t.equal(reason, 'History unavailable; reconnect with recover')
  t.strictSame(messages, [], 'not even connected went out')
})

t.test('a subscribe whose read fails answers HISTORY_UNAVAILABLE and leaves the channel unsubscribed; a retry after Redis is back works', async (t) => {
  const redis = await ownRedis(t)
  const node = await startNode(t, redis)
  const phone = await openPhone(`${node.wsBase}/api/v1/ws?token=user-u1`)
  t.teardown(() => phone.socket.terminate())
  await redis.kill()
  phone.send({ event: 'subscribe', channel: 'kyc.events' })
  phone.send({ event: 'ping' })
  const [, error, pong] = await within(phone.inbox.until(3), 5000, 'the answers')
  t.strictSame(error, {
    event: 'error',
    channel: 'kyc.events',
    data: { code: 'HISTORY_UNAVAILABLE', message: 'History is unavailable; try again' }
  })
  t.equal(pong.event, 'pong', 'the message sent meanwhile waited for the answer, then ran')
  t.strictSame(node.app.realtime.connections()[0].subscriptions, ['settings'])

  await redis.restart()
  const direct = directClient(t, redis.url)
  await within(direct.ping(), 5000, 'Redis back')
  await within((async () => {
    while (true) {
      phone.send({ event: 'subscribe', channel: 'kyc.events' })
      const answer = (await phone.inbox.until(phone.inbox.messages.length + 1)).at(-1)
      if (answer.event === 'subscribed') return answer
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })(), 10_000, 'a subscribe that lands')
  t.match(phone.inbox.messages.at(-1), { event: 'subscribed', channel: 'kyc.events', data: { position: /^[A-Za-z0-9_-]+:0$/ } })
})

t.test('a Redis that forgot the scripts (restart, SCRIPT FLUSH) gets them sent again: publish and recovery go on', async (t) => {
  const redis = await ownRedis(t)
  const node = await startNode(t, redis)
  const direct = directClient(t, redis.url)
  const first = await node.app.realtime.publish('kyc.events', 'KYC', { n: 1 }, { userId: 'u1' })
  await direct.script('FLUSH')
  const second = await node.app.realtime.publish('kyc.events', 'KYC', { n: 2 }, { userId: 'u1' })
  await direct.script('FLUSH')
  const phone = await openPhone(`${node.wsBase}/api/v1/ws?token=user-u1&recover=kyc.events@${String(first.id)}`)
  t.teardown(() => phone.socket.terminate())
  t.strictSame(phone.connected.data.recovery, { 'kyc.events': { recovered: true, replayed: 1 } })
  const [, replayed] = await within(phone.inbox.until(2), 5000, 'the replay')
  t.strictSame(replayed, { event: 'KYC', channel: 'kyc.events', data: { n: 2 }, id: second.id })
})

t.test('a frozen Redis fails a subscribe\'s read at history.readTimeoutMs, while it is still frozen, not at the client\'s command timeout', async (t) => {
  const redis = await ownRedis(t)
  const node = await startNode(t, redis)
  const phone = await openPhone(`${node.wsBase}/api/v1/ws?token=user-u1`)
  t.teardown(() => phone.socket.terminate())
  redis.freeze()
  t.teardown(() => redis.thaw())
  phone.send({ event: 'subscribe', channel: 'kyc.events' })
  // The plugin's client would give up on the command after 2 s; the read's own deadline is 300 ms.
  const [, answer] = await within(phone.inbox.until(2), 1500, 'the answer while Redis is frozen')
  t.match(answer, { event: 'error', channel: 'kyc.events', data: { code: 'HISTORY_UNAVAILABLE' } })
  redis.thaw()
})
