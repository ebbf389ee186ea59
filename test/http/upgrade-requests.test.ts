import t, { type Test } from 'tap'
import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import Type from 'typebox'
import realtime from '../../lib/index.js'
import { captureLogs, startApp, type TestApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { ENVELOPE_KEYS, PREFIX, TRACE_ID } from '../helpers/http.js'
import { getRequest, rawExchange, upgradeRequest, type RawAnswer } from '../helpers/raw-http.js'

const NOT_A_WEBSOCKET_ROUTE = 'This route does not accept WebSocket upgrades'
// An unmasked text frame: a protocol error for a server socket, were it upgraded.
const INVALID_FRAME = Buffer.from([0x81, 0x02, 0x68, 0x69])

async function start (t: Test, ...args: Parameters<typeof startApp>): Promise<TestApp> {
  const started = await startApp(...args)
  t.teardown(() => started.app.close())
  return started
}

/** An HTTP answer (never a 101) that tells the peer the connection ends here, and the server ended it. */
function assertClosingAnswer (t: Test, answer: RawAnswer, statusLine: string): void {
  t.equal(answer.statusLine, statusLine)
  t.equal(answer.headers.connection, 'close', `${statusLine}: Connection: close`)
  t.equal(answer.headers['keep-alive'], undefined, `${statusLine}: no Keep-Alive`)
  t.equal(answer.closedByServer, true, `${statusLine}: the server closed the connection`)
}

/** The same, with the plugin's envelope as the body. */
function assertClosingError (t: Test, answer: RawAnswer, statusLine: string, message: string): void {
  assertClosingAnswer(t, answer, statusLine)
  const body = JSON.parse(answer.body)
  t.strictSame(Object.keys(body), ENVELOPE_KEYS)
  t.equal(body.status_code, answer.status)
  t.equal(body.message, message)
  t.match(body.trace_id, TRACE_ID)
}

const errorLines = (logs: string[]): unknown[] => logs.map((line) => JSON.parse(line)).filter((line) => line.level >= 50)

t.test('every refusal of an upgrade by the gate carries Connection: close, and the server closes the connection', async (t) => {
  const { app, port } = await start(t, { allowedOrigins: ['https://app.example.com'], limits: { maxConnectionsPerIp: 1 } })
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  assertClosingError(t, await rawExchange(port, upgradeRequest(PREFIX)), 'HTTP/1.1 401 Unauthorized', 'Missing access token')
  assertClosingError(t, await rawExchange(port, upgradeRequest(`${PREFIX}?token=nope`)), 'HTTP/1.1 401 Unauthorized', 'Invalid or expired token')
  assertClosingError(t, await rawExchange(port, upgradeRequest(`${PREFIX}?token=${token}`, { origin: 'https://evil.test' })), 'HTTP/1.1 403 Forbidden', 'Origin not allowed')
  const open = await connect(`ws://127.0.0.1:${port}${PREFIX}?token=${token}`)
  t.teardown(() => open.socket.terminate())
  const limited = await rawExchange(port, upgradeRequest(`${PREFIX}?token=${token}`))
  assertClosingError(t, limited, 'HTTP/1.1 429 Too Many Requests', 'Too many connections from this address')
  t.equal(limited.headers['retry-after'], '5')

  const disabled = await start(t, { enabled: false })
  assertClosingError(t, await rawExchange(disabled.port, upgradeRequest(PREFIX)), 'HTTP/1.1 503 Service Unavailable', 'WebSocket is disabled')
  const storeDown = await start(t, { tokens: { resolver: () => { throw new Error('store down') } } })
  assertClosingError(t, await rawExchange(storeDown.port, upgradeRequest(`${PREFIX}?token=abc`)), 'HTTP/1.1 503 Service Unavailable', 'Token store unavailable')
})

t.test('every answer of the WebSocket route closes, a plain GET included; other plain requests stay keep-alive', async (t) => {
  const { app, port } = await start(t)
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  assertClosingError(t, await rawExchange(port, getRequest(PREFIX)), 'HTTP/1.1 401 Unauthorized', 'Missing access token')
  const required = await rawExchange(port, getRequest(`${PREFIX}?token=${token}`))
  assertClosingError(t, required, 'HTTP/1.1 426 Upgrade Required', 'WebSocket upgrade required')
  t.equal(required.headers.upgrade, 'websocket')

  const health = await rawExchange(port, getRequest(`${PREFIX}/health`), { waitMs: 300 })
  t.equal(health.statusLine, 'HTTP/1.1 200 OK')
  t.equal(health.headers.connection, 'keep-alive')
  t.equal(health.closedByServer, false, 'the connection stays open for the next request')
  // An Upgrade header that Connection does not name asks for nothing (RFC 9110 §7.8): a plain GET.
  const notAnUpgrade = await rawExchange(port, getRequest(`${PREFIX}/health`, { upgrade: 'websocket' }), { waitMs: 300 })
  t.equal(notAnUpgrade.statusLine, 'HTTP/1.1 200 OK')
  t.equal(notAnUpgrade.headers.connection, 'keep-alive')
})

t.test('404 answers to upgrade requests close, under the prefix and outside it', async (t) => {
  const { port } = await start(t)
  for (const path of [`${PREFIX}/nope`, `${PREFIX}/`, '/elsewhere']) {
    const answer = await rawExchange(port, upgradeRequest(path))
    assertClosingAnswer(t, answer, 'HTTP/1.1 404 Not Found')
    t.equal(JSON.parse(answer.body).message, `Route GET:${path} not found`)
  }
})

t.test('the plugin\'s HTTP routes never upgrade: an upgrade request gets 400 in the envelope, and frames after it are never read', async (t) => {
  const { app, port, logs } = await start(t, { diagnostics: { testRoute: { enabled: true }, adminTokens: ['admin-token-'.padEnd(32, 'x')] } })
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const authorization = `Bearer ${'admin-token-'.padEnd(32, 'x')}`
  for (const path of ['/health', '/connected-users', '/connections', '/metrics', '/test?user_id=u1']) {
    for (const headers of [{}, { authorization }] as Array<Record<string, string>>) {
      const answer = await rawExchange(port, upgradeRequest(`${PREFIX}${path}`, headers), { after: INVALID_FRAME })
      assertClosingError(t, answer, 'HTTP/1.1 400 Bad Request', NOT_A_WEBSOCKET_ROUTE)
    }
  }
  // With a token in the query too: the refusal comes before anything reads it.
  assertClosingError(t, await rawExchange(port, upgradeRequest(`${PREFIX}/health?token=${token}`)), 'HTTP/1.1 400 Bad Request', NOT_A_WEBSOCKET_ROUTE)
  t.strictSame(errorLines(logs), [], 'nothing is logged at error level')
})

/** Routes of the app, next to the plugin: one plain, one with a schema, one of its own WebSocket routes. */
function appRoutes (app: FastifyInstance): void {
  app.get('/app/hello', async () => ({ hello: 'world' }))
  app.get('/app/items', { schema: { querystring: Type.Object({ page: Type.Integer() }) } }, async (request) => ({ query: request.query }))
  app.get('/app/echo', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(data)) })
}

t.test('when the plugin registered @fastify/websocket, the app\'s HTTP routes answer an upgrade request over HTTP, as configured', async (t) => {
  const { port, logs } = await start(t, {}, {}, appRoutes)
  const hello = await rawExchange(port, upgradeRequest('/app/hello'), { after: INVALID_FRAME })
  assertClosingAnswer(t, hello, 'HTTP/1.1 200 OK')
  t.strictSame(JSON.parse(hello.body), { hello: 'world' })
  const invalid = await rawExchange(port, upgradeRequest('/app/items?page=x'))
  assertClosingAnswer(t, invalid, 'HTTP/1.1 400 Bad Request')
  t.equal(JSON.parse(invalid.body).message, 'querystring/page must be integer')
  // The app's own WebSocket route still upgrades.
  const echo = await rawExchange(port, upgradeRequest('/app/echo'), { waitMs: 300 })
  t.equal(echo.statusLine, 'HTTP/1.1 101 Switching Protocols')
  // A plain GET of the app is untouched.
  const plain = await rawExchange(port, getRequest('/app/hello'), { waitMs: 300 })
  t.equal(plain.headers.connection, 'keep-alive')
  t.strictSame(errorLines(logs), [])
})

t.test('when the app registered @fastify/websocket, its routes stay as it made them; the plugin\'s routes still never upgrade', async (t) => {
  const { lines, stream } = captureLogs()
  const app = Fastify({ logger: { level: 'trace', stream } })
  t.teardown(() => app.close())
  await app.register(websocket, { preClose: (done) => done() })
  await app.register(realtime)
  appRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  // @fastify/websocket's own behaviour for a route without a WebSocket handler: upgrade, then close.
  const hello = await rawExchange(port, upgradeRequest('/app/hello'))
  t.equal(hello.statusLine, 'HTTP/1.1 101 Switching Protocols')
  assertClosingError(t, await rawExchange(port, upgradeRequest(`${PREFIX}/health`)), 'HTTP/1.1 400 Bad Request', NOT_A_WEBSOCKET_ROUTE)
  const invalid = await rawExchange(port, upgradeRequest('/app/items?page=x'))
  assertClosingAnswer(t, invalid, 'HTTP/1.1 400 Bad Request')
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const opened = await connect(`ws://127.0.0.1:${port}${PREFIX}?token=${token}`)
  opened.socket.terminate()
  t.strictSame(errorLines(lines), [])
})

t.test('an upgrade socket no route took over is ended: app.close() is never held up by one', async (t) => {
  const { app, port } = await startApp({}, {}, (app) => {
    app.get('/slow', async () => await new Promise((resolve) => setTimeout(() => resolve({ slow: true }), 300)))
  })
  const socket = tcpConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  // An upgrade pipelined behind a request still being answered, and one whose URL Fastify cannot decode.
  socket.write(getRequest('/slow') + upgradeRequest('/slow'))
  const badUrl = await rawExchange(port, upgradeRequest('/elsewhere%zz'), { waitMs: 500 })
  t.equal(badUrl.status, 400)
  t.equal(badUrl.closedByServer, true, 'the server ended the bad-URL upgrade')
  const closing = app.close()
  const outcome = await Promise.race([closing.then(() => 'closed'), sleep(5000).then(() => 'still closing')])
  t.equal(outcome, 'closed', 'app.close() resolved')
  socket.destroy()
})
