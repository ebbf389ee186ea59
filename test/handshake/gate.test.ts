import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../helpers/app.js'
import { handshake, connect, closed, type HandshakeResult } from '../helpers/client.js'
import { Inbox } from '../helpers/messages.js'

const TRACE_ID = /^[0-9a-f]{16}$/

function assertRejected (t: Test, result: HandshakeResult, status: number, message: string): Extract<HandshakeResult, { kind: 'rejected' }> {
  if (result.kind !== 'rejected') throw new Error(`expected HTTP ${status}, the socket opened`)
  t.equal(result.status, status, message)
  t.equal(result.headers['content-type'], 'application/json; charset=utf-8')
  t.same(Object.keys(result.body), ['status_code', 'message', 'trace_id', 'data'])
  t.equal(result.body.status_code, status)
  t.equal(result.body.message, message)
  t.equal(result.body.data, null)
  t.match(result.body.trace_id, TRACE_ID)
  return result
}

async function plainGet (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: any }> {
  const response = await fetch(url, { headers })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

t.test('a valid token opens the socket and the first message is `connected`', async (t) => {
  const { app, wsBase } = await startApp({ heartbeat: { intervalMs: 25000 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue(120045, { ttlSeconds: 60 })
  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => socket.terminate())
  t.equal(first.event, 'connected')
  t.equal(first.channel, null)
  t.match(first.data, { user_id: '120045', subscriptions: ['settings'], heartbeat_interval_ms: 25000 })
})

t.test('enabled: false answers 503 before any other check', async (t) => {
  const { app, wsBase, httpBase } = await startApp({ enabled: false, allowedOrigins: [] })
  t.teardown(() => app.close())
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`, { headers: { origin: 'https://evil.test' } }), 503, 'WebSocket is disabled')
  const get = await plainGet(`${httpBase}/api/v1/ws`)
  t.equal(get.status, 503)
  t.equal(get.body.message, 'WebSocket is disabled')
})

t.test('an upgrade during the drain of app.close() gets 503 Server is shutting down', async (t) => {
  let during: HandshakeResult | undefined
  let outside: unknown
  let token = ''
  let wsBase = ''
  // Registered after the plugin, so it runs once the plugin has begun draining
  // and while the server still accepts connections.
  const started = await startApp({}, {}, (app) => app.addHook('preClose', async () => {
    during = await handshake(`${wsBase}/api/v1/ws?token=${token}`)
    outside = await handshake(`${wsBase}/elsewhere`).catch((error: Error) => error.message)
  }))
  wsBase = started.wsBase
  token = await started.app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  await started.app.close()
  const rejected = assertRejected(t, during as HandshakeResult, 503, 'Server is shutting down')
  t.equal(rejected.headers.connection, 'close')
  t.equal(outside, 'socket hang up', 'an upgrade outside the prefix is dropped, as Node does with no listener')
})

t.test('a plain GET during the drain reaches the gate when Fastify does not short-circuit it', async (t) => {
  let during: Awaited<ReturnType<typeof plainGet>> | undefined
  let httpBase = ''
  const started = await startApp({}, { return503OnClosing: false }, (app) => app.addHook('preClose', async () => {
    during = await plainGet(`${httpBase}/api/v1/ws`, { connection: 'close' })
  }))
  httpBase = started.httpBase
  await started.app.close()
  t.equal(during?.status, 503)
  t.equal(during?.body.message, 'Server is shutting down')
})

t.test('origins: allowed, foreign, missing', async (t) => {
  const { app, wsBase } = await startApp({ allowedOrigins: ['https://app.example.com'] })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const url = `${wsBase}/api/v1/ws?token=${token}`
  assertRejected(t, await handshake(url, { headers: { origin: 'https://app.example.com.evil.test' } }), 403, 'Origin not allowed')
  assertRejected(t, await handshake(url, { headers: { origin: 'null' } }), 403, 'Origin not allowed')
  const fromApp = await connect(url, { headers: { origin: 'https://app.example.com' } })
  fromApp.socket.terminate()
  const native = await connect(url)
  t.equal(native.first.event, 'connected', 'a missing Origin (native app) is allowed by default')
  native.socket.terminate()
})

t.test('allowMissingOrigin: false refuses a handshake without Origin', async (t) => {
  const { app, wsBase } = await startApp({ allowMissingOrigin: false, allowedOrigins: ['*'] })
  t.teardown(() => app.close())
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`), 403, 'Origin not allowed')
})

t.test('tokens: missing, empty, unknown, revoked, expired', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`), 401, 'Missing access token')
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=`), 401, 'Missing access token')
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=nope`), 401, 'Invalid or expired token')
  const revoked = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  await app.realtime.tokens.revoke(revoked)
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=${revoked}`), 401, 'Invalid or expired token')
})

t.test('an expired token (resolver answers a past expiry) is refused', async (t) => {
  const { app, wsBase } = await startApp({ tokens: { resolver: async () => ({ userId: 'u1', expiresAt: Math.floor(Date.now() / 1000) - 1 }) } })
  t.teardown(() => app.close())
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=old`), 401, 'Invalid or expired token')
})

t.test('a token store that throws or hangs answers 503 with Retry-After, never 401', async (t) => {
  let behaviour: 'throw' | 'hang' = 'throw'
  const { app, wsBase } = await startApp({
    tokens: {
      timeoutMs: 200,
      retryAfterSeconds: 2,
      resolver: async () => {
        if (behaviour === 'throw') throw new Error('store down')
        return await new Promise(() => {})
      }
    }
  })
  t.teardown(() => app.close())
  const thrown = assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=abc`), 503, 'Token store unavailable')
  t.equal(thrown.headers['retry-after'], '2')
  behaviour = 'hang'
  const hung = assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=abc`), 503, 'Token store unavailable')
  t.equal(hung.headers['retry-after'], '2')
})

t.test('global connection cap: 503 with Retry-After, slot freed when a socket closes', async (t) => {
  const { app, wsBase } = await startApp({ limits: { maxConnections: 1, retryAfterSeconds: 7 } })
  t.teardown(() => app.close())
  const a = await app.realtime.tokens.issue('a', { ttlSeconds: 60 })
  const b = await app.realtime.tokens.issue('b', { ttlSeconds: 60 })
  const first = await connect(`${wsBase}/api/v1/ws?token=${a}`)
  const full = assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=${b}`), 503, 'Too many connections on this server')
  t.equal(full.headers['retry-after'], '7')
  const gone = closed(first.socket)
  first.socket.close()
  await gone
  // The server sees the TCP close a moment after the client does.
  let again = await handshake(`${wsBase}/api/v1/ws?token=${b}`)
  for (let attempt = 0; again.kind === 'rejected' && attempt < 50; attempt++) {
    await sleep(20)
    again = await handshake(`${wsBase}/api/v1/ws?token=${b}`)
  }
  t.equal(again.kind, 'open')
  if (again.kind === 'open') again.socket.terminate()
})

t.test('per-address cap: 429 with Retry-After', async (t) => {
  const { app, wsBase } = await startApp({ limits: { maxConnectionsPerIp: 1 } })
  t.teardown(() => app.close())
  const a = await app.realtime.tokens.issue('a', { ttlSeconds: 60 })
  const b = await app.realtime.tokens.issue('b', { ttlSeconds: 60 })
  const first = await connect(`${wsBase}/api/v1/ws?token=${a}`)
  t.teardown(() => first.socket.terminate())
  const limited = assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=${b}`), 429, 'Too many connections from this address')
  t.equal(limited.headers['retry-after'], '5')
})

t.test('a plain GET that passes every check gets 426; caps are measured for it too', async (t) => {
  const { app, wsBase, httpBase } = await startApp({ limits: { maxConnections: 1 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const get = await plainGet(`${httpBase}/api/v1/ws?token=${token}`)
  t.equal(get.status, 426)
  t.equal(get.headers.get('upgrade'), 'websocket')
  t.same(Object.keys(get.body), ['status_code', 'message', 'trace_id', 'data'])
  t.equal(get.body.message, 'WebSocket upgrade required')
  t.equal((await plainGet(`${httpBase}/api/v1/ws`)).status, 401, 'the token rows come first')
  const open = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => open.socket.terminate())
  t.equal((await plainGet(`${httpBase}/api/v1/ws?token=${token}`)).status, 503, 'the cap row comes before 426')
})

t.test('the order of the table: the earliest failing row answers', async (t) => {
  const { app, wsBase } = await startApp({ allowedOrigins: ['https://app.example.com'], limits: { maxConnections: 1 } })
  t.teardown(() => app.close())
  // Foreign origin and no token: origin wins.
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`, { headers: { origin: 'https://evil.test' } }), 403, 'Origin not allowed')
  // No token and the server full: the token row wins.
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const open = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => open.socket.terminate())
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`), 401, 'Missing access token')
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=bad`), 401, 'Invalid or expired token')
})

t.test('trace_id is the request id of the log lines; a forwarded x-request-id is honoured', async (t) => {
  const { app, wsBase, logs } = await startApp()
  t.teardown(() => app.close())
  const rejected = assertRejected(t, await handshake(`${wsBase}/api/v1/ws`), 401, 'Missing access token')
  const lines = logs.map((line) => JSON.parse(line)).filter((line) => line.reqId === rejected.body.trace_id)
  t.ok(lines.some((line) => line.msg === 'incoming request'), 'the incoming request line carries the trace id')
  t.ok(lines.some((line) => line.msg === 'fastify-realtime: handshake rejected' && line.statusCode === 401))

  const forwarded = 'lb-7f3a9c2e-4b1d-4e8a'
  const withHeader = await handshake(`${wsBase}/api/v1/ws`, { headers: { 'x-request-id': forwarded } })
  t.equal(withHeader.kind === 'rejected' && withHeader.body.trace_id, forwarded)
  const tooShort = await handshake(`${wsBase}/api/v1/ws`, { headers: { 'x-request-id': 'abc' } })
  t.match(tooShort.kind === 'rejected' && tooShort.body.trace_id, TRACE_ID, 'an id too short to be unique is replaced')
  const hostile = await handshake(`${wsBase}/api/v1/ws`, { headers: { 'x-request-id': 'x'.repeat(20) + '\u0000"}' } }).catch(() => null)
  t.not(hostile?.kind === 'rejected' && hostile.body.trace_id, 'x'.repeat(20) + '\u0000"}')
})

t.test('token sources: Authorization: Bearer when enabled, off by default', async (t) => {
  const off = await startApp()
  t.teardown(() => off.app.close())
  const offToken = await off.app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  assertRejected(t, await handshake(`${off.wsBase}/api/v1/ws`, { headers: { authorization: `Bearer ${offToken}` } }), 401, 'Missing access token')

  const on = await startApp({ tokens: { authorizationHeader: true } })
  t.teardown(() => on.app.close())
  const token = await on.app.realtime.tokens.issue('u2', { ttlSeconds: 60 })
  const opened = await connect(`${on.wsBase}/api/v1/ws`, { headers: { authorization: `Bearer ${token}` } })
  t.equal((opened.first.data as { user_id: string }).user_id, 'u2')
  opened.socket.terminate()
  assertRejected(t, await handshake(`${on.wsBase}/api/v1/ws`, { headers: { authorization: `Basic ${token}` } }), 401, 'Missing access token')
})

t.test('token sources: Sec-WebSocket-Protocol, never echoed back as the subprotocol', async (t) => {
  const { app, wsBase } = await startApp({ tokens: { protocolPrefix: 'bearer.' } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const opened = await connect(`${wsBase}/api/v1/ws`, { protocols: [`bearer.${token}`, 'realtime.v1'] })
  t.equal(opened.protocol, 'realtime.v1')
  t.equal((opened.first.data as { user_id: string }).user_id, 'u1')
  opened.socket.terminate()
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`, { protocols: ['realtime.v1'] }), 401, 'Missing access token')
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`), 401, 'Missing access token')
  const viaQuery = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.equal(viaQuery.protocol, '', 'the query still works with the protocol source on')
  viaQuery.socket.terminate()
})

t.test('the token offered as the only subprotocol is refused before the upgrade, and evicts nobody', async (t) => {
  const { app, wsBase, httpBase } = await startApp({ tokens: { protocolPrefix: 'bearer.' } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const working = await connect(`${wsBase}/api/v1/ws`, { protocols: ['realtime.v1', `bearer.${token}`] })
  t.teardown(() => working.socket.terminate())
  t.equal(working.protocol, 'realtime.v1')
  const inbox = new Inbox(working.socket)
  const closes: number[] = []
  working.socket.on('close', (code) => closes.push(code))

  // A browser fails a 101 that selects no protocol, and retries: each retry is refused before the upgrade.
  for (let retry = 0; retry < 3; retry++) {
    assertRejected(t, await handshake(`${wsBase}/api/v1/ws`, { protocols: [`bearer.${token}`] }), 400, 'Offer a subprotocol besides the access token')
  }
  // Also when the query carried the token.
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=${token}`, { protocols: [`bearer.${token}`] }), 400, 'Offer a subprotocol besides the access token')
  // The checks before it keep their answers.
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws`, { protocols: [`bearer.${token}x`] }), 401, 'Invalid or expired token')
  const plain = await plainGet(`${httpBase}/api/v1/ws`, { 'sec-websocket-protocol': `bearer.${token}` })
  t.equal(plain.status, 426, 'a plain GET still gets 426')

  await app.realtime.publish('settings', 'STILL_THERE', {})
  const [event] = await inbox.until(1)
  t.equal(event.event, 'STILL_THERE', 'the working socket is still open')
  t.same(closes, [], 'and was never closed (no 4500)')
  const { connects, closes: recorded } = app.realtime.stats()
  t.same({ connects, recorded }, { connects: 1, recorded: {} }, 'the refused handshakes were never counted as connections')
})

t.test('query source can be turned off', async (t) => {
  const { app, wsBase } = await startApp({ tokens: { queryParam: false, authorizationHeader: true } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  assertRejected(t, await handshake(`${wsBase}/api/v1/ws?token=${token}`), 401, 'Missing access token')
})

t.test('injectWS goes through the same gate', async (t) => {
  const { app } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u9', { ttlSeconds: 60 })
  await t.rejects(app.injectWS('/api/v1/ws?token=bad'), { message: 'Unexpected server response: 401' })
  let first: Promise<Buffer> | undefined
  // The first message can arrive in the same tick as `open`: listen from onOpen.
  const socket = await app.injectWS(`/api/v1/ws?token=${token}`, {}, {
    onOpen: (ws) => { first = new Promise((resolve) => ws.once('message', resolve)) }
  })
  t.equal(JSON.parse((await first as Buffer).toString()).data.user_id, 'u9')
  socket.terminate()
})
