import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { REDIS_URL, startApp, uniquePrefix, type TestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { KYC, MODES, PAYMENTS, SETTINGS, deploy, eventsOf, join, type Mode } from '../helpers/history.js'
import { directClient, eventually, outcome, ownRedis, within } from '../helpers/outage.js'
import type { Phone } from '../helpers/phone.js'

// Idempotent publishes: a publish with the key of one made within the
// window sends nothing and answers the first one's result.

const KEY = 'po_1:paid'

/** The event as the phone receives it (with its id when history is on). */
function event (name: string, channel: string, data: Record<string, unknown>, id: string | null): Record<string, unknown> {
  return id === null ? { event: name, channel, data } : { event: name, channel, data, id }
}

/** Publishes a last event to the phone's user and waits for it: anything sent twice before it has arrived by then. */
async function settle (node: TestApp, phone: Phone, userId: string): Promise<any[]> {
  await node.app.realtime.publish(KYC, 'LAST', {}, { userId })
  await waitFor(() => phone.events().some((received) => received.event === 'LAST'), 'the last event')
  return phone.events()
}

async function deployment (t: Test, mode: Mode, history: boolean, extra = {}): Promise<TestApp[]> {
  const nodes = await deploy(t, mode, mode === 'cluster' ? 2 : 1, { ...(history ? { history: {} } : {}), ...extra })
  return nodes.length === 1 ? [nodes[0], nodes[0]] : nodes
}

for (const mode of MODES) {
  for (const history of [false, true]) {
    const where = `${mode}, history ${history ? 'on' : 'off'}`
    t.test(`${where}: a retried idempotent publish (${mode === 'cluster' ? 'from the other node' : 'again'}) is delivered once and answers the first id`, async (t) => {
      const [a, b] = await deployment(t, mode, history)
      const alice = await join(t, a, 'alice', [PAYMENTS, KYC])
      const bob = await join(t, b, 'bob', [PAYMENTS, KYC])

      const first = await a.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY })
      if (history) t.match(first.id, /^[A-Za-z0-9_-]{8}:1$/)
      else t.strictSame(first, { id: null })
      t.strictSame(await b.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY }), first, 'the retry answers the first publish\'s result')
      t.strictSame(await a.app.realtime.channels[PAYMENTS].publish('alice', 'PAID', { n: 1 }, { idempotencyKey: KEY }), first, 'so does the channel helper')
      t.strictSame(await b.app.realtime.publish(PAYMENTS, 'CHANGED', { n: 9 }, { userId: 'alice', idempotencyKey: KEY }), first, 'the key decides, not what is published')
      // The key is scoped per user and channel: another channel of the user, another user, a global channel are other publishes.
      const kyc = await b.app.realtime.publish(KYC, 'KYC', { n: 2 }, { userId: 'alice', idempotencyKey: KEY })
      const toBob = await a.app.realtime.publish(PAYMENTS, 'PAID', { n: 3 }, { userId: 'bob', idempotencyKey: KEY })
      const settings = await a.app.realtime.publish(SETTINGS, 'FEES', { n: 4 }, { idempotencyKey: KEY })
      t.strictSame(await b.app.realtime.channels.settings.publish('FEES', { n: 4 }, { idempotencyKey: KEY }), settings, 'a global channel\'s retry answers the first result')
      if (history) t.not(kyc.id, first.id)

      t.strictSame(await settle(a, alice.phone, 'alice'), [
        event('PAID', PAYMENTS, { n: 1 }, first.id),
        event('KYC', KYC, { n: 2 }, kyc.id),
        event('FEES', SETTINGS, { n: 4 }, settings.id),
        { ...event('LAST', KYC, {}, null), ...(history ? { id: alice.phone.events().at(-1).id } : {}) }
      ], 'each publish once')
      t.strictSame(await settle(b, bob.phone, 'bob'), [
        event('PAID', PAYMENTS, { n: 3 }, toBob.id),
        event('FEES', SETTINGS, { n: 4 }, settings.id),
        { ...event('LAST', KYC, {}, null), ...(history ? { id: bob.phone.events().at(-1).id } : {}) }
      ])
    })

    t.test(`${where}: after the window, the same key publishes again`, async (t) => {
      const [a, b] = await deployment(t, mode, history, { idempotency: { windowSeconds: 1 } })
      const alice = await join(t, a, 'alice', [PAYMENTS])
      const first = await a.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY })
      await eventsOf(alice.phone, 1)
      await sleep(1100)
      const second = await b.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY })
      await eventsOf(alice.phone, 2)
      t.strictSame(alice.phone.events(), [event('PAID', PAYMENTS, { n: 1 }, first.id), event('PAID', PAYMENTS, { n: 1 }, second.id)])
      if (history) t.not(second.id, first.id, 'a new event with its own id')
    })
  }
}

t.test('a bad idempotency key is refused with a coded error, and nothing is published', async (t) => {
  const { app } = await startApp()
  t.teardown(async () => await app.close())
  const message = 'Invalid argument "idempotencyKey": must be a string of 1 to 256 characters'
  for (const key of ['', 'k'.repeat(257), 5, null, {}]) {
    await t.rejects(app.realtime.publish(KYC, 'X', {}, { userId: 'u1', idempotencyKey: key as never }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message }, JSON.stringify(key))
    await t.rejects(app.realtime.channels.settings.publish('X', {}, { idempotencyKey: key as never }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message })
  }
  t.equal(app.realtime.stats().publishes, 0)
  t.strictSame(await app.realtime.publish(KYC, 'X', {}, { userId: 'u1', idempotencyKey: 'k'.repeat(256) }), { id: null }, '256 characters are fine')
})

t.test('awaitAck with a retried key: the first answers acked, the retry the first id alone (its ack went to the first publisher)', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await deploy(t, 'cluster', 2, { history: {}, keyPrefix })
  const alice = await join(t, b, 'alice', [PAYMENTS])
  const publishing = a.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY, awaitAck: { timeoutMs: 10_000 } })
  const [received] = await eventsOf(alice.phone, 1)
  alice.phone.send({ event: 'ack', channel: PAYMENTS, id: received.id })
  t.strictSame(await within(publishing, 10_000, 'the ack'), { id: received.id, acked: true })
  t.strictSame(await b.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY, awaitAck: { timeoutMs: 10_000 } }), { id: received.id })

  // The record: the user's hash tag, the channel, the key; the id, for the window.
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  const record = `${keyPrefix}idem:u:{alice}:${PAYMENTS}|${KEY}`
  t.equal(await redis.get(record), received.id)
  const ttl = await redis.ttl(record)
  t.ok(ttl > 0 && ttl <= 300, `expires within the default window (${ttl} s)`)
})

t.test('a publish whose outcome was unknown (Redis frozen), retried with its key after the thaw, is delivered once', async (t) => {
  const redis = await ownRedis(t)
  const [node] = await deploy(t, 'cluster', 1, { redis: redis.url, history: {}, cluster: { publishTimeoutMs: 300 } })
  const alice = await join(t, node, 'alice', [PAYMENTS, KYC])
  const publish = async (): Promise<{ id: string | null }> => await node.app.realtime.publish(PAYMENTS, 'PAID', { n: 1 }, { userId: 'alice', idempotencyKey: KEY })
  redis.freeze()
  t.equal(await outcome(publish()), 'FST_REALTIME_OUTCOME_UNKNOWN')
  redis.thaw()
  // Refused unsent until Redis has answered the stalled link again, then a repeat.
  const retried = await eventually(publish, 'the retry to be answered')
  const [delivered] = await eventsOf(alice.phone, 1, 'the first publish, delivered on the thaw')
  t.strictSame(retried, { id: delivered.id }, 'the retry answers the id of the publish that went out')
  t.strictSame(await settle(node, alice.phone, 'alice'), [delivered, { event: 'LAST', channel: KYC, data: {}, id: alice.phone.events().at(-1).id }], 'once')
})

t.test('history off, Redis lost its scripts (a restart): an idempotent publish and a plain one after it reach the socket in publish order', async (t) => {
  const redis = await ownRedis(t)
  const [node] = await deploy(t, 'cluster', 1, { redis: redis.url })
  const alice = await join(t, node, 'alice', [PAYMENTS])
  await node.app.realtime.publish(PAYMENTS, 'WARM', {}, { userId: 'alice', idempotencyKey: 'warm' })
  await eventsOf(alice.phone, 1, 'the first idempotent publish (its script now known to Redis)')
  const inspector = directClient(t, redis.url)
  await inspector.script('FLUSH')
  // Not awaited one by one: the second is written to Redis before the first is answered.
  await Promise.all([
    node.app.realtime.publish(PAYMENTS, 'PENDING', { n: 1 }, { userId: 'alice', idempotencyKey: KEY }),
    node.app.realtime.publish(PAYMENTS, 'PAID', { n: 2 }, { userId: 'alice' })
  ])
  const events = await eventsOf(alice.phone, 3)
  t.strictSame(events.map((each) => each.event), ['WARM', 'PENDING', 'PAID'], 'in the order they were published')
})
