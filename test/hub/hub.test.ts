import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import websocket from '@fastify/websocket'
import { startApp } from '../helpers/app.js'
import type { TestApp } from '../helpers/app.js'
import { connect, closed, handshake } from '../helpers/client.js'
import { Inbox } from '../helpers/messages.js'

async function waitFor (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 200 && !condition(); attempt++) await sleep(10)
  if (!condition()) throw new Error('condition not met')
}

t.test('a newer connection of the same user replaces the older one with 4500', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
  const older = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  const olderClosed = closed(older.socket)
  const newer = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => newer.socket.terminate())
  t.same(await olderClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  t.same(app.realtime.connectedUsers(), ['120045'])
  t.equal(app.realtime.connections()[0].connection_id, (newer.first.data as { connection_id: string }).connection_id)
  t.equal(newer.socket.readyState, WebSocket.OPEN)
})

t.test('racing connects of one user on one node settle on exactly one open socket', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const sockets = Array.from({ length: 10 }, () => new WebSocket(`${wsBase}/api/v1/ws?token=${token}`))
  t.teardown(() => sockets.forEach((socket) => socket.terminate()))
  const codes = await Promise.all(sockets.map(async (socket) => await new Promise<number | 'open'>((resolve) => {
    socket.once('close', (code) => resolve(code))
    socket.once('message', () => setTimeout(() => resolve(socket.readyState === WebSocket.OPEN ? 'open' : -1), 300))
  })))
  // A socket replaced within the 300 ms window reports its close code instead.
  const settled = await Promise.all(sockets.map(async (socket, index) =>
    codes[index] === 'open' && socket.readyState !== WebSocket.OPEN ? (await closed(socket).catch(() => ({ code: -1 }))).code : codes[index]))
  t.equal(settled.filter((code) => code === 'open').length, 1, 'one socket stays open')
  t.same(settled.filter((code) => code !== 'open'), Array(9).fill(4500), 'the nine others got 4500')
  t.equal(app.realtime.connections().length, 1)
})

t.test('forceLogout sends MOBILE_USER_FORCE_LOGOUT_EVENT, then closes with 4502', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const numeric = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue(120045, { ttlSeconds: 60 })}`)
  const named = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('user-7', { ttlSeconds: 60 })}`)
  const numericInbox = new Inbox(numeric.socket)
  const namedInbox = new Inbox(named.socket)
  const numericClosed = closed(numeric.socket)
  const namedClosed = closed(named.socket)
  await app.realtime.forceLogout('120045')
  await app.realtime.forceLogout('user-7', { reason: 'password changed', is_force_logout: false })
  t.same(await numericClosed, { code: 4502, reason: 'Forced logout' })
  t.same(await namedClosed, { code: 4502, reason: 'Forced logout' })
  t.same(numericInbox.messages, [{ event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', channel: 'mobile.force.logout', data: { mobile_user_id: 120045, is_force_logout: true } }])
  t.same(namedInbox.messages, [{ event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', channel: 'mobile.force.logout', data: { reason: 'password changed', mobile_user_id: 'user-7', is_force_logout: true } }])
  await app.realtime.forceLogout('nobody-here')
  t.same(app.realtime.connectedUsers(), [])
})

t.test('disconnect closes with the given code; bad codes and reasons are refused', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const first = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('a', { ttlSeconds: 60 })}`)
  const firstClosed = closed(first.socket)
  await app.realtime.disconnect('a', { code: 4100, reason: 'maintenance' })
  t.same(await firstClosed, { code: 4100, reason: 'maintenance' })
  const second = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('b', { ttlSeconds: 60 })}`)
  const secondClosed = closed(second.socket)
  await app.realtime.disconnect('b')
  t.same(await secondClosed, { code: 1000, reason: '' })
  await waitFor(() => app.realtime.connections().length === 0 && Object.keys(app.realtime.stats().closes).length === 2)
  for (const code of [1001, 3000, 3999, 5000, 4000.5]) {
    await t.rejects(app.realtime.disconnect('b', { code }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: /"code"/ }, String(code))
  }
  await t.rejects(app.realtime.disconnect('b', { code: 4000, reason: 'x'.repeat(124) }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: /"reason"/ })
  await t.rejects(app.realtime.disconnect('', { code: 4000 }), { code: 'FST_REALTIME_INVALID_ARGUMENT', message: /"userId"/ })
  t.same(app.realtime.stats().closes, { 1000: 1, 4100: 1 })
})

t.test('tokens.revoke closes every open socket of that token with 4501, and only those', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const revoked = await app.realtime.tokens.issue('a', { ttlSeconds: 60 })
  const kept = await app.realtime.tokens.issue('b', { ttlSeconds: 60 })
  const victim = await connect(`${wsBase}/api/v1/ws?token=${revoked}`)
  const other = await connect(`${wsBase}/api/v1/ws?token=${kept}`)
  t.teardown(() => other.socket.terminate())
  const victimClosed = closed(victim.socket)
  await app.realtime.tokens.revoke(revoked)
  t.same(await victimClosed, { code: 4501, reason: 'Access token revoked' })
  t.equal(other.socket.readyState, WebSocket.OPEN)
  t.same(app.realtime.connectedUsers(), ['b'])
  const again = await handshake(`${wsBase}/api/v1/ws?token=${revoked}`)
  t.equal(again.kind === 'rejected' && again.status, 401)
})

t.test('a token that expires while connected closes the socket with 4005', async (t) => {
  // Valid when resolved (whatever the millisecond), expired at the next whole second.
  const { app, wsBase } = await startApp({ tokens: { resolver: () => ({ userId: 'short', expiresAt: Math.floor(Date.now() / 1000) + 1 }) } })
  t.teardown(() => app.close())
  const { socket } = await connect(`${wsBase}/api/v1/ws?token=t`)
  t.same(await closed(socket), { code: 4005, reason: 'Access token expired' })
  await waitFor(() => app.realtime.stats().closes[4005] === 1)
  t.same(app.realtime.stats().closes, { 4005: 1 })
})

t.test('heartbeat: pings every interval, terminates a socket that missed the previous pong', async (t) => {
  const { app, wsBase } = await startApp({ heartbeat: { intervalMs: 50 } })
  t.teardown(() => app.close())
  const lively = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('lively', { ttlSeconds: 60 })}`)
  t.teardown(() => lively.socket.terminate())
  let pings = 0
  lively.socket.on('ping', () => pings++)
  const mute = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('mute', { ttlSeconds: 60 })}`, { autoPong: false })
  t.equal((await closed(mute.socket)).code, 1006, 'the mute socket is terminated, not closed politely')
  await waitFor(() => app.realtime.stats().closes[1006] === 1)
  await waitFor(() => pings >= 3)
  t.equal(lively.socket.readyState, WebSocket.OPEN, 'the socket that answers stays')
  const [entry] = app.realtime.connections()
  t.equal(entry.user_id, 'lively')
  t.ok(Date.parse(entry.last_pong_at) > Date.parse(entry.connected_at), 'its last pong is recorded')
  t.same(app.realtime.stats().closes, { 1006: 1 })
})

t.test('a slow consumer is cut off (4001 recorded) and memory stays bounded; others keep receiving', async (t) => {
  const { app, wsBase } = await startApp({ limits: { maxBufferedBytes: 64 * 1024 } })
  t.teardown(() => app.close())
  const slow = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('slow', { ttlSeconds: 60 })}`)
  const fast = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('fast', { ttlSeconds: 60 })}`)
  t.teardown(() => fast.socket.terminate())
  const fastInbox = new Inbox(fast.socket)
  slow.socket.pause()
  const slowClosed = closed(slow.socket)
  const blob = 'x'.repeat(8 * 1024)
  let sent = 0
  while (app.realtime.stats().slow_consumer_cuts === 0 && sent < 10_000) {
    await app.realtime.publish('settings', 'bulk', { blob, n: sent++ })
    // Let the reading client (in this same process) keep up.
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.realtime.stats().slow_consumer_cuts, 1)
  t.same(app.realtime.connectedUsers(), ['fast'], 'the slow socket left the registry at once')
  slow.socket.resume()
  t.equal((await slowClosed).code, 1006, 'terminated without a close handshake')
  await waitFor(() => app.realtime.stats().closes[4001] === 1)
  await fastInbox.until(sent)
  t.same(fastInbox.messages.map((message) => message.data.n), Array.from({ length: sent }, (_, index) => index), 'the fast one got every event in order')
  t.equal(app.realtime.stats().closes[4001], 1)
})

t.test('a large fan-out is sliced across ticks and keeps every socket in publish order', async (t) => {
  const { app, wsBase } = await startApp({ limits: { fanoutSliceSize: 3, maxConnectionsPerIp: 0 } })
  t.teardown(() => app.close())
  const clients = await Promise.all(Array.from({ length: 8 }, async (_, index) =>
    await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue(`user-${index}`, { ttlSeconds: 60 })}`)))
  t.teardown(() => clients.forEach((client) => client.socket.terminate()))
  const inboxes = clients.map((client) => new Inbox(client.socket))
  // user-0 also subscribes to a user channel: its events interleave with the sliced fan-out.
  clients[0].socket.send(JSON.stringify({ event: 'subscribe', channel: 'kyc.events' }))
  await inboxes[0].until(1)
  let immediates = 0
  const counter = setInterval(() => immediates++, 0)
  for (let n = 0; n < 5; n++) {
    await app.realtime.publish('settings', 'tick', { n })
    await app.realtime.publish('kyc.events', 'KYC', { n }, { userId: 'user-0' })
  }
  await Promise.all(inboxes.map(async (inbox, index) => await inbox.until(index === 0 ? 11 : 5)))
  clearInterval(counter)
  t.same(inboxes[0].messages.slice(1).map((message) => `${message.event}:${message.data.n}`),
    ['tick:0', 'KYC:0', 'tick:1', 'KYC:1', 'tick:2', 'KYC:2', 'tick:3', 'KYC:3', 'tick:4', 'KYC:4'])
  for (const inbox of inboxes.slice(1)) t.same(inbox.messages.map((message) => message.data.n), [0, 1, 2, 3, 4])
  t.ok(immediates > 0, 'timers ran while the fan-out was in progress')
})

t.test('app.close() sends 1001 to every socket and terminates stragglers at the deadline', async (t) => {
  const { app, wsBase } = await startApp({ shutdownTimeoutMs: 200 })
  const polite = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('polite', { ttlSeconds: 60 })}`)
  const deaf = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('deaf', { ttlSeconds: 60 })}`)
  deaf.socket.pause()
  const politeClosed = closed(polite.socket)
  const deafClosed = closed(deaf.socket)
  // The deaf client reads nothing, so only termination at the deadline lets close() finish.
  await app.close()
  t.same(await politeClosed, { code: 1001, reason: 'Server shutting down' })
  t.equal(deaf.socket.readyState, WebSocket.OPEN, 'the deaf client has not seen anything yet')
  deaf.socket.resume()
  await deafClosed
  t.equal(deaf.socket.readyState, WebSocket.CLOSED)
  t.same(app.realtime.stats().closes, { 1001: 2 })
})

t.test('a forced logout issued during a sliced fan-out waits for it: event order, then 4502', async (t) => {
  const { app, wsBase } = await startApp({ limits: { fanoutSliceSize: 2, maxConnectionsPerIp: 0 } })
  t.teardown(() => app.close())
  const clients = await Promise.all(Array.from({ length: 5 }, async (_, index) =>
    await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue(`user-${index}`, { ttlSeconds: 60 })}`)))
  t.teardown(() => clients.forEach((client) => client.socket.terminate()))
  const last = clients[4]
  const inbox = new Inbox(last.socket)
  const lastClosed = closed(last.socket)
  await app.realtime.publish('settings', 'tick', { n: 1 })
  await app.realtime.forceLogout('user-4')
  // Queued behind the same fan-out: the first close wins, the second finds the socket closing.
  await app.realtime.disconnect('user-4', { code: 4100 })
  t.same(await lastClosed, { code: 4502, reason: 'Forced logout' })
  t.same(inbox.messages.map((message) => message.event), ['tick', 'MOBILE_USER_FORCE_LOGOUT_EVENT'])
})

t.test('nothing is written to a socket that is already closing', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const serverSockets: WebSocket[] = []
  app.websocketServer.on('connection', (socket: WebSocket) => serverSockets.push(socket))
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  const inbox = new Inbox(client.socket)
  const clientClosed = closed(client.socket)
  // Closed behind the gateway's back: it still holds the connection, but the socket is CLOSING.
  serverSockets[0].close(4000, 'behind the back')
  const before = app.realtime.stats().messages_out
  await app.realtime.publish('settings', 'late', {})
  t.equal(app.realtime.stats().messages_out, before)
  t.same(await clientClosed, { code: 4000, reason: 'behind the back' })
  t.same(inbox.messages, [])
})

t.test('large events (64 KiB and more) are framed correctly, small and medium too', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  t.teardown(() => client.socket.terminate())
  const inbox = new Inbox(client.socket)
  const sizes = [0, 100, 126, 65_535, 70_000, 300_000]
  for (const size of sizes) await app.realtime.publish('settings', 'sized', { blob: 'y'.repeat(size) })
  t.same((await inbox.until(sizes.length)).map((message) => message.data.blob.length), sizes)
})

t.test('a global publish with no subscriber on this node counts as undelivered', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  await app.realtime.publish('settings', 'nobody', {})
  t.equal(app.realtime.stats().undelivered, 1)
})

t.test('a socket whose handshake was in flight when the drain began is closed with 1001', async (t) => {
  let release: () => void = () => {}
  const tokenChecked = new Promise<void>((resolve) => { release = resolve })
  let asked: () => void = () => {}
  const resolverCalled = new Promise<void>((resolve) => { asked = resolve })
  // The token lookup is held until the drain has begun (this hook runs after the plugin's).
  const { app, wsBase } = await startApp({
    tokens: {
      resolver: async () => {
        asked()
        await tokenChecked
        return { userId: 'late', expiresAt: Math.floor(Date.now() / 1000) + 60 }
      }
    }
  }, {}, (app) => app.addHook('preClose', async () => release()))
  const client = new WebSocket(`${wsBase}/api/v1/ws?token=t`)
  const clientClosed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)))
  await resolverCalled
  await app.close()
  t.equal(await clientClosed, 1001)
  await waitFor(() => app.realtime.stats().closes[1001] === 1)
})

t.test('connection ids are the server\'s own, even when clients send the same x-request-id', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const headers = { 'x-request-id': 'same-forwarded-id-0001' }
  const a = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('a', { ttlSeconds: 60 })}`, { headers })
  const b = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('b', { ttlSeconds: 60 })}`, { headers })
  t.teardown(() => { a.socket.terminate(); b.socket.terminate() })
  const ids = [a, b].map((client) => (client.first.data as { connection_id: string }).connection_id)
  t.match(ids[0], /^[0-9a-f]{16}$/)
  t.not(ids[0], ids[1])
  t.same(app.realtime.connections().map((entry) => entry.connection_id).sort(), [...ids].sort())
})

t.test('a token revoked behind the plugin\'s back closes its socket with 4501 at the next recheck; an outage closes nothing', async (t) => {
  const states = new Map<string, 'live' | 'revoked' | 'down'>([['kept', 'live'], ['gone', 'live'], ['flaky', 'live']])
  const expiresAt = Math.floor(Date.now() / 1000) + 60
  const { app, wsBase } = await startApp({
    tokens: {
      recheckIntervalMs: 50,
      resolver: async (token) => {
        const state = states.get(token)
        if (state === 'down') throw new Error('store down')
        return state === 'live' ? { userId: token, expiresAt } : null
      }
    }
  })
  t.teardown(() => app.close())
  const [kept, gone, flaky] = await Promise.all(['kept', 'gone', 'flaky'].map(async (token) => await connect(`${wsBase}/api/v1/ws?token=${token}`)))
  t.teardown(() => { kept.socket.terminate(); flaky.socket.terminate() })
  const goneClosed = closed(gone.socket)
  states.set('gone', 'revoked')
  states.set('flaky', 'down')
  t.same(await goneClosed, { code: 4501, reason: 'Access token revoked' })
  // A few more sweeps: the socket whose store is down stays, as does the live one.
  await sleep(200)
  t.equal(kept.socket.readyState, WebSocket.OPEN)
  t.equal(flaky.socket.readyState, WebSocket.OPEN)
})

t.test('recheckIntervalMs: 0 turns the recheck off', async (t) => {
  let answer: { userId: string, expiresAt: number } | null = { userId: 'u', expiresAt: Math.floor(Date.now() / 1000) + 60 }
  const { app, wsBase } = await startApp({ heartbeat: { intervalMs: 50 }, tokens: { recheckIntervalMs: 0, resolver: async () => answer } })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=t`)
  t.teardown(() => client.socket.terminate())
  answer = null
  await sleep(200)
  t.equal(client.socket.readyState, WebSocket.OPEN)
})

t.test('a slow token store never gets overlapping rechecks', async (t) => {
  let inFlight = 0
  let maxInFlight = 0
  let calls = 0
  const expiresAt = Math.floor(Date.now() / 1000) + 60
  const { app, wsBase } = await startApp({
    tokens: {
      recheckIntervalMs: 10,
      resolver: async () => {
        calls++
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        // The handshake's own lookup is quick; rechecks take many intervals.
        if (calls > 1) await sleep(80)
        inFlight--
        return { userId: 'slow', expiresAt }
      }
    }
  })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=t`)
  t.teardown(() => client.socket.terminate())
  await sleep(300)
  t.ok(calls >= 3, `rechecks ran (${calls})`)
  t.equal(maxInFlight, 1)
})

t.test('events to one socket within a tick leave in one write, and permessage-deflate is off', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const transports: Array<{ _write: Function, _writev: Function }> = []
  app.websocketServer.on('connection', (_socket: WebSocket, request: { socket: { _write: Function, _writev: Function } }) => transports.push(request.socket))
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`, { perMessageDeflate: true })
  t.teardown(() => client.socket.terminate())
  t.equal(client.socket.extensions, '', 'no extension negotiated although the client offered permessage-deflate')
  const inbox = new Inbox(client.socket)
  const transport = transports[0] as unknown as { _write: (...args: unknown[]) => void, _writev: (...args: unknown[]) => void }
  const calls: string[] = []
  const write = transport._write.bind(transport)
  const writev = transport._writev.bind(transport)
  transport._write = (...args) => { calls.push('write'); write(...args) }
  transport._writev = (...args) => { calls.push(`writev:${(args[0] as unknown[]).length}`); writev(...args) }
  // Ten publishes in one tick.
  await Promise.all(Array.from({ length: 10 }, async (_, n) => await app.realtime.publish('settings', 'tick', { n })))
  await inbox.until(10)
  t.same(calls, ['write'], 'one write carrying the ten frames')
})

/** The replies to two messages that arrive in one TCP chunk with the client's close frame, and what the server counted. */
async function replyBesideClose (app: TestApp['app'], wsBase: string, replies = 2): Promise<{ messages: string[], dropped: number, sent: number }> {
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  const messages: string[] = []
  client.socket.on('message', (data) => messages.push(JSON.parse(String(data)).data.code))
  const before = app.realtime.stats()
  // One TCP write, so the server reads the message and the close frame in one chunk: `ws`
  // starts its close handshake in the very turn the reply is written.
  const tcp = (client.socket as unknown as { _socket: { cork: () => void, uncork: () => void } })._socket
  tcp.cork()
  for (let n = 0; n < replies; n++) client.socket.send(`not json ${n}`)
  client.socket.close(1000)
  tcp.uncork()
  await closed(client.socket)
  await waitFor(() => app.realtime.connections().length === 0)
  const after = app.realtime.stats()
  return { messages, dropped: after.dropped - before.dropped, sent: after.messages_out - before.messages_out }
}

t.test('replies written in the turn the peer\'s close frame arrives go out ahead of the close frame ws answers with', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  t.strictSame(await replyBesideClose(app, wsBase), { messages: ['INVALID_MESSAGE', 'INVALID_MESSAGE'], dropped: 0, sent: 2 })
})

t.test('sockets of a ws server registered before the plugin: such replies are dropped and counted, never written after the close frame', async (t) => {
  const { app, wsBase } = await startApp({}, {}, () => {}, async (app) => { await app.register(websocket) })
  t.teardown(() => app.close())
  t.strictSame(await replyBesideClose(app, wsBase), { messages: [], dropped: 2, sent: 0 })
  t.strictSame(await replyBesideClose(app, wsBase, 1), { messages: [], dropped: 1, sent: 0 }, 'one frame, kept as it is')
})

t.test('sockets of a ws server registered before the plugin: a forced logout\'s event still goes ahead of its close frame', async (t) => {
  const { app, wsBase } = await startApp({}, {}, () => {}, async (app) => { await app.register(websocket) })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  const inbox = new Inbox(client.socket)
  const closing = closed(client.socket)
  await app.realtime.forceLogout('u1')
  t.same(await closing, { code: 4502, reason: 'Forced logout' })
  t.same(inbox.messages.map((message) => message.event), ['MOBILE_USER_FORCE_LOGOUT_EVENT'])
})
