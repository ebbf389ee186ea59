import t from 'tap'
import { startApp, uniquePrefix } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { OwnRedis } from '../helpers/redis-server.js'
import { PREFIX, assertOk, bearer, http, openClient } from '../helpers/http.js'

const HEALTH_KEYS = ['status', 'node_id', 'mode', 'redis', 'subscriber', 'connections', 'draining']

t.test('embedded: ok, no auth, the local connection count, and no user data', async (t) => {
  const node = await startApp({ cluster: { nodeId: 'embedded-1' } })
  t.teardown(() => node.app.close())
  const url = `${node.httpBase}${PREFIX}/health`
  const empty = assertOk(t, await http(url))
  t.strictSame(Object.keys(empty), HEALTH_KEYS)
  t.strictSame(empty, { status: 'ok', node_id: 'embedded-1', mode: 'embedded', redis: 'none', subscriber: 'none', connections: 0, draining: false })

  const alice = await openClient(t, node, node, 'alice-7731')
  await openClient(t, node, node, 120045)
  const busy = await http(url, bearer('not-a-valid-token'))
  t.strictSame(assertOk(t, busy), { status: 'ok', node_id: 'embedded-1', mode: 'embedded', redis: 'none', subscriber: 'none', connections: 2, draining: false },
    'a bad Authorization header does not matter: no auth')
  for (const secret of ['alice-7731', '120045', alice.connectionId, alice.token]) t.notOk(busy.text.includes(secret), 'no user id, connection id or token')
})

t.test('embedded: degraded while draining', async (t) => {
  let during: Awaited<ReturnType<typeof http>> | undefined
  let base = ''
  // Registered after the plugin: runs once it has begun draining.
  const node = await startApp({ cluster: { nodeId: 'draining-1' } }, { return503OnClosing: false }, (app) => app.addHook('preClose', async () => {
    during = await http(`${base}${PREFIX}/health`, { connection: 'close' })
  }))
  base = node.httpBase
  await node.app.close()
  if (during === undefined) throw new Error('the preClose hook did not run')
  t.strictSame(assertOk(t, during), { status: 'degraded', node_id: 'draining-1', mode: 'embedded', redis: 'none', subscriber: 'none', connections: 0, draining: true })
})

t.test('cluster: ok with Redis, degraded (still 200) while it is down, ok again once it is back', async (t) => {
  const own = await OwnRedis.start()
  t.teardown(async () => { await own.kill() })
  const node = await startApp({ redis: own.url, keyPrefix: uniquePrefix(), cluster: { nodeId: 'cluster-1', probeIntervalMs: 100 } })
  t.teardown(() => node.app.close())
  const url = `${node.httpBase}${PREFIX}/health`
  const health = async (): Promise<any> => (await http(url)).body.data

  await openClient(t, node, node, 'alice')
  await waitFor(async () => (await health()).subscriber === 'ready', 'the subscriber to be ready')
  t.strictSame(assertOk(t, await http(url)), { status: 'ok', node_id: 'cluster-1', mode: 'cluster', redis: 'ready', subscriber: 'ready', connections: 1, draining: false })

  await own.kill()
  await waitFor(async () => { const data = await health(); return data.redis === 'connecting' && data.subscriber === 'connecting' }, 'both links to notice the outage')
  const down = await http(url)
  t.equal(down.status, 200, 'degraded is still HTTP 200')
  t.strictSame(assertOk(t, down), { status: 'degraded', node_id: 'cluster-1', mode: 'cluster', redis: 'connecting', subscriber: 'connecting', connections: 1, draining: false },
    'the open socket stays and is counted')

  await own.restart()
  await waitFor(async () => (await health()).status === 'ok', 'Redis and the subscriber to come back')
  t.strictSame(assertOk(t, await http(url)), { status: 'ok', node_id: 'cluster-1', mode: 'cluster', redis: 'ready', subscriber: 'ready', connections: 1, draining: false })
})
