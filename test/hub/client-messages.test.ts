import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket, { type ClientOptions } from 'ws'
import realtime, { type RealtimeOptions } from '../../lib/index.js'
import { startApp } from '../helpers/app.js'
import { connect, closed } from '../helpers/client.js'

type Json = any

/**
 * Every message a client socket receives from the moment it is attached,
 * parsed; `next(n)` takes the next `n` in arrival order. Waiting for more
 * than arrive before the socket closes rejects, so a test never hangs on a
 * reply that is not coming.
 */
class Inbox {
  readonly #queue: Json[] = []
  #waiter: { count: number, resolve: (messages: Json[]) => void, reject: (error: Error) => void } | undefined
  #quiet: { resolve: () => void, reject: (error: Error) => void } | undefined
  #closed: string | undefined

  constructor (socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      this.#queue.push(isBinary ? { binary: data } : JSON.parse(data.toString()))
      this.#settle()
    })
    socket.on('close', (code) => {
      this.#closed = `socket closed with ${code}`
      this.#settle()
    })
  }

  /** Resolves with the next `count` messages. */
  async next (count = 1): Promise<Json[]> {
    if (this.#waiter !== undefined) throw new Error('one next() at a time')
    return await new Promise((resolve, reject) => {
      this.#waiter = { count, resolve, reject }
      this.#settle()
    })
  }

  /** Resolves once the socket closes with nothing (more) received; rejects as soon as a message arrives instead. */
  async nothingUntilClose (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#quiet = { resolve, reject }
      this.#settle()
    })
  }

  /** Resolves with the next message. */
  async one (): Promise<Json> {
    const [message] = await this.next(1)
    return message
  }

  #settle (): void {
    const quiet = this.#quiet
    if (quiet !== undefined && this.#queue.length > 0) {
      this.#quiet = undefined
      quiet.reject(new Error(`expected the socket to close, got ${JSON.stringify(this.#queue)}`))
    } else if (quiet !== undefined && this.#closed !== undefined) {
      this.#quiet = undefined
      quiet.resolve()
    }
    const waiter = this.#waiter
    if (waiter === undefined) return
    if (this.#queue.length >= waiter.count) {
      this.#waiter = undefined
      waiter.resolve(this.#queue.splice(0, waiter.count))
    } else if (this.#closed !== undefined) {
      this.#waiter = undefined
      waiter.reject(new Error(`${this.#closed} after ${this.#queue.length} of ${waiter.count} messages: ${JSON.stringify(this.#queue)}`))
    }
  }
}

interface Client {
  socket: WebSocket
  inbox: Inbox
  token: string
  connected: Json
  send: (message: unknown) => void
}

/**
 * The close code `client` sees (via `closing`, from `closed()` set up before
 * the frame that triggers it), failing at once if a reply comes instead.
 */
async function closeCode (client: Client, closing: Promise<{ code: number }>): Promise<number> {
  const [, { code }] = await Promise.all([client.inbox.nothingUntilClose(), closing])
  return code
}

interface Harness {
  app: FastifyInstance
  open: (userId: string, options?: ClientOptions, ttlSeconds?: number) => Promise<Client>
}

/** A fresh app; its client sockets are terminated before it closes. */
async function harness (t: Test, options: RealtimeOptions = {}, build?: () => Promise<{ app: FastifyInstance, wsBase: string }>): Promise<Harness> {
  const { app, wsBase } = build === undefined ? await startApp(options) : await build()
  const sockets: WebSocket[] = []
  t.teardown(async () => {
    for (const socket of sockets) socket.terminate()
    await app.close()
  })
  return {
    app,
    async open (userId, clientOptions = {}, ttlSeconds = 60) {
      const token = await app.realtime.tokens.issue(userId, { ttlSeconds })
      const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`, clientOptions)
      sockets.push(socket)
      return {
        socket,
        inbox: new Inbox(socket),
        token,
        connected: first,
        send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message))
      }
    }
  }
}

const errorReply = (code: string, message: string, channel: string | null = null): Json => ({ event: 'error', channel, data: { code, message } })
const subscribed = (channel: string, subscriptions: string[]): Json => ({ event: 'subscribed', channel, data: { subscriptions } })
const unsubscribed = (channel: string, subscriptions: string[]): Json => ({ event: 'unsubscribed', channel, data: { subscriptions } })

/** A pong: its timestamp is the server's clock (a number near ours), the rest exact. */
function assertPong (t: Test, message: Json): void {
  t.equal(typeof message?.data?.timestamp, 'number', 'pong carries a numeric timestamp')
  t.ok(Number.isInteger(message.data.timestamp) && Math.abs(message.data.timestamp - Date.now()) < 60_000, 'the timestamp is unix milliseconds')
  t.strictSame({ ...message, data: { ...message.data, timestamp: 0 } }, { event: 'pong', channel: null, data: { timestamp: 0 } })
  t.strictSame(Object.keys(message), ['event', 'channel', 'data'])
}

/**
 * Proves nothing else is queued for `client`: a ping is answered after
 * everything sent to it before, so the next message must be the pong.
 */
async function assertNothingElse (t: Test, client: Client): Promise<void> {
  client.send({ event: 'ping' })
  assertPong(t, await client.inbox.one())
}

t.test('connected, then subscribe / unsubscribe, both idempotent', async (t) => {
  const { open } = await harness(t)
  const a = await open('120045')
  t.equal(typeof a.connected.data.connection_id, 'string')
  t.strictSame(a.connected, {
    event: 'connected',
    channel: null,
    data: { connection_id: a.connected.data.connection_id, user_id: '120045', subscriptions: ['settings'], heartbeat_interval_ms: 30000, expires_at: a.connected.data.expires_at }
  })
  const expiresIn = a.connected.data.expires_at - Date.now() / 1000
  t.ok(expiresIn > 50 && expiresIn <= 61, 'expires_at: the token\'s expiry in unix seconds (issued for 60 s, rounded up to a whole second)')

  a.send({ event: 'subscribe', channel: 'notification.events' })
  t.strictSame(await a.inbox.one(), subscribed('notification.events', ['settings', 'notification.events']))
  a.send({ event: 'subscribe', channel: 'notification.events' })
  t.strictSame(await a.inbox.one(), subscribed('notification.events', ['settings', 'notification.events']), 'subscribing twice: same reply, no duplicate')
  a.send({ event: 'subscribe', channel: 'kyc.events', id: 'client-side-id' })
  t.strictSame(await a.inbox.one(), subscribed('kyc.events', ['settings', 'notification.events', 'kyc.events']), 'extra properties are tolerated')

  a.send({ event: 'unsubscribe', channel: 'notification.events' })
  t.strictSame(await a.inbox.one(), unsubscribed('notification.events', ['settings', 'kyc.events']))
  a.send({ event: 'unsubscribe', channel: 'notification.events' })
  t.strictSame(await a.inbox.one(), unsubscribed('notification.events', ['settings', 'kyc.events']), 'unsubscribing twice is idempotent')
  a.send({ event: 'unsubscribe', channel: 'card.events' })
  t.strictSame(await a.inbox.one(), unsubscribed('card.events', ['settings', 'kyc.events']), 'unsubscribing a channel never subscribed is idempotent')
})

t.test('unsubscribing from settings stops settings events for that socket only', async (t) => {
  const { app, open } = await harness(t)
  const a = await open('a')
  const b = await open('b')
  const settingsEvent = { event: 'withdrawal_settings_updated', channel: 'settings', data: { type: 'withdrawal_settings_updated' } }

  a.send({ event: 'unsubscribe', channel: 'settings' })
  t.strictSame(await a.inbox.one(), unsubscribed('settings', []))
  await app.realtime.publish('settings', 'withdrawal_settings_updated', { type: 'withdrawal_settings_updated' })
  t.strictSame(await b.inbox.one(), settingsEvent, 'the other socket still gets it')
  await assertNothingElse(t, a)

  a.send({ event: 'subscribe', channel: 'settings' })
  t.strictSame(await a.inbox.one(), subscribed('settings', ['settings']))
  await app.realtime.publish('settings', 'withdrawal_settings_updated', { type: 'withdrawal_settings_updated' })
  t.strictSame(await a.inbox.one(), settingsEvent, 'subscribed again, it gets settings events again')
  t.strictSame(await b.inbox.one(), settingsEvent)
})

t.test('ping gets pong, extra properties tolerated', async (t) => {
  const { open } = await harness(t)
  const a = await open('u1')
  a.send({ event: 'ping' })
  assertPong(t, await a.inbox.one())
  a.send({ event: 'ping', id: 42, channel: 'kyc.events' })
  assertPong(t, await a.inbox.one())
})

t.test('history off: a well-formed ack is ignored (no reply, not counted), a malformed one is INVALID_MESSAGE', async (t) => {
  const { app, open } = await harness(t)
  const a = await open('u1')
  a.send({ event: 'ack', channel: 'kyc.events', id: 'abc:1' })
  a.send({ event: 'ping' })
  assertPong(t, await a.inbox.one())
  t.equal(app.realtime.stats().acks, 0)
  a.send({ event: 'ack', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', '"ack" needs an "id" string', 'kyc.events'))
})

t.test('INVALID_MESSAGE: not JSON, binary frame, wrong shape', async (t) => {
  const { open } = await harness(t)
  const a = await open('u1')
  a.send('hello')
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  a.socket.send(Buffer.from('{"event":"ping"}'), { binary: true })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Messages must be JSON text frames'))
  a.send('[{"event":"ping"}]')
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message must be a JSON object'))
  a.send({ channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message needs an "event" string', 'kyc.events'))
  a.send({ event: 'subscribe' })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', '"subscribe" needs a "channel" string of 1 to 128 characters'))
  a.send({ event: 'unsubscribe', channel: 'c'.repeat(129) })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', '"unsubscribe" needs a "channel" string of 1 to 128 characters'))
  await assertNothingElse(t, a)
  t.equal(a.socket.readyState, WebSocket.OPEN, 'six bad messages (under the default limit of 10) close nothing')
})

t.test('UNKNOWN_EVENT and UNKNOWN_CHANNEL, channel echoed', async (t) => {
  const { app, open } = await harness(t)
  const a = await open('u1')
  a.send({ event: 'publish', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_EVENT', 'Unknown event; expected subscribe, unsubscribe, ping, ack or refresh', 'kyc.events'))
  a.send({ event: 'PING' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_EVENT', 'Unknown event; expected subscribe, unsubscribe, ping, ack or refresh'))
  a.send({ event: 'subscribe', channel: 'nope.events' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', 'nope.events'))
  a.send({ event: 'unsubscribe', channel: 'nope.events' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', 'nope.events'))
  a.send({ event: 'subscribe', channel: '__proto__' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', '__proto__'))
  a.send({ event: 'subscribe', channel: 'toString' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', 'toString'))
  await assertNothingElse(t, a)
  t.strictSame(app.realtime.connections()[0].subscriptions, ['settings'], 'no refused channel was added')
})

t.test('TOO_MANY_SUBSCRIPTIONS at limits.maxSubscriptions, settings included', async (t) => {
  const { open } = await harness(t, { limits: { maxSubscriptions: 2 } })
  const a = await open('u1')
  a.send({ event: 'subscribe', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), subscribed('kyc.events', ['settings', 'kyc.events']))
  a.send({ event: 'subscribe', channel: 'card.events' })
  t.strictSame(await a.inbox.one(), errorReply('TOO_MANY_SUBSCRIPTIONS', 'At most 2 subscriptions per connection', 'card.events'))
  a.send({ event: 'subscribe', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), subscribed('kyc.events', ['settings', 'kyc.events']), 'a channel already held is not refused at the cap')
  a.send({ event: 'subscribe', channel: 'nope.events' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', 'nope.events'), 'an unknown channel is reported as such, even at the cap')
  a.send({ event: 'unsubscribe', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), unsubscribed('kyc.events', ['settings']))
  a.send({ event: 'subscribe', channel: 'card.events' })
  t.strictSame(await a.inbox.one(), subscribed('card.events', ['settings', 'card.events']), 'room again after an unsubscribe')
})

t.test('RATE_LIMITED replies, then 4006 at the floodCloseAfter-th refusal in a row', async (t) => {
  const { app, open } = await harness(t, { limits: { messageBurst: 3, messagesPerSecond: 0.001, floodCloseAfter: 5 } })
  const a = await open('u1')
  for (let i = 0; i < 3; i++) a.send({ event: 'ping' })
  const pongs = await a.inbox.next(3)
  for (const pong of pongs) assertPong(t, pong)

  const closing = closed(a.socket)
  for (let i = 0; i < 5; i++) a.send({ event: 'ping' })
  const refusals = await a.inbox.next(4)
  t.strictSame(refusals, Array(4).fill(errorReply('RATE_LIMITED', 'Too many messages; slow down')), 'refusals 1 to 4 are answered')
  t.equal(await closeCode(a, closing), 4006, 'the 5th refusal in a row closes the socket')
  t.strictSame(app.realtime.connections(), [], 'the connection left the registry')
})

t.test('an accepted message ends a run of refusals', async (t) => {
  // One token per 100 ms: two frames sent together meet an empty bucket, a frame 150 ms later a full one.
  const { open } = await harness(t, { limits: { messageBurst: 1, messagesPerSecond: 10, floodCloseAfter: 2 } })
  const a = await open('u1')
  const rateLimited = errorReply('RATE_LIMITED', 'Too many messages; slow down')
  a.send({ event: 'ping' })
  a.send({ event: 'ping' })
  const [first, second] = await a.inbox.next(2)
  assertPong(t, first)
  t.strictSame(second, rateLimited, 'refusal 1 of a run')
  await sleep(150)
  a.send({ event: 'ping' })
  a.send({ event: 'ping' })
  const [third, fourth] = await a.inbox.next(2)
  assertPong(t, third)
  t.strictSame(fourth, rateLimited, 'refusal 1 of a new run, not 2 of the old one')
  t.equal(a.socket.readyState, WebSocket.OPEN)
})

t.test('RATE_LIMITED refusals do not count as protocol violations', async (t) => {
  const { app, open } = await harness(t, { limits: { maxInvalidMessages: 1, messageBurst: 1, messagesPerSecond: 0.001, floodCloseAfter: 10 } })
  const a = await open('u1')
  a.send({ event: 'ping' })
  assertPong(t, await a.inbox.one())
  for (let i = 0; i < 4; i++) a.send('not json')
  t.strictSame(await a.inbox.next(4), Array(4).fill(errorReply('RATE_LIMITED', 'Too many messages; slow down')))
  t.equal(a.socket.readyState, WebSocket.OPEN)
  t.equal(app.realtime.connections().length, 1)
})

t.test('4503 after maxInvalidMessages invalid messages; TOO_MANY_SUBSCRIPTIONS does not count', async (t) => {
  const { app, open } = await harness(t, { limits: { maxInvalidMessages: 3, maxSubscriptions: 2 } })
  const a = await open('u1')
  a.send('{')
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  a.send({ event: 'nope', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_EVENT', 'Unknown event; expected subscribe, unsubscribe, ping, ack or refresh', 'kyc.events'))
  a.send({ event: 'subscribe', channel: 'kyc.events' })
  t.strictSame(await a.inbox.one(), subscribed('kyc.events', ['settings', 'kyc.events']))
  for (let i = 0; i < 3; i++) a.send({ event: 'subscribe', channel: 'card.events' })
  t.strictSame(await a.inbox.next(3), Array(3).fill(errorReply('TOO_MANY_SUBSCRIPTIONS', 'At most 2 subscriptions per connection', 'card.events')))
  await assertNothingElse(t, a)
  t.equal(a.socket.readyState, WebSocket.OPEN, 'two invalid messages and three refused subscriptions: still open')

  const closing = closed(a.socket)
  a.send({ event: 'subscribe', channel: 'nope.events' })
  a.send({ event: 'ping' }) // must go unanswered: the socket is closing
  t.strictSame(await a.inbox.one(), errorReply('UNKNOWN_CHANNEL', 'Unknown channel', 'nope.events'), 'the third invalid message is answered first')
  t.equal(await closeCode(a, closing), 4503)
  t.strictSame(app.realtime.connections(), [])
})

t.test('the invalid-message count starts over once its window has passed', async (t) => {
  const { open } = await harness(t, { limits: { maxInvalidMessages: 2, invalidWindowMs: 300, messagesPerSecond: 0.001 } })
  const a = await open('u1', {}, 3600)
  a.send('not json')
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  await new Promise((resolve) => setTimeout(resolve, 400))
  a.send('not json')
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  await assertNothingElse(t, a)
  t.equal(a.socket.readyState, WebSocket.OPEN, 'the second invalid message opened a new window instead of closing')
  const closing = closed(a.socket)
  a.send('not json')
  a.send({ event: 'ping' })
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  t.equal(await closeCode(a, closing), 4503, 'two in the new window')
})

t.test('payload limit: the default 16 KiB, enforced by ws', async (t) => {
  const { open } = await harness(t)
  const a = await open('u1')
  a.send('x'.repeat(16 * 1024))
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'), 'exactly 16 KiB is allowed')
  const closing = closed(a.socket)
  a.send('x'.repeat(16 * 1024 + 1))
  t.equal(await closeCode(a, closing), 1009)
})

t.test('payload limit: limits.maxPayloadBytes', async (t) => {
  const { open } = await harness(t, { limits: { maxPayloadBytes: 1024 } })
  const a = await open('u1')
  a.send('x'.repeat(1000))
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'))
  a.send('x'.repeat(1024))
  t.strictSame(await a.inbox.one(), errorReply('INVALID_MESSAGE', 'Message is not valid JSON'), '1024 bytes is allowed')
  const closing = closed(a.socket)
  a.send('x'.repeat(1025))
  t.equal(await closeCode(a, closing), 1009)

  const b = await open('u2')
  const bClosing = closed(b.socket)
  b.send({ event: 'ping' })
  b.send('x'.repeat(1025))
  assertPong(t, await b.inbox.one())
  t.equal(await closeCode(b, bClosing), 1009, 'a reply queued just before the oversized frame still goes out first')
})

t.test('payload limit when the user registered @fastify/websocket first: the plugin enforces it', async (t) => {
  const { app, open } = await harness(t, {}, async () => {
    const app = Fastify()
    await app.register(websocket)
    await app.register(realtime, { limits: { maxPayloadBytes: 1024 } })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = app.server.address() as { port: number }
    return { app, wsBase: `ws://127.0.0.1:${port}` }
  })
  t.equal(app.websocketServer.options.maxPayload, 100 * 1024 * 1024, 'ws keeps its own 100 MiB limit')

  const a = await open('u1')
  const ping = JSON.stringify({ event: 'ping', pad: '' })
  a.send(JSON.stringify({ event: 'ping', pad: 'p'.repeat(1024 - ping.length) }))
  assertPong(t, await a.inbox.one())
  const atLimit = closed(a.socket)
  a.send(`{"event":"ping","pad":"${'p'.repeat(1025 - ping.length)}"}`)
  t.equal(await closeCode(a, atLimit), 1009, 'one byte over')

  const b = await open('u2')
  const closing = closed(b.socket)
  b.send('x'.repeat(2000))
  t.equal(await closeCode(b, closing), 1009)
})

t.test('user scoping: user channels reach only their user, only if subscribed', async (t) => {
  const { app, open } = await harness(t)
  const a = await open('120045')
  const b = await open('120046')
  for (const client of [a, b]) {
    client.send({ event: 'subscribe', channel: 'kyc.events' })
    t.strictSame(await client.inbox.one(), subscribed('kyc.events', ['settings', 'kyc.events']))
  }

  const kyc = { kyc_status: 'APPROVED', reviewed_at: 1740748800, reasons: [] }
  await app.realtime.publish('kyc.events', 'KYC_APPROVED', kyc, { userId: '120045' })
  t.strictSame(await a.inbox.one(), { event: 'KYC_APPROVED', channel: 'kyc.events', data: kyc })
  await assertNothingElse(t, b)

  await app.realtime.publish('kyc.events', 'KYC_REJECTED', { n: 1 }, { userId: 120046 })
  t.strictSame(await b.inbox.one(), { event: 'KYC_REJECTED', channel: 'kyc.events', data: { n: 1 } }, 'a numeric user id is normalized')
  await assertNothingElse(t, a)

  await app.realtime.publish('card.events', 'CARD_FROZEN', { card_id: 'c1' }, { userId: '120045' })
  await assertNothingElse(t, a)

  await app.realtime.publish('mobile.force.logout', 'X', {}, { userId: '120045' })
  t.strictSame(await a.inbox.one(), { event: 'X', channel: 'mobile.force.logout', data: {} }, 'delivered without a subscription')
  await assertNothingElse(t, b)
  t.equal(a.socket.readyState, WebSocket.OPEN, 'publishing on the channel does not close the socket')
})

t.test('stats(): exact counters for a scripted exchange', async (t) => {
  const { app, open } = await harness(t)
  t.strictSame(app.realtime.stats(), { connects: 0, messages_in: 0, messages_out: 0, publishes: 0, undelivered: 0, slow_consumer_cuts: 0, dropped: 0, redis_reconnects: 0, acks: 0, ack_timeouts: 0, replayed: 0, closes: {}, recoveries: {}, handshakes_refused: {} })
  const a = await open('u1')
  a.send({ event: 'ping' })
  a.send({ event: 'subscribe', channel: 'kyc.events' })
  a.send('garbage')
  const replies = await a.inbox.next(3)
  t.strictSame(replies.map((reply) => reply.event), ['pong', 'subscribed', 'error'])

  await app.realtime.publish('kyc.events', 'KYC_APPROVED', { ok: true }, { userId: 'u1' })
  await app.realtime.publish('kyc.events', 'KYC_APPROVED', { ok: true }, { userId: 'nobody' })
  await app.realtime.publish('card.events', 'CARD_FROZEN', { ok: true }, { userId: 'u1' })
  await app.realtime.publish('settings', 'withdrawal_settings_updated', { type: 'withdrawal_settings_updated' })
  t.strictSame((await a.inbox.next(2)).map((event) => event.event), ['KYC_APPROVED', 'withdrawal_settings_updated'])

  t.strictSame(app.realtime.stats(), {
    connects: 1,
    messages_in: 3,
    messages_out: 6, // connected, pong, subscribed, error, KYC_APPROVED, settings
    publishes: 4,
    undelivered: 2, // a user with no socket; a user not subscribed
    slow_consumer_cuts: 0,
    dropped: 0,
    redis_reconnects: 0,
    acks: 0,
    ack_timeouts: 0,
    replayed: 0,
    closes: {},
    recoveries: {},
    handshakes_refused: {}
  })
})

t.test('connections(): the diagnostic view of a socket, never its token', async (t) => {
  const { app, open } = await harness(t)
  const a = await open('120045', { headers: { 'user-agent': 'test-agent/1.0' } })
  a.send({ event: 'subscribe', channel: 'kyc.events' })
  a.send({ event: 'ping' })
  a.send('not json')
  a.socket.send(Buffer.from([1, 2, 3]), { binary: true })
  await a.inbox.next(4)

  const list = app.realtime.connections()
  t.equal(list.length, 1)
  const [entry] = list
  t.strictSame(Object.keys(entry).sort(), [
    'buffered_bytes', 'connected_at', 'connection_id', 'last_pong_at', 'messages_in', 'messages_out',
    'origin', 'remote_address', 'subscriptions', 'user_agent', 'user_id'
  ])
  const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
  t.match(entry.connected_at, iso)
  t.match(entry.last_pong_at, iso)
  t.strictSame(entry, {
    connection_id: a.connected.data.connection_id,
    user_id: '120045',
    connected_at: entry.connected_at,
    remote_address: '127.0.0.1',
    user_agent: 'test-agent/1.0',
    origin: null,
    subscriptions: ['settings', 'kyc.events'],
    last_pong_at: entry.last_pong_at,
    messages_in: 4,
    messages_out: 5,
    buffered_bytes: 0
  })
  const text = JSON.stringify(list)
  t.notOk(text.includes(a.token), 'no token')
  t.notOk(text.includes(createHash('sha256').update(a.token).digest('hex')), 'no token hash either')
})
