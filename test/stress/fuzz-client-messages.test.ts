// Property test of the client-message path end to end: arbitrary frames on a
// real socket (history on, so `since` and `ack` reach the stores; a refresh
// reaches the token store). test/protocol/client-message.test.ts fuzzes
// parseClientMessage alone; this one checks what the socket gets back: every
// server message is one of README's client-message answers, a frame the
// parser refuses gets exactly its error, nothing closes the socket, and the
// node keeps serving.
import t from 'tap'
import fc from 'fast-check'
import WebSocket from 'ws'
import { startApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { Inbox } from '../helpers/messages.js'
import { parseClientMessage } from '../../lib/protocol/client-message.js'

const PREFIX = '/api/v1/ws'
const RUNS = 3000

/** README "Client messages": what the server answers a client message with. */
const ANSWER_EVENTS = new Set(['subscribed', 'unsubscribed', 'pong', 'refreshed', 'error'])
const ERROR_CODES = new Set(['INVALID_MESSAGE', 'UNKNOWN_EVENT', 'UNKNOWN_CHANNEL', 'RATE_LIMITED', 'TOO_MANY_SUBSCRIPTIONS', 'INVALID_TOKEN', 'TOKEN_STORE_UNAVAILABLE', 'HISTORY_UNAVAILABLE'])

function undocumented (message: any): string | undefined {
  if (!ANSWER_EVENTS.has(message.event)) return 'event'
  if (!(message.channel === null || (typeof message.channel === 'string' && message.channel.length <= 128))) return 'channel'
  if (message.event === 'error' && (!ERROR_CODES.has(message.data?.code) || typeof message.data?.message !== 'string')) return 'error code'
  return undefined
}

t.test('property: any frame gets documented answers only, a refused one exactly its error, and the socket stays open', async (t) => {
  const { app, wsBase } = await startApp({
    history: {},
    limits: { messagesPerSecond: 1e6, messageBurst: 1e6, floodCloseAfter: 1e6, maxInvalidMessages: 1e9, acksPerSecond: 1e6 }
  })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('fuzz', { ttlSeconds: 600 })
  const other = await app.realtime.tokens.issue('someone-else', { ttlSeconds: 600 })
  const { socket, first } = await connect(`${wsBase}${PREFIX}?token=${token}`)
  t.teardown(() => socket.terminate())
  t.equal(first.event, 'connected')
  const position = (first.data as { positions: Record<string, string> }).positions.settings
  const inbox = new Inbox(socket)

  const event = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'ping', 'ack', 'refresh') },
    { weight: 1, arbitrary: fc.constantFrom('Subscribe', 'PING', '', '__proto__', 'constructor', 'toString', 'connected', 'publish') },
    { weight: 1, arbitrary: fc.jsonValue() }
  )
  const channel = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('settings', 'kyc.events', 'card.events', 'payment_order.events', 'mobile.force.logout') },
    { weight: 1, arbitrary: fc.constantFrom('', 'nope', '__proto__', 'c'.repeat(128), 'c'.repeat(129), '😀'.repeat(64), '😀'.repeat(65)) },
    { weight: 1, arbitrary: fc.oneof(fc.string(), fc.jsonValue()) }
  )
  const id = fc.oneof(fc.constant(position), fc.constantFrom('0', `${position}0`, 'x:1', '-1', 'a'.repeat(129), ''), fc.string({ maxLength: 20 }), fc.jsonValue())
  const tokenField = fc.oneof(fc.constantFrom(token, other, '', 'x'.repeat(4097)), fc.string({ maxLength: 40 }), fc.jsonValue())
  const message = fc.record({ event, channel, since: id, id, token: tokenField, extra: fc.jsonValue() }, { requiredKeys: ['event'] })
  const frame = fc.oneof(
    { weight: 6, arbitrary: message.map((value) => ({ data: JSON.stringify(value), binary: false })) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((value) => ({ data: value, binary: false })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ data: Buffer.from(bytes), binary: true })) },
    { weight: 1, arbitrary: message.map((value) => ({ data: Buffer.from(JSON.stringify(value)), binary: true })) }
  )

  const problems: string[] = []
  let pongs = 0
  let seen = 0
  await fc.assert(fc.asyncProperty(frame, async ({ data, binary }) => {
    const parsed = parseClientMessage(Buffer.isBuffer(data) ? data : Buffer.from(data), binary)
    socket.send(data, { binary })
    // A ping behind it: once its pong is in, every synchronous answer to the frame is too.
    socket.send('{"event":"ping"}')
    pongs += parsed.ok && parsed.message.event === 'ping' ? 2 : 1
    while (inbox.messages.filter((message) => message.event === 'pong').length < pongs) await inbox.until(inbox.messages.length + 1)
    const window = inbox.messages.slice(seen)
    seen = inbox.messages.length
    for (const answer of window) {
      const what = undocumented(answer)
      if (what !== undefined) problems.push(`${what}: ${JSON.stringify(answer)} for ${JSON.stringify(String(data))}`)
    }
    if (!parsed.ok && !window.some((answer) => answer.event === 'error' && answer.data.code === parsed.code && answer.channel === parsed.channel)) {
      problems.push(`no ${parsed.code} error for ${JSON.stringify(String(data))}: ${JSON.stringify(window)}`)
    }
    if (socket.readyState !== WebSocket.OPEN) throw new Error(`closed after ${JSON.stringify(String(data))}`)
  }), { numRuns: RUNS })

  // Refreshes answer asynchronously: let the last ones in, then check them too.
  // The fuzz may have unsubscribed settings: subscribe it again, for the last check.
  socket.send('{"event":"subscribe","channel":"settings"}')
  while (!inbox.messages.slice(seen).some((answer) => answer.event === 'subscribed' && answer.channel === 'settings')) await inbox.until(inbox.messages.length + 1)
  for (const answer of inbox.messages.slice(seen)) if (undocumented(answer) !== undefined) problems.push(`late: ${JSON.stringify(answer)}`)
  t.strictSame(problems, [], 'every answer documented, every refusal its own error')
  t.equal(socket.readyState, WebSocket.OPEN, 'no frame closed the socket')
  t.equal(app.realtime.connections().length, 1)

  await app.realtime.publish('settings', 'after_fuzz', { ok: true })
  while (!inbox.messages.some((answer) => answer.event === 'after_fuzz')) await inbox.until(inbox.messages.length + 1)
  t.strictSame(inbox.messages.find((answer) => answer.event === 'after_fuzz').data, { ok: true }, 'it still receives events')
})
