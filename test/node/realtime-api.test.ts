import t from 'tap'
import Type, { type Static } from 'typebox'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { Inbox } from '../helpers/messages.js'

const TransferSchema = Type.Object({
  transfer_id: Type.String(),
  amount: Type.String({ pattern: '^\\d+\\.\\d{2}$' }),
  status: Type.Union([Type.Literal('pending'), Type.Literal('settled')])
})

declare module '../../lib/index.js' {
  interface RealtimeChannels {
    'transfer.events': { scope: 'user', data: Static<typeof TransferSchema> }
    maintenance: { scope: 'global', data: { starts_at: number } }
  }
}

const channels = {
  'transfer.events': { scope: 'user' as const, schema: TransferSchema },
  maintenance: { scope: 'global' as const, schema: Type.Object({ starts_at: Type.Integer() }) }
}

t.test('application channels: scoped delivery and schema-checked data', async (t) => {
  const { app, wsBase } = await startApp({ channels })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  t.teardown(() => client.socket.terminate())
  const inbox = new Inbox(client.socket)
  client.socket.send(JSON.stringify({ event: 'subscribe', channel: 'transfer.events' }))
  client.socket.send(JSON.stringify({ event: 'subscribe', channel: 'maintenance' }))
  await inbox.until(2)
  await app.realtime.channels['transfer.events'].publish('u1', 'TRANSFER_UPDATED', { transfer_id: 't-1', amount: '10.00', status: 'settled' })
  await app.realtime.channels.maintenance.publish('MAINTENANCE', { starts_at: 1740748800 })
  await app.realtime.publish('transfer.events', 'TRANSFER_UPDATED', { transfer_id: 't-2', amount: '1.50', status: 'pending' }, { userId: 'u1' })
  t.same((await inbox.until(5)).slice(2), [
    { event: 'TRANSFER_UPDATED', channel: 'transfer.events', data: { transfer_id: 't-1', amount: '10.00', status: 'settled' } },
    { event: 'MAINTENANCE', channel: 'maintenance', data: { starts_at: 1740748800 } },
    { event: 'TRANSFER_UPDATED', channel: 'transfer.events', data: { transfer_id: 't-2', amount: '1.50', status: 'pending' } }
  ])

  await t.rejects(app.realtime.publish('transfer.events', 'X', { transfer_id: 't', amount: '10', status: 'settled' }, { userId: 'u1' }), {
    code: 'FST_REALTIME_INVALID_DATA',
    message: 'Invalid data for channel "transfer.events": data.amount must match pattern "^\\d+\\.\\d{2}$"'
  })
  await t.rejects(app.realtime.channels.maintenance.publish('X', { starts_at: 1.5 }), { code: 'FST_REALTIME_INVALID_DATA', message: /data\.starts_at must be integer/ })
})

t.test('publish refuses what it cannot deliver correctly, with coded errors', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  await t.rejects(app.realtime.publish('nope.events', 'X', {}, { userId: 'u1' }), { code: 'FST_REALTIME_UNKNOWN_CHANNEL', message: 'Unknown channel "nope.events"' })
  await t.rejects(app.realtime.publish('kyc.events', 'X', {}), { code: 'FST_REALTIME_USER_ID_REQUIRED', message: 'Channel "kyc.events" is user-scoped: publish needs { userId }' })
  await t.rejects(app.realtime.publish('settings', 'X', {}, { userId: 'u1' }), { code: 'FST_REALTIME_USER_ID_FORBIDDEN', message: 'Channel "settings" is global: publish takes no userId' })
  await t.rejects(app.realtime.publish('kyc.events', 'X', {}, { userId: 'has space' }), { code: 'FST_REALTIME_INVALID_ARGUMENT' })
  await t.rejects(app.realtime.publish('kyc.events', '', {}, { userId: 'u1' }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: /"event"/ })
  for (const data of [null, [], 'text', 5]) {
    await t.rejects(app.realtime.publish('kyc.events', 'X', data as never, { userId: 'u1' }), { code: 'FST_REALTIME_INVALID_DATA', message: 'Invalid data for channel "kyc.events": data must be an object' })
  }
  await t.rejects(app.realtime.publish('kyc.events', 'X', { big: 1n }, { userId: 'u1' }), { code: 'FST_REALTIME_INVALID_DATA', message: /not serializable to JSON/ })
  t.equal(app.realtime.stats().publishes, 0, 'nothing refused counts as published')
  await app.realtime.publish('kyc.events', 'X', {}, { userId: 120045 })
  t.same(app.realtime.stats(), { connects: 0, messages_in: 0, messages_out: 0, publishes: 1, undelivered: 1, slow_consumer_cuts: 0, dropped: 0, redis_reconnects: 0, acks: 0, ack_timeouts: 0, replayed: 0, closes: {}, recoveries: {}, handshakes_refused: {} })
})

t.test('a built-in channel may get a schema but not another scope', async (t) => {
  await t.rejects(startApp({ channels: { settings: { scope: 'user' } } }), {
    code: 'FST_REALTIME_INVALID_OPTION',
    message: 'Invalid fastify-realtime option "channels.settings.scope": the built-in channel "settings" is global-scoped'
  })
  const { app } = await startApp({ channels: { 'kyc.events': { scope: 'user', schema: Type.Object({ level: Type.Integer() }) } } })
  t.teardown(() => app.close())
  await t.rejects(app.realtime.publish('kyc.events', 'X', { level: 'high' }, { userId: 'u1' }), { code: 'FST_REALTIME_INVALID_DATA' })
})

t.test('TypeScript knows each channel\'s data type', async (t) => {
  const { app } = await startApp({ channels })
  t.teardown(() => app.close())
  // Each line below must fail to compile; `tsc --noEmit` in `npm test` proves it.
  const compileErrors = [
    // @ts-expect-error amount must be a string
    async () => await app.realtime.channels['transfer.events'].publish('u1', 'X', { transfer_id: 't', amount: 10, status: 'settled' }),
    // @ts-expect-error status is a closed union
    async () => await app.realtime.publish('transfer.events', 'X', { transfer_id: 't', amount: '1.00', status: 'lost' }, { userId: 'u1' }),
    // @ts-expect-error a global channel's helper takes no userId
    async () => await app.realtime.channels.maintenance.publish('u1', 'X', { starts_at: 1 }),
    // @ts-expect-error starts_at is required
    async () => await app.realtime.channels.maintenance.publish('X', {})
  ]
  // At run time the schemas catch the same mistakes.
  for (const attempt of compileErrors) await t.rejects(attempt(), { code: /^FST_REALTIME_INVALID_(DATA|ARGUMENT)$/ })
  // Channels TypeScript does not know are accepted by name with free-form data.
  await t.rejects(app.realtime.publish('unknown.events', 'X', { any: 'thing' }, { userId: 'u1' }), { code: 'FST_REALTIME_UNKNOWN_CHANNEL' })
})

t.test('publish and every channel helper resolve { id: null } while history is off, in both modes', async (t) => {
  for (const options of [{}, { redis: REDIS_URL, keyPrefix: uniquePrefix() }]) {
    const { app } = await startApp(options)
    t.teardown(() => app.close())
    t.strictSame(await app.realtime.publish('settings', 'S', {}), { id: null })
    t.strictSame(await app.realtime.publish('kyc.events', 'K', {}, { userId: 'nobody' }), { id: null })
    t.strictSame(await app.realtime.channels['payment_order.events'].publish('nobody', 'P', {}), { id: null })
    t.strictSame(await app.realtime.channels.settings.publish('S', {}), { id: null })
  }
})
