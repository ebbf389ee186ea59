import t from 'tap'
import Fastify from 'fastify'
import WebSocket from 'ws'
import realtime from '../../lib/index.js'
import { startApp } from '../helpers/app.js'
import { isConnected, isDisconnected, networkCutter, watchClient } from '../helpers/sdk.js'

const HISTORY = { history: { size: 64, ttlSeconds: 60 } }

t.test('a dropped socket: the client reconnects with recover and its handlers get every event published meanwhile, once, in order', async (t) => {
  const network = networkCutter()
  const { app, wsBase } = await startApp(HISTORY, {}, network.beforeListen)
  t.teardown(() => app.close())
  const urls: string[] = []
  class Recording extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      urls.push(url)
    }
  }
  const token = await app.realtime.tokens.issue('phone', { ttlSeconds: 60 })
  const { client, next, until, events, resyncs } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token, channels: ['kyc.events'], WebSocket: Recording },
    ['kyc.events', 'payment_order.events'])
  await next(isConnected, 'connected')
  await client.subscribe('payment_order.events')
  const first = await app.realtime.publish('kyc.events', 'KYC_SUBMITTED', { level: 1 }, { userId: 'phone' })
  await until(() => events.length === 1, 'the live event')

  network.cut()
  await next(isDisconnected, 'cut')
  const missed = [
    await app.realtime.publish('kyc.events', 'KYC_APPROVED', { level: 2 }, { userId: 'phone' }),
    await app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { status: 'paid' }, { userId: 'phone' }),
    await app.realtime.publish('kyc.events', 'KYC_UPGRADED', { level: 3 }, { userId: 'phone' })
  ]
  const reconnected = await next(isConnected, 'reconnected')
  t.strictSame((reconnected as { recovery?: unknown }).recovery, {
    settings: { recovered: true, replayed: 0 },
    'kyc.events': { recovered: true, replayed: 2 },
    'payment_order.events': { recovered: true, replayed: 1 }
  }, 'the connected state carries the server\'s answer per channel')
  await until(() => events.length === 4, 'the replay')
  t.strictSame(events, [
    { event: 'KYC_SUBMITTED', channel: 'kyc.events', data: { level: 1 }, id: first.id },
    { event: 'KYC_APPROVED', channel: 'kyc.events', data: { level: 2 }, id: missed[0].id },
    { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { status: 'paid' }, id: missed[1].id },
    { event: 'KYC_UPGRADED', channel: 'kyc.events', data: { level: 3 }, id: missed[2].id }
  ])
  t.strictSame(resyncs, [], 'everything recovered: nothing to refetch')
  const recover = new URL(urls[1]).searchParams.get('recover')!.split(',').sort()
  t.equal(recover.length, 3, 'every channel, settings included')
  t.ok(recover.includes(`kyc.events@${first.id!}`), 'kyc.events from its last event')
  t.match(recover, [/^kyc\.events@/, /^payment_order\.events@/, /^settings@/])
  t.equal(app.realtime.stats().replayed, 3)

  const live = await app.realtime.publish('kyc.events', 'KYC_DONE', { level: 4 }, { userId: 'phone' })
  await until(() => events.length === 5, 'live again')
  t.equal(events[4].id, live.id, 'live events follow the replay')
})

t.test('acks: sent after the handler returned, one per channel per batch; publish with awaitAck resolves acked', async (t) => {
  const { app, wsBase } = await startApp(HISTORY)
  t.teardown(() => app.close())
  const sent: string[] = []
  class Spying extends WebSocket {
    override send (data: any, callback?: any): void {
      sent.push(String(data))
      super.send(data, callback)
    }
  }
  let handled = 0
  const { client, next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), WebSocket: Spying, ackDelayMs: 20 })
  client.on('payment_order.events', () => { handled++ })
  await next(isConnected, 'connected')
  await client.subscribe('payment_order.events')
  const publish = async (n: number): Promise<{ id: string | null, acked?: boolean }> =>
    await app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { n }, { userId: 'u1', awaitAck: { timeoutMs: 3000 } })
  const results = await Promise.all([publish(1), publish(2), publish(3)])
  t.strictSame(results.map((result) => result.acked), [true, true, true])
  t.equal(handled, 3)
  const acks = sent.map((text) => JSON.parse(text)).filter((message) => message.event === 'ack')
  t.strictSame(acks, [{ event: 'ack', channel: 'payment_order.events', id: results[2].id }], 'one cumulative ack for the batch')
})

t.test('a gap the stream no longer holds: one resync per channel, with the server\'s reason; live events follow', async (t) => {
  const network = networkCutter()
  const { app, wsBase } = await startApp({ history: { size: 2, ttlSeconds: 60 } }, {}, network.beforeListen)
  t.teardown(() => app.close())
  const { client, next, until, events, resyncs } = watchClient(t, {
    url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels: ['kyc.events', 'card.events']
  }, ['kyc.events', 'card.events'])
  // Resolved by the subscribed replies to the subscribes the connect sent for `channels` (each brings the channel's position).
  await Promise.all([client.subscribe('kyc.events'), client.subscribe('card.events')])
  network.cut()
  await next(isDisconnected, 'cut')
  for (let n = 0; n < 4; n++) await app.realtime.publish('kyc.events', 'KYC_UPDATED', { n }, { userId: 'u1' })
  await next(isConnected, 'reconnected')
  await until(() => resyncs.length === 2, 'the resyncs')
  t.strictSame(resyncs.sort((a, b) => a.channel.localeCompare(b.channel)), [{ channel: 'card.events', reason: 'too_old' }, { channel: 'kyc.events', reason: 'too_old' }],
    'the user\'s channels share one stream: both lost their gap')
  t.strictSame(events, [], 'never a partial replay')
  await app.realtime.publish('card.events', 'CARD_ACTIVATED', {}, { userId: 'u1' })
  await until(() => events.length === 1, 'live')
})

t.test('without history: after a reconnect, every channel is resynced (history_off); no recover is sent', async (t) => {
  const network = networkCutter()
  const { app, wsBase } = await startApp({}, {}, network.beforeListen)
  t.teardown(() => app.close())
  const urls: string[] = []
  class Recording extends WebSocket {
    constructor (url: string) {
      super(url)
      urls.push(url)
    }
  }
  const { next, until, resyncs } = watchClient(t, {
    url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels: ['kyc.events'], WebSocket: Recording
  })
  await next(isConnected, 'connected')
  t.strictSame(resyncs, [], 'the first connect resyncs nothing')
  network.cut()
  await next(isConnected, 'reconnected')
  await until(() => resyncs.length === 2, 'resyncs')
  t.strictSame(resyncs, [{ channel: 'kyc.events', reason: 'history_off' }, { channel: 'settings', reason: 'history_off' }])
  t.equal(urls.length, 2)
  t.notOk(urls.some((url) => url.includes('recover=')))
})

t.test('subscriptions follow the app across reconnects: one subscribed while down, settings unsubscribed, one unsubscribed', async (t) => {
  const network = networkCutter()
  const { app, wsBase } = await startApp(HISTORY, {}, network.beforeListen)
  t.teardown(() => app.close())
  const { client, next, until } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels: ['card.events'] })
  await next(isConnected, 'connected')
  await client.unsubscribe('settings')
  await client.unsubscribe('card.events')
  network.cut()
  await next(isDisconnected, 'cut')
  const subscribed = client.subscribe('kyc.events')
  await client.unsubscribe('notification.events') // not subscribed, not connected: at once
  await next(isConnected, 'reconnected')
  await subscribed
  const subscriptions = (): string[] => app.realtime.connections()[0]?.subscriptions ?? []
  await until(() => !subscriptions().includes('settings'), 'settings unsubscribed again')
  t.strictSame(subscriptions(), ['kyc.events'], 'the auto-subscribed settings is unsubscribed again')
})

t.test('a recover the server refuses (400: a channel it no longer knows): resync for every channel, then a connect without recover', async (t) => {
  const build = async (channels: Record<string, { scope: 'user' }>, port: number): Promise<ReturnType<typeof Fastify>> => {
    const app = Fastify()
    await app.register(realtime, { ...HISTORY, channels })
    await app.listen({ host: '127.0.0.1', port })
    return app
  }
  let app = await build({ 'transfer.events': { scope: 'user' } }, 0)
  const { port } = app.server.address() as { port: number }
  t.teardown(async () => await app.close())
  const getToken = async (): Promise<string> => await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const { client, next, resyncs, until } = watchClient(t, { url: `ws://127.0.0.1:${port}/api/v1/ws`, getToken })
  await next(isConnected, 'connected')
  await client.subscribe('transfer.events')
  await app.close()
  await next(isDisconnected, 'shut down')
  app = await build({}, port)
  t.strictSame(await next((state) => state.state === 'disconnected' && state.status === 400, 'refused'),
    { state: 'disconnected', code: 1006, reason: 'Invalid recover parameter: expected <channel>@<id>,… of known channels', status: 400, delayMs: 5 })
  await next(isConnected, 'connected without recover')
  await until(() => resyncs.length === 2, 'resyncs')
  t.strictSame(resyncs.sort((a, b) => a.channel.localeCompare(b.channel)), [{ channel: 'settings', reason: 'refused' }, { channel: 'transfer.events', reason: 'refused' }])
})

t.test('positions kept across an app restart: the first connect of a new client recovers from them', async (t) => {
  const { app, wsBase } = await startApp(HISTORY)
  t.teardown(() => app.close())
  const url = `${wsBase}/api/v1/ws`
  const before = watchClient(t, { url, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels: ['kyc.events'] }, ['kyc.events'])
  await before.client.subscribe('kyc.events')
  const seen = await app.realtime.publish('kyc.events', 'KYC_SUBMITTED', {}, { userId: 'u1' })
  await before.until(() => before.events.length === 1, 'the event')
  const stored = before.client.positions()
  t.equal(stored['kyc.events'], seen.id)
  t.strictSame(Object.keys(stored).sort(), ['kyc.events', 'settings'])
  before.client.close()

  const missed = await app.realtime.publish('kyc.events', 'KYC_APPROVED', {}, { userId: 'u1' })
  const after = watchClient(t, { url, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), positions: stored }, ['kyc.events'])
  await after.until(() => after.events.length === 1, 'the missed event')
  t.equal(after.events[0].id, missed.id)
  t.strictSame(after.resyncs, [])
})

t.test('more channels than the message burst allows: the rate-limited subscribes are tried again until the socket has them all', async (t) => {
  const { app, wsBase } = await startApp({ limits: { messageBurst: 2, messagesPerSecond: 50 } })
  t.teardown(() => app.close())
  const channels = ['notification.events', 'payment_order.events', 'card.events', 'card.create.events', 'card.withdraw.events', 'kyc.events']
  const { client } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels })
  await Promise.all(channels.map(async (channel) => await client.subscribe(channel)))
  t.strictSame(app.realtime.connections()[0].subscriptions.sort(), ['settings', ...channels].sort())
})
