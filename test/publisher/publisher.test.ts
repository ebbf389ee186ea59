import t, { type Test } from 'tap'
import Type, { type Static } from 'typebox'
import { Redis } from 'ioredis'
import { createPublisher, type PublisherOptions, type RealtimePublisher } from '../../lib/publisher/index.js'
import type { RealtimeOptions } from '../../lib/index.js'
import { REDIS_URL, uniquePrefix, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { KYC, PAYMENTS, SETTINGS, dropSocket, eventsOf, join, open } from '../helpers/history.js'
import { freePort } from '../helpers/redis-server.js'
import { within } from '../helpers/outage.js'

// The standalone publisher (fastify-realtime/publisher) reaching sockets on
// gateway nodes over Redis, as app.realtime does.

const WorkerSchema = Type.Object({ n: Type.Integer() })

declare module '../../lib/index.js' {
  interface RealtimeChannels {
    'worker.events': { scope: 'user', data: Static<typeof WorkerSchema> }
  }
}

const channels = { 'worker.events': { scope: 'user' as const, schema: WorkerSchema } }

/** A gateway node and a publisher on the same Redis and key prefix (and `history` when given); both closed at teardown. */
async function setup (t: Test, history: boolean, extra: Partial<PublisherOptions> = {}, nodeOptions: RealtimeOptions = {}): Promise<{ node: TestApp, publisher: RealtimePublisher, keyPrefix: string }> {
  const keyPrefix = uniquePrefix()
  const [node] = await startNodes(t, 1, { keyPrefix, channels, ...(history ? { history: {} } : {}), ...nodeOptions })
  const publisher = await createPublisher({ redis: REDIS_URL, keyPrefix, channels, ...(history ? { history: {} } : {}), ...extra })
  t.teardown(async () => await publisher.close())
  return { node, publisher, keyPrefix }
}

for (const history of [false, true]) {
  t.test(`history ${history ? 'on' : 'off'}: what the publisher publishes reaches the socket on a gateway node${history ? ' with its id, and a reconnect with recover replays it' : ''}`, async (t) => {
    const { node, publisher } = await setup(t, history)
    const alice = await join(t, node, 'alice', [PAYMENTS, 'worker.events'])
    const paid = await publisher.publish(PAYMENTS, 'PAID', { order_id: 'po_1' }, { userId: 'alice' })
    const work = await publisher.channels['worker.events'].publish('alice', 'DONE', { n: 1 })
    const fees = await publisher.channels.settings.publish('FEES', { rate: '1.50' })
    const withId = (event: Record<string, unknown>, id: string | null): Record<string, unknown> => id === null ? event : { ...event, id }
    if (history) t.match(paid.id, /^[A-Za-z0-9_-]{8}:1$/)
    else t.strictSame([paid, work, fees], [{ id: null }, { id: null }, { id: null }])
    t.strictSame(await eventsOf(alice.phone, 3), [
      withId({ event: 'PAID', channel: PAYMENTS, data: { order_id: 'po_1' } }, paid.id),
      withId({ event: 'DONE', channel: 'worker.events', data: { n: 1 } }, work.id),
      withId({ event: 'FEES', channel: SETTINGS, data: { rate: '1.50' } }, fees.id)
    ])
    if (!history) return

    await dropSocket(alice.phone, [node], 'alice')
    const missed = await publisher.publish(PAYMENTS, 'REFUNDED', { order_id: 'po_1' }, { userId: 'alice' })
    const phone = await open(t, node, alice.token, { [PAYMENTS]: paid.id as string })
    t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 1 } })
    t.strictSame(await eventsOf(phone, 1), [{ event: 'REFUNDED', channel: PAYMENTS, data: { order_id: 'po_1' }, id: missed.id }])
  })

  t.test(`history ${history ? 'on' : 'off'}: forceLogout, disconnect and tokens.revoke (the gateway's tokens.keyFor) close the sockets with their codes`, async (t) => {
    const keyFor = (token: string): string => `custom-token-layout:${token.slice(0, 12)}`
    const { node, publisher } = await setup(t, history, { tokens: { keyFor }, publishTimeoutMs: 500 }, { tokens: { keyFor } })
    const carol = await join(t, node, 'carol', [])
    const carolClosed = closed(carol.phone.socket)
    await publisher.forceLogout('carol', { reason: 'password_changed' })
    t.equal((await within(carolClosed, 5000, 'the logout')).code, 4502)
    t.match(carol.phone.events().at(-1), { event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', channel: 'mobile.force.logout', data: { reason: 'password_changed', mobile_user_id: 'carol', is_force_logout: true } })

    const dave = await join(t, node, 'dave', [])
    const daveClosed = closed(dave.phone.socket)
    await publisher.disconnect('dave', { code: 4100, reason: 'maintenance' })
    t.strictSame(await within(daveClosed, 5000, 'the disconnect'), { code: 4100, reason: 'maintenance' })

    const erin = await join(t, node, 'erin', [])
    const erinClosed = closed(erin.phone.socket)
    await publisher.tokens.revoke(erin.token)
    t.equal((await within(erinClosed, 5000, 'the revocation')).code, 4501)
    t.equal(await node.app.realtime.tokens.resolve(erin.token), null, 'the token is gone from the store')
  })
}

t.test('every refused publish fails exactly as app.realtime.publish does; awaitAck is refused with a reason', async (t) => {
  const { node, publisher } = await setup(t, true)
  const calls: Array<[string, string, unknown, Record<string, unknown>?]> = [
    ['nope.events', 'X', {}, { userId: 'u' }],
    [KYC, 'X', {}],
    [SETTINGS, 'X', {}, { userId: 'u' }],
    [KYC, 'X', {}, { userId: 'has space' }],
    [KYC, '', {}, { userId: 'u' }],
    [KYC, 'X', [], { userId: 'u' }],
    [KYC, 'X', { big: 1n }, { userId: 'u' }],
    ['worker.events', 'X', { n: 'one' }, { userId: 'u' }],
    [KYC, 'X', {}, { userId: 'u', idempotencyKey: '' }],
    [KYC, 'X', {}, { userId: 'u', awaitAck: { timeoutMs: 0 } }],
    [SETTINGS, 'X', {}, { awaitAck: { timeoutMs: 10 } }]
  ]
  const failure = async (call: Promise<unknown>): Promise<unknown> => await call.then(() => 'resolved', (error: { code: string, message: string }) => ({ code: error.code, message: error.message }))
  for (const [channel, event, data, options] of calls) {
    const gateway = await failure(node.app.realtime.publish(channel as never, event, data as never, options))
    const worker = await failure(publisher.publish(channel as never, event, data as never, options))
    // The publisher never hears acks: its reason comes first.
    if (options?.awaitAck !== undefined) {
      t.strictSame(worker, {
        code: 'FST_REALTIME_AWAIT_ACK_UNSUPPORTED',
        message: 'awaitAck is not possible here: a standalone publisher receives no acks; await one through a gateway node (app.realtime.publish or POST {prefix}/publish)'
      })
    } else {
      t.strictSame(worker, gateway, JSON.stringify(gateway))
      t.match(gateway, { code: /^FST_REALTIME_/ })
    }
  }
  await t.rejects(publisher.disconnect('u', { code: 1234 }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: 'Invalid argument "code": must be 1000 or an application code 4000-4999' })
  await t.rejects(publisher.tokens.revoke(''), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: 'Invalid argument "token": must be a non-empty string' })
  // TypeScript knows the channel's data type too (tsc --noEmit proves the line fails to compile).
  // @ts-expect-error n must be a number
  await t.rejects(publisher.channels['worker.events'].publish('u', 'X', { n: 'one' }), { code: 'FST_REALTIME_INVALID_DATA' })
})

t.test('an idempotent retry from the publisher, then from the gateway, is delivered once and answers the first id', async (t) => {
  for (const history of [false, true]) {
    const { node, publisher } = await setup(t, history)
    const alice = await join(t, node, 'alice', [PAYMENTS, KYC])
    const first = await publisher.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: 'po_1:paid' })
    t.strictSame(await publisher.channels[PAYMENTS].publish('alice', 'PAID', { n: 1 }, { idempotencyKey: 'po_1:paid' }), first)
    t.strictSame(await node.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: 'po_1:paid' }), first)
    const last = await publisher.publish(KYC, 'LAST', {}, { userId: 'alice' })
    const events = await eventsOf(alice.phone, 2)
    await waitFor(() => alice.phone.events().some((event) => event.event === 'LAST'), 'the last event')
    const withId = (event: Record<string, unknown>, id: string | null): Record<string, unknown> => id === null ? event : { ...event, id }
    t.strictSame(events, [withId({ event: 'PAID', channel: PAYMENTS, data: { n: 1 } }, first.id), withId({ event: 'LAST', channel: KYC, data: {} }, last.id)], `history ${history ? 'on' : 'off'}: once`)
  }
})

t.test('close(): a client made from a URL is quit, a given one is left open; later calls are refused unsent; no subscriber is ever opened', async (t) => {
  const inspector = new Redis(REDIS_URL)
  t.teardown(() => inspector.disconnect())
  const keyPrefix = uniquePrefix()
  const fromUrl = await createPublisher({ redis: REDIS_URL, keyPrefix })
  await fromUrl.publish(SETTINGS, 'X', {})
  const connections = async (): Promise<string[]> => (await inspector.client('LIST') as string).split('\n').filter((line) => / name=fastify-realtime:publisher /.test(line))
  const [entry] = await connections()
  t.match(entry, / sub=0 psub=0 ssub=0 /, 'its one connection subscribes nothing')
  await fromUrl.close()
  await fromUrl.close()
  await waitFor(async () => (await connections()).length === 0, 'the publisher\'s connection to go')
  await t.rejects(fromUrl.publish(SETTINGS, 'X', {}), { code: 'FST_REALTIME_REDIS_UNAVAILABLE', message: 'Redis is unavailable: the publisher is closed' })

  const given = new Redis(REDIS_URL)
  t.teardown(() => given.disconnect())
  const borrowing = await createPublisher({ redis: given, keyPrefix, history: {}, idempotency: { windowSeconds: 60 } })
  t.strictSame(await borrowing.publish(SETTINGS, 'X', {}, { idempotencyKey: 'k' }), await borrowing.publish(SETTINGS, 'Y', {}, { idempotencyKey: 'k' }))
  const ttl = await inspector.ttl(`${keyPrefix}idem:c:{settings}|k`)
  t.ok(ttl > 0 && ttl <= 60, `the record lives idempotency.windowSeconds (${ttl} s)`)
  await borrowing.close()
  t.equal(given.status, 'ready', 'left open for its owner')
  const calls: Array<Promise<unknown>> = [borrowing.publish(SETTINGS, 'X', {}), borrowing.publish(SETTINGS, 'X', {}, { idempotencyKey: 'j' }), borrowing.forceLogout('u'), borrowing.tokens.revoke('some-token')]
  for (const call of calls) {
    await t.rejects(call, { code: 'FST_REALTIME_REDIS_UNAVAILABLE', message: 'Redis is unavailable: the publisher is closed' })
  }
})

t.test('Redis not there at start: createPublisher resolves after a short wait, says so, and publishes are refused unsent', async (t) => {
  const url = `redis://127.0.0.1:${await freePort()}`
  const warnings: string[] = []
  const [logged, silent] = await Promise.all([
    createPublisher({ redis: url, logger: { warn: (...args: unknown[]) => { warnings.push(String(args.at(-1))) } } }),
    createPublisher({ redis: url })
  ])
  t.ok(warnings.includes('fastify-realtime: Redis is not ready yet; publishes are refused until it is'))
  for (const publisher of [logged, silent]) {
    await t.rejects(publisher.publish(SETTINGS, 'X', {}), { code: 'FST_REALTIME_REDIS_UNAVAILABLE' })
    await publisher.close()
  }
})

t.test('a borrowed client whose settings let ioredis send a publish again later is named, as the gateway names it', async (t) => {
  const warnings: Array<{ options: unknown, message: string }> = []
  const logger = { warn: (context: { options: unknown }, message: string) => { warnings.push({ options: context.options, message }) } }
  const resending = new Redis(REDIS_URL)
  const strict = new Redis(REDIS_URL, { autoResendUnfulfilledCommands: false })
  t.teardown(() => { resending.disconnect(); strict.disconnect() })
  for (const redis of [resending, strict]) await (await createPublisher({ redis, logger: logger as unknown as PublisherOptions['logger'] })).close()
  t.same(warnings, [{ options: { autoResendUnfulfilledCommands: false }, message: 'fastify-realtime: the Redis client passed in may send a publish again later, twice or out of order; set these options' }])
})

t.test('options are checked as the plugin\'s are: FST_REALTIME_INVALID_OPTION naming the option', async (t) => {
  const refusals: Array<[unknown, string]> = [
    [{ redis: 'http://127.0.0.1' }, 'redis'],
    [{ redis: REDIS_URL, keyPrefix: '' }, 'keyPrefix'],
    [{ redis: REDIS_URL, history: { ttlSeconds: 10, metaTtlSeconds: 5 } }, 'history.metaTtlSeconds'],
    [{ redis: REDIS_URL, idempotency: { windowSeconds: 0 } }, 'idempotency.windowSeconds'],
    [{ redis: REDIS_URL, channels: { settings: { scope: 'user' } } }, 'channels.settings.scope'],
    [{ redis: REDIS_URL, logger: {} }, 'logger'],
    [{ redis: REDIS_URL, cluster: {} }, 'cluster']
  ]
  for (const [options, path] of refusals) {
    await t.rejects(createPublisher(options as PublisherOptions), { code: 'FST_REALTIME_INVALID_OPTION', message: new RegExp(`^Invalid fastify-realtime option "${path.replaceAll('.', '\\.')}": `) }, path)
  }
})
