import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { startApp, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { ADMIN_TOKEN, PREFIX, assertError, assertOk, bearer, http, openClient } from '../helpers/http.js'

const ENTRY_KEYS = [
  'connection_id', 'user_id', 'node_id', 'connected_at', 'remote_address', 'user_agent', 'origin',
  'subscriptions', 'last_pong_at', 'messages_in', 'messages_out', 'buffered_bytes'
]
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

async function start (t: Test): Promise<{ node: TestApp, ops: string }> {
  const node = await startApp({ allowedOrigins: ['https://app.example.com'], cluster: { nodeId: 'diag-node' }, diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  return { node, ops: ADMIN_TOKEN }
}

/** Walks every page of /connections; returns the pages' data. */
async function walk (t: Test, base: string, token: string, query: string): Promise<any[]> {
  const pages: any[] = []
  let cursor: string | null = null
  do {
    const url: string = `${base}${PREFIX}/connections?${query}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
    const data: any = assertOk(t, await http(url, bearer(token)))
    pages.push(data)
    cursor = data.next_cursor
    if (pages.length > 10) throw new Error('pagination does not end')
  } while (cursor !== null)
  return pages
}

t.test('an entry has exactly the documented fields, with exact values, and never a token', async (t) => {
  const { node, ops } = await start(t)
  const before = Date.now()
  const alice = await openClient(t, node, node, 'alice', ['notification.events'], { 'user-agent': 'ops-test/1.0', origin: 'https://app.example.com' })
  const after = Date.now()
  const result = await http(`${node.httpBase}${PREFIX}/connections`, bearer(ops))
  const data = assertOk(t, result)
  t.strictSame(Object.keys(data), ['connections', 'count', 'next_cursor'])
  t.equal(data.count, 1)
  t.equal(data.next_cursor, null)
  t.equal(data.connections.length, 1)
  const [entry] = data.connections
  t.strictSame(Object.keys(entry), ENTRY_KEYS, 'exactly the schema\'s fields, in its order')
  t.match(entry.connected_at, ISO)
  t.ok(Date.parse(entry.connected_at) >= before && Date.parse(entry.connected_at) <= after, 'connected_at is when the socket opened')
  t.strictSame(entry, {
    connection_id: alice.connectionId,
    user_id: 'alice',
    node_id: 'diag-node',
    connected_at: entry.connected_at,
    remote_address: '127.0.0.1',
    user_agent: 'ops-test/1.0',
    origin: 'https://app.example.com',
    subscriptions: ['settings', 'notification.events'],
    // No protocol ping has gone out yet (30 s heartbeat): the last pong counts from the open.
    last_pong_at: entry.connected_at,
    messages_in: 1,
    messages_out: 2,
    buffered_bytes: 0
  })
  for (const secret of [alice.token, ops, createHash('sha256').update(alice.token).digest('hex')]) {
    t.notOk(result.text.includes(secret), 'neither the socket\'s token, its hash, nor the caller\'s token is in the body')
  }
  t.notOk(/token/i.test(result.text), 'no field mentions a token')

  // A socket without user agent or origin (a native app) shows null for both.
  await openClient(t, node, node, 'bob')
  const bob = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?user_id=bob`, bearer(ops))).connections[0]
  t.equal(bob.user_agent, null)
  t.equal(bob.origin, null)
  t.strictSame(bob.subscriptions, ['settings'])
})

t.test('pagination: limit and next_cursor walk every entry exactly once', async (t) => {
  const { node, ops } = await start(t)
  const ids: string[] = []
  for (const user of ['u1', 'u2', 'u3', 'u4', 'u5']) ids.push((await openClient(t, node, node, user)).connectionId)
  const sorted = [...ids].sort()

  const pages = await walk(t, node.httpBase, ops, 'limit=2')
  t.strictSame(pages.map((page) => page.connections.length), [2, 2, 1], '5 entries, limit 2: three pages')
  t.strictSame(pages.map((page) => page.count), [5, 5, 5], 'count is the total, on every page')
  t.equal(typeof pages[0].next_cursor, 'string')
  t.equal(typeof pages[1].next_cursor, 'string')
  t.equal(pages[2].next_cursor, null)
  t.strictSame(pages.flatMap((page) => page.connections.map((entry: { connection_id: string }) => entry.connection_id)), sorted,
    'each connection once, ordered by connection id')

  const exact = await walk(t, node.httpBase, ops, 'limit=5')
  t.equal(exact.length, 1, 'a page that ends exactly at the last entry has no next_cursor')
  t.equal(exact[0].connections.length, 5)
  const fourThenOne = await walk(t, node.httpBase, ops, 'limit=4')
  t.strictSame(fourThenOne.map((page) => page.connections.length), [4, 1])
  const defaults = await walk(t, node.httpBase, ops, '')
  t.strictSame(defaults.map((page) => page.connections.length), [5], 'default limit (100) takes all five')
  const pastTheEnd = Buffer.from(JSON.stringify(['zzzz', 'zzzz'])).toString('base64url')
  t.strictSame(assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?limit=2&cursor=${pastTheEnd}`, bearer(ops))),
    { connections: [], count: 5, next_cursor: null }, 'a cursor after every entry: an empty last page')
})

t.test('pagination: a cursor is a position, so a page survives the previous page\'s last entry leaving', async (t) => {
  const { node, ops } = await start(t)
  const clients = []
  for (const user of ['u1', 'u2', 'u3', 'u4']) clients.push(await openClient(t, node, node, user))
  const sorted = clients.map((client) => client.connectionId).sort()
  const first = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?limit=2`, bearer(ops)))
  const lastOnFirstPage = clients.find((client) => client.connectionId === sorted[1])
  if (lastOnFirstPage === undefined) throw new Error('unreachable')
  const gone = closed(lastOnFirstPage.socket)
  lastOnFirstPage.socket.close()
  await gone
  await waitFor(() => node.app.realtime.connections().length === 3, 'the socket to leave')
  const second = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?limit=2&cursor=${first.next_cursor}`, bearer(ops)))
  t.strictSame(second.connections.map((entry: { connection_id: string }) => entry.connection_id), sorted.slice(2), 'nothing skipped, nothing repeated')
  t.equal(second.count, 3)
  t.equal(second.next_cursor, null)
})

t.test('cluster: one listing across nodes, ordered by node then connection, paginated', async (t) => {
  const [a, b] = await startNodes(t, 2, { diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  const ops = ADMIN_TOKEN
  const onA = []
  const onB = []
  for (const user of ['c1', 'c2', 'c3']) onA.push(await openClient(t, a, a, user))
  for (const user of ['c4', 'c5']) onB.push(await openClient(t, a, b, user))
  await waitFor(async () => (await a.app.realtime.presence.connections()).length === 5, 'five entries in presence')
  const expected = [
    ...onA.map((client) => client.connectionId).sort().map((id) => `node-0/${id}`),
    ...onB.map((client) => client.connectionId).sort().map((id) => `node-1/${id}`)
  ]
  for (const node of [a, b]) {
    const pages = await walk(t, node.httpBase, ops, 'limit=2')
    t.strictSame(pages.map((page) => page.connections.length), [2, 2, 1])
    t.strictSame(pages.flatMap((page) => page.connections.map((entry: { node_id: string, connection_id: string }) => `${entry.node_id}/${entry.connection_id}`)), expected)
    t.strictSame(Object.keys(pages[0].connections[0]), ENTRY_KEYS)
  }
  const filtered = assertOk(t, await http(`${b.httpBase}${PREFIX}/connections?user_id=c2`, bearer(ops)))
  t.equal(filtered.count, 1)
  t.strictSame(filtered.connections.map((entry: { user_id: string, node_id: string }) => [entry.user_id, entry.node_id]), [['c2', 'node-0']], 'a filter on node-1 finds a user on node-0')
})

t.test('user_id filter', async (t) => {
  const { node, ops } = await start(t)
  await openClient(t, node, node, 'u1')
  const u2 = await openClient(t, node, node, 'u2')
  await openClient(t, node, node, 120045)
  const one = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?user_id=u2`, bearer(ops)))
  t.equal(one.count, 1)
  t.equal(one.next_cursor, null)
  t.strictSame(one.connections.map((entry: { connection_id: string, user_id: string }) => [entry.user_id, entry.connection_id]), [['u2', u2.connectionId]])
  const numeric = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?user_id=120045`, bearer(ops)))
  t.strictSame(numeric.connections.map((entry: { user_id: string }) => entry.user_id), ['120045'])
  t.strictSame(assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?user_id=nobody`, bearer(ops))), { connections: [], count: 0, next_cursor: null })
  t.strictSame(assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?user_id=u`, bearer(ops))).count, 0, 'exact match, not a prefix')
})

t.test('bad queries: cursor, limit, user_id', async (t) => {
  const { node, ops } = await start(t)
  await openClient(t, node, node, 'u1')
  const get = async (query: string): Promise<Awaited<ReturnType<typeof http>>> => await http(`${node.httpBase}${PREFIX}/connections?${query}`, bearer(ops))
  assertError(t, await get('cursor=not-a-cursor'), 400, 'Invalid cursor')
  assertError(t, await get(`cursor=${Buffer.from('{"node":"x"}').toString('base64url')}`), 400, 'Invalid cursor')
  assertError(t, await get(`cursor=${Buffer.from('[1,2]').toString('base64url')}`), 400, 'Invalid cursor')
  assertError(t, await get(`cursor=${Buffer.from('null').toString('base64url')}`), 400, 'Invalid cursor')
  assertError(t, await get('cursor='), 400, 'Invalid cursor')
  assertError(t, await get(`cursor=${'a'.repeat(513)}`), 400, 'querystring/cursor must NOT have more than 512 characters')
  assertError(t, await get('limit=0'), 400, 'querystring/limit must be >= 1')
  assertError(t, await get('limit=1001'), 400, 'querystring/limit must be <= 1000')
  assertError(t, await get('limit=-5'), 400, 'querystring/limit must be >= 1')
  assertError(t, await get('limit=2.5'), 400, 'querystring/limit must be integer')
  assertError(t, await get('limit=ten'), 400, 'querystring/limit must be integer')
  assertError(t, await get('user_id='), 400, 'querystring/user_id must NOT have fewer than 1 characters')
  assertError(t, await get(`user_id=${'u'.repeat(129)}`), 400, 'querystring/user_id must NOT have more than 128 characters')
  t.equal(assertOk(t, await get('limit=1000')).count, 1, 'limit 1000 is allowed')
  t.equal(assertOk(t, await get('limit=1')).count, 1, 'limit 1 is allowed')
})

t.test('a cursor that decodes to a JSON string is refused like any cursor the plugin did not write', async (t) => {
  const { node, ops } = await start(t)
  assertError(t, await http(`${node.httpBase}${PREFIX}/connections?cursor=${Buffer.from('"ab"').toString('base64url')}`, bearer(ops)), 400, 'Invalid cursor')
})

t.test('an unknown query parameter is dropped silently (Fastify\'s removeAdditional), not refused', async (t) => {
  const { node, ops } = await start(t)
  await openClient(t, node, node, 'u1')
  await openClient(t, node, node, 'u2')
  const all = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections`, bearer(ops)))
  const typo = await http(`${node.httpBase}${PREFIX}/connections?userid=u1&page=2`, bearer(ops))
  t.equal(typo.status, 200, 'additionalProperties: false + removeAdditional: true removes, does not reject')
  t.strictSame(assertOk(t, typo), all, 'a misspelt filter lists everyone')
})
