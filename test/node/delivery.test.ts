import t from 'tap'
import WebSocket from 'ws'
import { Redis } from 'ioredis'
import { REDIS_URL, uniquePrefix, type TestApp } from '../helpers/app.js'
import { connect, closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'

/**
 * The sockets `node` lists in presence, read through `reader`. A node lists a
 * socket a tenth of a second after it opened, well after its claim ended.
 */
async function listedOn (reader: TestApp, node: TestApp): Promise<number> {
  return (await reader.app.realtime.presence.connections()).filter((entry) => entry.node_id === node.app.realtime.nodeId).length
}

const subscribe = async (socket: WebSocket, inbox: Inbox, channel: string): Promise<void> => {
  const before = inbox.messages.length
  socket.send(JSON.stringify({ event: 'subscribe', channel }))
  await inbox.until(before + 1)
}

t.test('publish on any node reaches the user on any node; settings reaches every socket exactly once', async (t) => {
  const [a, b, c] = await startNodes(t, 3)
  const tokenOnB = await a.app.realtime.tokens.issue('on-b', { ttlSeconds: 60 })
  const tokenOnC = await a.app.realtime.tokens.issue('on-c', { ttlSeconds: 60 })
  const userB = await connect(`${b.wsBase}/api/v1/ws?token=${tokenOnB}`)
  const userC = await connect(`${c.wsBase}/api/v1/ws?token=${tokenOnC}`)
  t.teardown(() => { userB.socket.terminate(); userC.socket.terminate() })
  const inboxB = new Inbox(userB.socket)
  const inboxC = new Inbox(userC.socket)
  await subscribe(userB.socket, inboxB, 'payment_order.events')
  await subscribe(userC.socket, inboxC, 'payment_order.events')
  // The user channel is subscribed once the node has claimed the socket's generation.
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 2, 'presence of both users')

  await a.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-1', status: 'paid' }, { userId: 'on-b' })
  await c.app.realtime.publish('settings', 'withdrawal_settings_updated', { withdrawal_fee_rate: '1.50' })
  await b.app.realtime.publish('payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: 'po-2', status: 'failed' }, { userId: 'on-c' })

  t.same((await inboxB.until(3)).slice(1), [
    { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-1', status: 'paid' } },
    { event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: '1.50' } }
  ])
  t.same((await inboxC.until(3)).slice(1), [
    { event: 'withdrawal_settings_updated', channel: 'settings', data: { withdrawal_fee_rate: '1.50' } },
    { event: 'PAYMENT_ORDER_UPDATED', channel: 'payment_order.events', data: { order_id: 'po-2', status: 'failed' } }
  ])
  // Nothing more arrives (exactly once): a ping's pong is the next message.
  userB.socket.send('{"event":"ping"}')
  userC.socket.send('{"event":"ping"}')
  t.equal((await inboxB.until(4))[3].event, 'pong')
  t.equal((await inboxC.until(4))[3].event, 'pong')
})

t.test('one socket per user across nodes: the newer connection anywhere replaces the older with 4500', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix })
  const token = await a.app.realtime.tokens.issue('roamer', { ttlSeconds: 60 })
  const first = await connect(`${a.wsBase}/api/v1/ws?token=${token}`)
  // The first socket is "older" only once its generation is claimed in Redis.
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  await waitFor(async () => await redis.exists(`${keyPrefix}gen:roamer`) === 1, 'the first socket to claim its generation')
  const firstClosed = closed(first.socket)
  const second = await connect(`${b.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => second.socket.terminate())
  t.same(await firstClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  t.equal(second.socket.readyState, WebSocket.OPEN)
  await waitFor(async () => (await a.app.realtime.presence.connections()).length === 1, 'the old entry to leave presence')
  const [entry] = await b.app.realtime.presence.connections()
  t.equal(entry.node_id, 'node-1')
  t.equal(entry.connection_id, (second.first.data as { connection_id: string }).connection_id)
})

t.test('the first socket of a user announces no takeover; a socket that replaces one open elsewhere announces one', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix })
  const token = await a.app.realtime.tokens.issue('quiet', { ttlSeconds: 60 })
  const listener = new Redis(REDIS_URL)
  t.teardown(() => listener.quit())
  const takeovers: string[] = []
  listener.on('message', (_topic: string, message: string) => { if (message.includes('"takeover"')) takeovers.push(message) })
  await listener.subscribe(`${keyPrefix}u:{quiet}`)
  const first = await connect(`${a.wsBase}/api/v1/ws?token=${token}`)
  await waitFor(async () => await listedOn(a, a) === 1, 'the first socket to be listed')
  t.same(takeovers, [], 'nothing announced: no other socket of the user could be open')
  const firstClosed = closed(first.socket)
  const second = await connect(`${b.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => second.socket.terminate())
  t.same(await firstClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  await waitFor(async () => await listedOn(a, b) === 1, 'the second socket to be listed')
  t.equal(takeovers.length, 1, 'one announcement, from the socket that replaced an open one')
})

t.test('a socket that closes takes its generation back; the newer socket that replaced one keeps its own', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix })
  const token = await a.app.realtime.tokens.issue('leaver', { ttlSeconds: 60 })
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const key = `${keyPrefix}gen:leaver`
  const listed = async (node: TestApp): Promise<number> => await listedOn(a, node)
  const first = await connect(`${a.wsBase}/api/v1/ws?token=${token}`)
  await waitFor(async () => await listed(a) === 1, 'the first socket to be listed')
  const firstClosed = closed(first.socket)
  const second = await connect(`${b.wsBase}/api/v1/ws?token=${token}`)
  t.same(await firstClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  await waitFor(async () => await listed(a) === 0 && await listed(b) === 1, 'the second socket to be listed, the first gone')
  const claimed = await redis.get(key)
  t.ok(claimed !== null, 'the replaced socket left the newer one\'s generation standing')
  const secondClosed = closed(second.socket)
  second.socket.close()
  await secondClosed
  await waitFor(async () => await redis.exists(key) === 0, 'the closed socket to take its generation back')
})

t.test('10 concurrent connects of one user over two nodes settle on exactly one open socket', async (t) => {
  const [a, b] = await startNodes(t, 2)
  const token = await a.app.realtime.tokens.issue('racer', { ttlSeconds: 60 })
  const sockets = Array.from({ length: 10 }, (_, index) => new WebSocket(`${(index % 2 === 0 ? a : b).wsBase}/api/v1/ws?token=${token}`))
  t.teardown(() => sockets.forEach((socket) => socket.terminate()))
  const codes: Array<number | undefined> = Array(10).fill(undefined)
  sockets.forEach((socket, index) => socket.once('close', (code) => { codes[index] = code }))
  await waitFor(() => codes.filter((code) => code !== undefined).length === 9, 'nine sockets to close')
  // Give a wrongly surviving second socket time to show itself, then count.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(codes.filter((code) => code !== undefined), Array(9).fill(4500))
  const open = sockets.filter((socket) => socket.readyState === WebSocket.OPEN)
  t.equal(open.length, 1)
  t.equal(a.app.realtime.connections().length + b.app.realtime.connections().length, 1)
})

t.test('a lost takeover announcement is repaired by the periodic check', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a] = await startNodes(t, 1, { keyPrefix, heartbeat: { intervalMs: 100 } })
  const token = await a.app.realtime.tokens.issue('lost', { ttlSeconds: 60 })
  const client = await connect(`${a.wsBase}/api/v1/ws?token=${token}`)
  const clientClosed = closed(client.socket)
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).includes('lost'))
  // Another node claimed a newer generation and its announcement never arrived.
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const key = `${keyPrefix}gen:lost`
  await redis.set(key, String(Number(await redis.get(key)) + 1000))
  t.same(await clientClosed, { code: 4500, reason: 'Replaced by a newer connection' })
})

t.test('the periodic check stores again the generation of an open socket whose key is gone', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a] = await startNodes(t, 1, { keyPrefix, heartbeat: { intervalMs: 100 } })
  const token = await a.app.realtime.tokens.issue('outlived', { ttlSeconds: 60 })
  const client = await connect(`${a.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => client.socket.terminate())
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const key = `${keyPrefix}gen:outlived`
  await waitFor(async () => await redis.exists(key) === 1, 'the socket to claim its generation')
  const generation = await redis.get(key)
  // As if the key outlived its TTL, or Redis came back empty.
  await redis.del(key)
  await waitFor(async () => await redis.get(key) === generation, 'the generation to be stored again')
  t.equal(client.socket.readyState, WebSocket.OPEN)
})

t.test('revoke, forceLogout and disconnect called on one node act on sockets of another', async (t) => {
  const [a, b] = await startNodes(t, 2)
  const revoked = await a.app.realtime.tokens.issue('r', { ttlSeconds: 60 })
  const r = await connect(`${b.wsBase}/api/v1/ws?token=${revoked}`)
  const f = await connect(`${b.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue(120045, { ttlSeconds: 60 })}`)
  const d = await connect(`${b.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue('d', { ttlSeconds: 60 })}`)
  const fInbox = new Inbox(f.socket)
  const [rClosed, fClosed, dClosed] = [closed(r.socket), closed(f.socket), closed(d.socket)]
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 3, 'presence of the three users')
  await a.app.realtime.tokens.revoke(revoked)
  await a.app.realtime.forceLogout('120045')
  await a.app.realtime.disconnect('d', { code: 4100, reason: 'maintenance' })
  t.same(await rClosed, { code: 4501, reason: 'Access token revoked' })
  t.same(await fClosed, { code: 4502, reason: 'Forced logout' })
  t.same(await dClosed, { code: 4100, reason: 'maintenance' })
  t.same(fInbox.messages, [{ event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', channel: 'mobile.force.logout', data: { mobile_user_id: 120045, is_force_logout: true } }])
})
