import { createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { isConnected, isDisconnected, watchClient } from '../helpers/sdk.js'

interface Peer { socket: WebSocket, url: string, received: any[], send: (message: unknown) => void, next: () => Promise<any> }

/** A scripted gateway: each connection is handed to the test, which plays the server's side of the protocol. */
async function scripted (t: Test): Promise<{ url: string, peers: Peer[], peer: (index: number) => Promise<Peer> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(async () => {
    for (const client of server.clients) client.terminate()
    await new Promise((resolve) => server.close(resolve))
  })
  const peers: Peer[] = []
  let arrived = (): void => {}
  server.on('connection', (socket, request) => {
    const received: any[] = []
    let waiting: ((message: any) => void) | undefined
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString())
      if (waiting !== undefined) {
        const resolve = waiting
        waiting = undefined
        resolve(message)
      } else received.push(message)
    })
    peers.push({
      socket,
      url: request.url!,
      received,
      send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
      next: async () => received.length > 0 ? received.shift() : await new Promise((resolve) => { waiting = resolve })
    })
    arrived()
  })
  const peer = async (index: number): Promise<Peer> => {
    while (peers.length <= index) await new Promise<void>((resolve) => { arrived = resolve })
    return peers[index]
  }
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, peers, peer }
}

const connected = (data: Record<string, unknown> = {}): unknown =>
  ({ event: 'connected', channel: null, data: { connection_id: 'c1', user_id: 'u1', subscriptions: ['settings'], heartbeat_interval_ms: 30000, ...data } })

t.test('the server\'s resync with history on: the client reconnects with recover (after a jittered delay); without positions it raises resync per channel', async (t) => {
  const gateway = await scripted(t)
  const { next, resyncs, until } = watchClient(t, { url: gateway.url, token: 'tok' })
  const first = await gateway.peer(0)
  first.send(connected({ positions: { settings: 'E:1' } }))
  await next(isConnected, 'connected')
  first.send({ event: 'resync', channel: null, data: { reason: 'broker_reconnected' } })
  const second = await gateway.peer(1)
  t.equal(second.url, '/ws?token=tok&recover=settings%40E%3A1')
  second.send(connected({ positions: { settings: 'E:1' }, recovery: { settings: { recovered: false, reason: 'epoch_changed' } } }))
  await until(() => resyncs.length === 1, 'the resync')
  t.strictSame(resyncs, [{ channel: 'settings', reason: 'epoch_changed' }])
  t.equal(first.socket.readyState === WebSocket.CLOSING || first.socket.readyState === WebSocket.CLOSED, true, 'the old socket was closed')

  const plain = await scripted(t)
  const off = watchClient(t, { url: plain.url, token: 'tok', channels: ['kyc.events'] })
  const only = await plain.peer(0)
  only.send(connected({ subscriptions: ['settings', 'kyc.events'] }))
  await off.next(isConnected, 'connected')
  only.send({ event: 'resync', channel: null, data: { reason: 'broker_reconnected' } })
  await off.until(() => off.resyncs.length === 2, 'resyncs')
  t.strictSame(off.resyncs, [{ channel: 'kyc.events', reason: 'broker_reconnected' }, { channel: 'settings', reason: 'broker_reconnected' }])
  t.equal(plain.peers.length, 1, 'no reconnect')
})

t.test('replies settle the request they answer, in order: an error without a channel (RATE_LIMITED) is the subscribe\'s, tried again', async (t) => {
  const gateway = await scripted(t)
  const { client, next } = watchClient(t, { url: gateway.url, token: 'tok' })
  const peer = await gateway.peer(0)
  peer.send(connected())
  await next(isConnected, 'connected')
  const limited = client.subscribe('kyc.events')
  const unknown = client.subscribe('nope.events')
  const ping = client.ping()
  t.strictSame([await peer.next(), await peer.next(), await peer.next()], [
    { event: 'subscribe', channel: 'kyc.events' }, { event: 'subscribe', channel: 'nope.events' }, { event: 'ping' }
  ])
  peer.send({ event: 'error', channel: null, data: { code: 'RATE_LIMITED', message: 'Too many messages' } })
  peer.send({ event: 'error', channel: 'nope.events', data: { code: 'UNKNOWN_CHANNEL', message: 'Unknown channel' } })
  peer.send({ event: 'pong', channel: null, data: { timestamp: 42 } })
  await t.rejects(unknown, { name: 'RealtimeClientError', code: 'UNKNOWN_CHANNEL', message: 'Unknown channel' }, 'a refusal for good rejects')
  t.strictSame(await ping, { timestamp: 42 })
  t.strictSame(await peer.next(), { event: 'subscribe', channel: 'kyc.events' }, 'the rate-limited subscribe is sent again after a backoff delay')
  peer.send({ event: 'subscribed', channel: 'kyc.events', data: { subscriptions: ['settings', 'kyc.events'] } })
  await limited
  await client.subscribe('kyc.events') // the socket has it: no message
  const limitedPing = client.ping()
  t.strictSame(await peer.next(), { event: 'ping' })
  peer.send({ event: 'error', channel: null, data: { code: 'RATE_LIMITED', message: 'Too many messages' } })
  await t.rejects(limitedPing, { code: 'RATE_LIMITED' }, 'a ping is not tried again')
  peer.send({ event: 'error', channel: null, data: { code: 'INVALID_MESSAGE', message: 'not asked for' } })
  peer.send('not json')
  peer.socket.send(Buffer.from('{"event":"pong"}'), { binary: true })
  peer.send({ event: 'SOMETHING', channel: null, data: {} })
  // Nothing is in flight: an error answers no request (an ack's), the rest is not for the client. Let them arrive first.
  await new Promise((resolve) => setTimeout(resolve, 30))

  const unsubscribing = client.unsubscribe('settings')
  t.strictSame(await peer.next(), { event: 'unsubscribe', channel: 'settings' })
  peer.send({ event: 'unsubscribed', channel: 'settings', data: { subscriptions: [] } })
  await unsubscribing
  await client.unsubscribe('settings') // the socket does not have it: at once, no message
  const pending = client.unsubscribe('kyc.events')
  const pinging = client.ping()
  t.strictSame([await peer.next(), await peer.next()], [{ event: 'unsubscribe', channel: 'kyc.events' }, { event: 'ping' }])
  peer.socket.terminate()
  await next(isDisconnected, 'dropped')
  await pending // the next socket will not have it either
  await t.rejects(pinging, { code: 'DISCONNECTED' }, 'a ping in flight fails with the socket')
  await t.rejects(client.ping(), { code: 'DISCONNECTED' }, 'no ping while disconnected')
  const subscribing = client.subscribe('card.events')
  client.close()
  await t.rejects(subscribing, { code: 'CLOSED' })
  await t.rejects(client.subscribe('card.events'), { code: 'CLOSED' })
})

t.test('a handler that throws leaves its event unprocessed (no position, no ack); off() stops a handler', async (t) => {
  const gateway = await scripted(t)
  const { client, next } = watchClient(t, { url: gateway.url, token: 'tok', channels: ['kyc.events'] })
  const peer = await gateway.peer(0)
  peer.send(connected({ subscriptions: ['settings', 'kyc.events'], positions: { settings: 'E:0', 'kyc.events': 'E:0' } }))
  await next(isConnected, 'connected')
  const seen: string[] = []
  const off = client.on('kyc.events', (event) => {
    seen.push(event.id!)
    if (event.data.fail === true) throw new Error('handler failed')
  })
  // Rethrown from a microtask: uncaught, as a throwing listener is; caught here to look at it.
  const errors: unknown[] = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.once('uncaughtException', (error) => errors.push(error))
  t.teardown(() => { for (const listener of listeners) process.on('uncaughtException', listener) })
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: { fail: true }, id: 'E:1' })
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.match(errors, [{ message: 'handler failed' }])
  t.equal(peer.received.length, 0, 'no ack for an event whose handler threw')
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:2' })
  t.strictSame(await peer.next(), { event: 'ack', channel: 'kyc.events', id: 'E:2' })
  off()
  off()
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:3' })
  t.strictSame(await peer.next(), { event: 'ack', channel: 'kyc.events', id: 'E:3' }, 'without handlers an event is processed at once')
  t.strictSame(seen, ['E:1', 'E:2'])
  peer.send({ event: 'CARD_READY', channel: 'card.events', data: {}, id: 'E:4' })
  t.strictSame(await peer.next(), { event: 'ack', channel: 'card.events', id: 'E:4' }, 'an event of a channel not asked for (force logout) is acked, not tracked')
  peer.socket.terminate()
  const second = await gateway.peer(1)
  t.equal(second.url, '/ws?token=tok&recover=settings%40E%3A0%2Ckyc.events%40E%3A3')
})

t.test('a live event of another epoch than the channel\'s position raises resync (epoch_changed): the stream lost its history, and what came before the event may never have arrived', async (t) => {
  const gateway = await scripted(t)
  const { client, next, resyncs } = watchClient(t, { url: gateway.url, token: 'tok', channels: ['kyc.events'] })
  const peer = await gateway.peer(0)
  peer.send(connected({ subscriptions: ['settings', 'kyc.events'], positions: { settings: 'E:4', 'kyc.events': 'E:4' } }))
  await next(isConnected, 'connected')
  const seen: string[] = []
  client.on('kyc.events', (event) => { seen.push(event.id!) })
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:5' })
  // Redis restarted empty: the stream begins a new life, and its first events were published before this node listened again.
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'F:3' })
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'F:4' })
  t.strictSame(await peer.next(), { event: 'ack', channel: 'kyc.events', id: 'F:4' })
  t.strictSame(seen, ['E:5', 'F:3', 'F:4'], 'the events are handled')
  t.strictSame(resyncs, [{ channel: 'kyc.events', reason: 'epoch_changed' }], 'once, at the first event of the new epoch')
  t.strictSame(client.positions(), { settings: 'E:4', 'kyc.events': 'F:4' })
  // An epoch that begins with the old one is another all the same.
  peer.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'F0:1' })
  t.strictSame(await peer.next(), { event: 'ack', channel: 'kyc.events', id: 'F0:1' })
  t.strictSame(resyncs, [{ channel: 'kyc.events', reason: 'epoch_changed' }, { channel: 'kyc.events', reason: 'epoch_changed' }])
})

t.test('after the server\'s resync, live events of a recovered channel wait for the reconnect: the recover starts where the gap may begin, and the replay brings them in order, once', async (t) => {
  const gateway = await scripted(t)
  const { client, next } = watchClient(t, { url: gateway.url, token: 'tok', channels: ['kyc.events'] })
  const first = await gateway.peer(0)
  first.send(connected({ subscriptions: ['settings', 'kyc.events'], positions: { settings: 'E:1', 'kyc.events': 'E:6' } }))
  await next(isConnected, 'connected')
  const seen: string[] = []
  client.on('kyc.events', (event) => { seen.push(event.id!) })
  // The node's subscriber lost its link: E:7 was published meanwhile and never reached the socket; E:8 arrives live before the jittered reconnect.
  first.send({ event: 'resync', channel: null, data: { reason: 'subscriber_reconnected' } })
  first.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:8' })
  const second = await gateway.peer(1)
  t.equal(second.url, '/ws?token=tok&recover=settings%40E%3A1%2Ckyc.events%40E%3A6', 'recovers from before the gap, not after E:8')
  t.strictSame(first.received, [], 'nothing acked on the old socket meanwhile')
  second.send(connected({ subscriptions: ['settings', 'kyc.events'], positions: { settings: 'E:1', 'kyc.events': 'E:8' }, recovery: { settings: { recovered: true, replayed: 0 }, 'kyc.events': { recovered: true, replayed: 2 } } }))
  await next(isConnected, 'connected again')
  second.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:7' })
  second.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:8' })
  t.strictSame(await second.next(), { event: 'ack', channel: 'kyc.events', id: 'E:8' })
  t.strictSame(seen, ['E:7', 'E:8'], 'in stream order, none twice')
  t.strictSame(client.positions(), { settings: 'E:1', 'kyc.events': 'E:8' })
})

t.test('a refresh whose getToken() outlives the socket is not sent on the next one; acks wait 100 ms by default', async (t) => {
  const gateway = await scripted(t)
  let give = (_token: string): void => {}
  let asked = 0
  const getToken = async (): Promise<string> => {
    if (asked++ === 0) return 'first'
    return await new Promise<string>((resolve) => { give = resolve })
  }
  const { next, until } = watchClient(t, { url: gateway.url, getToken, ackDelayMs: undefined, channels: ['kyc.events'] })
  const first = await gateway.peer(0)
  first.send(connected({ expires_at: Math.floor(Date.now() / 1000) }))
  await next(isConnected, 'connected')
  await until(() => asked === 2, 'the refresh asked for a token')
  first.socket.terminate()
  const second = await gateway.peer(1)
  second.send(connected({ subscriptions: ['settings', 'kyc.events'] }))
  await next(isConnected, 'reconnected')
  give('late')
  second.send({ event: 'KYC_UPDATED', channel: 'kyc.events', data: {}, id: 'E:1' })
  t.strictSame(await second.next(), { event: 'ack', channel: 'kyc.events', id: 'E:1' }, 'the first message on the new socket is the ack, no refresh')
  t.equal(second.url, '/ws?token=first', 'the socket reconnected with the token it had')
})

t.test('connect timeout: a server that opens but never says connected, and one that never answers the upgrade (nor the GET)', async (t) => {
  const gateway = await scripted(t)
  const { next } = watchClient(t, { url: gateway.url, token: 'tok', connectTimeoutMs: 50 })
  const silent = await gateway.peer(0)
  t.strictSame(await next(isDisconnected, 'timed out'), { state: 'disconnected', code: 1006, reason: 'Connect timeout', delayMs: 5 })
  await gateway.peer(1)
  t.not(silent.socket.readyState, WebSocket.OPEN, 'the silent socket was closed')

  const held: Socket[] = []
  const mute = createServer((socket) => { held.push(socket.on('error', () => {})) }).listen(0, '127.0.0.1')
  await new Promise((resolve) => mute.once('listening', resolve))
  t.teardown(() => {
    for (const socket of held) socket.destroy()
    mute.close()
  })
  const url = `ws://127.0.0.1:${(mute.address() as AddressInfo).port}/ws`
  const stuck = watchClient(t, { url, token: 'tok', connectTimeoutMs: 50 })
  t.strictSame(await stuck.next(isDisconnected, 'timed out'), { state: 'disconnected', code: 1006, reason: 'Connect timeout', delayMs: 5 },
    'the GET got no answer either: the socket reason stays')
})

t.test('a socket that drops while a resync waits for its jittered reconnect: one reconnect, not two', async (t) => {
  const gateway = await scripted(t)
  const { next } = watchClient(t, { url: gateway.url, token: 'tok', backoff: { minMs: 100, maxMs: 100 } })
  const first = await gateway.peer(0)
  first.send(connected({ positions: { settings: 'E:1' } }))
  await next(isConnected, 'connected')
  first.send({ event: 'resync', channel: null, data: { reason: 'broker_reconnected' } })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(first.socket.readyState, WebSocket.OPEN, 'the socket stays until the jittered reconnect')
  first.socket.terminate()
  t.strictSame(await next(isDisconnected, 'dropped'), { state: 'disconnected', code: 1006, reason: '', delayMs: 100 })
  await gateway.peer(1)
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal(gateway.peers.length, 2)
})

t.test('pingIntervalMs: a silent link is probed with a ping, and given up when that goes unanswered; an answering one stays', async (t) => {
  const gateway = await scripted(t)
  const { next, states } = watchClient(t, { url: gateway.url, token: 'tok', pingIntervalMs: 30 })
  const peer = await gateway.peer(0)
  peer.send(connected())
  await next(isConnected, 'connected')
  t.strictSame(await peer.next(), { event: 'ping' }, 'probed after an interval of silence')
  t.strictSame(await next(isDisconnected, 'given up'), { state: 'disconnected', code: 1006, reason: 'No pong', delayMs: 5 })
  const answering = await gateway.peer(1)
  answering.send(connected())
  await next(isConnected, 'reconnected')
  for (let i = 0; i < 3; i++) {
    t.strictSame(await answering.next(), { event: 'ping' })
    answering.send({ event: 'pong', channel: null, data: { timestamp: i } })
  }
  t.equal(states.filter(isDisconnected).length, 1, 'answered pings keep the socket')
})

t.test('two resyncs within the jitter: one reconnect, whichever delay is shorter; none left to close the next socket (or find none)', async (t) => {
  const randoms = (): () => number => {
    const values = [0.9, 0] // the first resync's delay 95 ms, the second's 50 ms
    return () => values.shift() ?? 0
  }
  const backoff = { minMs: 50, maxMs: 200 }
  const gateway = await scripted(t)
  const { next } = watchClient(t, { url: gateway.url, token: 'tok', backoff, random: randoms() })
  const first = await gateway.peer(0)
  first.send(connected({ positions: { settings: 'E:1' } }))
  await next(isConnected, 'connected')
  first.send({ event: 'resync', channel: null, data: { reason: 'broker_reconnected' } })
  first.send({ event: 'resync', channel: null, data: { reason: 'subscriber_reconnected' } })
  const second = await gateway.peer(1)
  second.send(connected({ positions: { settings: 'E:1' }, recovery: { settings: { recovered: true, replayed: 0 } } }))
  await next(isConnected, 'reconnected')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(gateway.peers.length, 2, 'two connections')
  t.equal(second.socket.readyState, WebSocket.OPEN, 'the new socket stays')

  // The new socket drops before the longer delay is over: the reconnect after it is the only one.
  const dropping = await scripted(t)
  const other = watchClient(t, { url: dropping.url, token: 'tok', backoff, random: randoms() })
  const one = await dropping.peer(0)
  one.send(connected({ positions: { settings: 'E:1' } }))
  await other.next(isConnected, 'connected')
  one.send({ event: 'resync', channel: null, data: { reason: 'broker_reconnected' } })
  one.send({ event: 'resync', channel: null, data: { reason: 'subscriber_reconnected' } })
  ;(await dropping.peer(1)).socket.terminate()
  await other.next(isDisconnected, 'dropped')
  const third = await dropping.peer(2)
  third.send(connected({ positions: { settings: 'E:1' } }))
  await other.next(isConnected, 'reconnected')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(dropping.peers.length, 3, 'the reconnect after the drop, no other')
  t.equal(other.client.state.state, 'connected')
})

t.test('a binary frame is not a message: a binary pong leaves the pending ping to the text one', async (t) => {
  const gateway = await scripted(t)
  const { client, next } = watchClient(t, { url: gateway.url, token: 'tok' })
  const peer = await gateway.peer(0)
  peer.send(connected())
  await next(isConnected, 'connected')
  const ping = client.ping()
  t.strictSame(await peer.next(), { event: 'ping' })
  peer.socket.send(Buffer.from('{"event":"pong","channel":null,"data":{"timestamp":1}}'), { binary: true })
  peer.send({ event: 'pong', channel: null, data: { timestamp: 2 } })
  t.strictSame(await ping, { timestamp: 2 })
})

t.test('a subscribe refused for good drops the channel\'s position too: it is not recovered on the next connect', async (t) => {
  const gateway = await scripted(t)
  const { client } = watchClient(t, { url: gateway.url, token: 'tok', positions: { settings: 'E:1', 'kyc.events': 'E:2' } })
  const first = await gateway.peer(0)
  t.equal(first.url, '/ws?token=tok&recover=settings%40E%3A1%2Ckyc.events%40E%3A2')
  first.send(connected({ positions: { settings: 'E:1' }, recovery: { settings: { recovered: true, replayed: 0 } } }))
  t.strictSame(await first.next(), { event: 'subscribe', channel: 'kyc.events' })
  first.send({ event: 'error', channel: 'kyc.events', data: { code: 'FORBIDDEN', message: 'Not yours' } })
  const ping = client.ping() // answered after the error: the client has read it
  t.strictSame(await first.next(), { event: 'ping' })
  first.send({ event: 'pong', channel: null, data: { timestamp: 1 } })
  await ping
  t.strictSame(client.positions(), { settings: 'E:1' })
  first.socket.terminate()
  const second = await gateway.peer(1)
  t.equal(second.url, '/ws?token=tok&recover=settings%40E%3A1')
})

t.test('close() from a state listener, or before the first connect: the client stays closed, and nothing connects after', async (t) => {
  const gateway = await scripted(t)
  const { client, next, states } = watchClient(t, { url: gateway.url, token: 'tok' })
  client.onState((state) => { if (state.state === 'disconnected') client.close() })
  const peer = await gateway.peer(0)
  peer.send(connected())
  await next(isConnected, 'connected')
  peer.socket.terminate()
  await next(isDisconnected, 'dropped')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.strictSame(states.map((state) => state.state), ['connecting', 'connected', 'disconnected', 'closed'])
  t.equal(gateway.peers.length, 1, 'no reconnect')

  const early = watchClient(t, { url: gateway.url, token: 'tok' })
  early.client.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.strictSame(early.states.map((state) => state.state), ['closed'])
  t.equal(gateway.peers.length, 1, 'no connect')

  let asked = 0
  const refreshing = watchClient(t, { url: gateway.url, getToken: () => `tok${++asked}` })
  refreshing.client.onState((state) => { if (state.state === 'connected') refreshing.client.close() })
  ;(await gateway.peer(1)).send(connected({ expires_at: Math.floor(Date.now() / 1000) }))
  await refreshing.next((state) => state.state === 'closed', 'closed')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(asked, 1, 'no refresh of the closed client\'s token')
})
