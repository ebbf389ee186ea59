import t from 'tap'
import { startApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { PREFIX, assertOk, bearer, http, openClient } from '../helpers/http.js'

t.test('embedded: user ids sorted, once per user, and the count', async (t) => {
  const node = await startApp()
  t.teardown(() => node.app.close())
  const ops = await node.app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  const url = `${node.httpBase}${PREFIX}/connected-users`
  t.strictSame(assertOk(t, await http(url, bearer(ops))), { user_ids: [], count: 0 }, 'nobody yet (the caller has no socket)')

  await openClient(t, node, node, 'carol')
  const alice = await openClient(t, node, node, 'alice')
  await openClient(t, node, node, 120045)
  // A second socket of carol replaces the first: still one entry.
  const replaced = await openClient(t, node, node, 'carol')
  t.strictSame(assertOk(t, await http(url, bearer(ops))), { user_ids: ['120045', 'alice', 'carol'], count: 3 })

  const gone = closed(alice.socket)
  alice.socket.close()
  await gone
  await waitFor(() => node.app.realtime.connectedUsers().length === 2, 'alice to leave')
  t.strictSame(assertOk(t, await http(url, bearer(ops))), { user_ids: ['120045', 'carol'], count: 2 })
  t.ok(replaced.socket.readyState === replaced.socket.OPEN)
})

t.test('cluster: the same cluster-wide list on every node', async (t) => {
  const [a, b] = await startNodes(t, 2)
  const ops = await a.app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  await openClient(t, a, a, 'zoe')
  await openClient(t, a, b, 'bob')
  await openClient(t, b, b, 120045)
  const expected = { user_ids: ['120045', 'bob', 'zoe'], count: 3 }
  const list = async (node: typeof a): Promise<unknown> => (await http(`${node.httpBase}${PREFIX}/connected-users`, bearer(ops))).body.data
  await waitFor(async () => (await list(a) as { count: number }).count === 3 && (await list(b) as { count: number }).count === 3, 'presence on both nodes')
  t.strictSame(assertOk(t, await http(`${a.httpBase}${PREFIX}/connected-users`, bearer(ops))), expected, 'node-0 lists node-1\'s users too')
  t.strictSame(assertOk(t, await http(`${b.httpBase}${PREFIX}/connected-users`, bearer(ops))), expected, 'node-1 lists node-0\'s users too')
  t.strictSame(a.app.realtime.connectedUsers(), ['zoe'], 'while node-0 holds only its own socket')
})
