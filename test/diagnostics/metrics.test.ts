import t, { type Test } from 'tap'
import { Counter, Registry } from 'prom-client'
import { startApp, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { waitFor } from '../helpers/cluster.js'
import { ADMIN_TOKEN, PREFIX, assertError, bearer, http, openClient } from '../helpers/http.js'

/** The sample lines of an exposition (no comments), as written. */
const samples = (text: string): string[] => text.split('\n').filter((line) => line !== '' && !line.startsWith('#'))

/**
 * Two sockets; alice subscribes to notification.events and pings (her two
 * messages); three publishes (settings to all, one to alice, one to bob who is
 * not subscribed); then bob is forced out (4502).
 */
async function scriptedExchange (t: Test, node: TestApp): Promise<void> {
  const alice = await openClient(t, node, node, 'alice', ['notification.events'])
  const bob = await openClient(t, node, node, 'bob')
  alice.socket.send(JSON.stringify({ event: 'ping' }))
  await alice.inbox.until(2)
  await node.app.realtime.publish('settings', 'SETTINGS_UPDATED', { theme: 'dark' })
  await node.app.realtime.publish('notification.events', 'UNREAD_COUNT', { unread: 3 }, { userId: 'alice' })
  await node.app.realtime.publish('notification.events', 'UNREAD_COUNT', { unread: 1 }, { userId: 'bob' })
  const bobClosed = closed(bob.socket)
  await node.app.realtime.forceLogout('bob')
  t.equal((await bobClosed).code, 4502)
  await alice.inbox.until(4)
  t.strictSame(alice.inbox.messages.map((message) => message.event), ['subscribed', 'pong', 'SETTINGS_UPDATED', 'UNREAD_COUNT'])
  t.strictSame(bob.inbox.messages.map((message) => message.event), ['SETTINGS_UPDATED', 'MOBILE_USER_FORCE_LOGOUT_EVENT'])
  // The server records the close when its side of the handshake ends.
  await waitFor(() => node.app.realtime.stats().closes['4502'] === 1, 'the server to record 4502')
}

t.test('Prometheus text with exact counters after a scripted exchange', async (t) => {
  const node = await startApp({ diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  await scriptedExchange(t, node)

  const result = await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))
  t.equal(result.status, 200)
  t.equal(result.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  t.ok(result.text.startsWith('# HELP realtime_connections '), 'raw exposition text, not a JSON string')
  const lines = samples(result.text)
  const expected = [
    'realtime_connections 1',
    'realtime_connects_total 2',
    'realtime_messages_in_total 2',
    // connected ×2, subscribed, pong, settings ×2, alice's event, the force-logout event
    'realtime_messages_out_total 8',
    // forceLogout is not a publish() call: three, not four
    'realtime_publishes_total 3',
    // bob was not subscribed to notification.events
    'realtime_undelivered_total 1',
    'realtime_dropped_total 0',
    'realtime_slow_consumer_cuts_total 0',
    'realtime_redis_reconnects_total 0',
    'realtime_closes_total{code="4502"} 1',
    // settings, alice's event, the force-logout event: one observation per delivered event
    'realtime_publish_to_delivery_seconds_count 3'
  ]
  for (const line of expected) t.ok(lines.includes(line), line)
  t.strictSame(lines.filter((line) => line.startsWith('realtime_closes_total')), ['realtime_closes_total{code="4502"} 1'], 'no other close code')
  t.match(result.text, /^# TYPE realtime_closes_total counter$/m)
  t.match(result.text, /^# TYPE realtime_connections gauge$/m)
  t.match(result.text, /^# TYPE realtime_publish_to_delivery_seconds histogram$/m)
  t.ok(lines.includes('realtime_publish_to_delivery_seconds_bucket{le="+Inf"} 3'))
  t.notOk(result.text.includes('alice') || result.text.includes('bob'), 'no user ids in the labels')
})

t.test('/metrics is for operators only', async (t) => {
  const node = await startApp({ diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  const customer = await node.app.realtime.tokens.issue('customer', { ttlSeconds: 60 })
  assertError(t, await http(`${node.httpBase}${PREFIX}/metrics`), 401, 'Missing bearer token')
  assertError(t, await http(`${node.httpBase}${PREFIX}/metrics`, bearer('nope')), 403, 'Forbidden')
  assertError(t, await http(`${node.httpBase}${PREFIX}/metrics`, bearer(customer)), 403, 'Forbidden')
})

t.test('metricsRegistry: the metrics live on the user\'s prom-client registry', async (t) => {
  const registry = new Registry()
  const custom = new Counter({ name: 'app_logins_total', help: 'logins', registers: [registry] })
  custom.inc(7)
  const node = await startApp({ diagnostics: { metricsRegistry: registry, adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  await openClient(t, node, node, 'alice')
  await node.app.realtime.publish('settings', 'SETTINGS_UPDATED', { theme: 'dark' })

  const own = samples(await registry.metrics())
  for (const line of ['realtime_connections 1', 'realtime_connects_total 1', 'realtime_publishes_total 1', 'realtime_messages_out_total 2', 'app_logins_total 7']) {
    t.ok(own.includes(line), `registry.metrics(): ${line}`)
  }
  const served = await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))
  t.equal(served.status, 200)
  t.strictSame(samples(served.text), own, 'the route serves that registry, the user\'s own metrics included')
})

t.test('metricsRegistry: closing the app takes its metrics off the user\'s registry', async (t) => {
  const registry = new Registry()
  const first = await startApp({ diagnostics: { metricsRegistry: registry } })
  await first.app.close()
  t.notOk((await registry.metrics()).includes('realtime_'), 'nothing of the closed app is left')
  const second = await startApp({ diagnostics: { metricsRegistry: registry } })
  t.teardown(() => second.app.close())
  t.ok(samples(await registry.metrics()).includes('realtime_connections 0'))
})
