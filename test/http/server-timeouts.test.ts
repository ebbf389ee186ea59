import t, { type Test } from 'tap'
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions } from 'fastify'
import realtime from '../../lib/index.js'
import { captureLogs, startApp, type TestApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { PREFIX } from '../helpers/http.js'
import { Inbox } from '../helpers/messages.js'
import { rawExchange } from '../helpers/raw-http.js'

const NOTICE = /^fastify-realtime: a client that never finishes the headers of its handshake holds its connection until Node's headersTimeout \(60000 ms, checked every 30000 ms\): set Fastify's /
// The recommended settings, with bounds short enough for a test.
const SHORT_BOUNDS: FastifyHttpOptions<Server> = { connectionTimeout: 300, requestTimeout: 600, http: { connectionsCheckingInterval: 100 } }
// A handshake whose headers never end (no blank line).
const HALF_OPEN = `GET ${PREFIX}?token=abc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`

async function start (t: Test, fastifyOptions: FastifyHttpOptions<Server>): Promise<TestApp> {
  const started = await startApp({}, fastifyOptions)
  t.teardown(() => started.app.close())
  return started
}

const notices = (logs: string[]): Array<{ level: number, msg: string, unset: string[] }> =>
  logs.map((line) => JSON.parse(line)).filter((line) => NOTICE.test(line.msg))

t.test('registration warns when connectionTimeout or requestTimeout leaves half-open handshakes to Node\'s defaults', async (t) => {
  const unbounded = await start(t, { connectionTimeout: 0, requestTimeout: 0 })
  const [both, ...more] = notices(unbounded.logs)
  t.strictSame(more, [], 'once')
  t.equal(both?.level, 40)
  t.strictSame(both?.unset, ['connectionTimeout', 'requestTimeout'])
  t.equal(both?.msg, 'fastify-realtime: a client that never finishes the headers of its handshake holds its connection until ' +
    'Node\'s headersTimeout (60000 ms, checked every 30000 ms): set Fastify\'s connectionTimeout and requestTimeout ' +
    '(see README, "Bounded half-open handshakes")')

  const idleOnly = await start(t, { connectionTimeout: 10_000, requestTimeout: 0 })
  t.strictSame(notices(idleOnly.logs).map((line) => line.unset), [['requestTimeout']])
  const requestOnly = await start(t, { connectionTimeout: 0, requestTimeout: 10_000 })
  t.strictSame(notices(requestOnly.logs).map((line) => line.unset), [['connectionTimeout']])
  const bounded = await start(t, { connectionTimeout: 10_000, requestTimeout: 10_000 })
  t.strictSame(notices(bounded.logs), [], 'configured as recommended: nothing to say')
})

t.test('an HTTP/2 server, which has none of these timeouts, gets no warning', async (t) => {
  const { lines, stream } = captureLogs()
  const app = Fastify({ http2: true, logger: { level: 'info', stream } })
  await app.register(realtime)
  await app.ready()
  await app.close()
  t.ok(lines.length > 0, 'the logger is on')
  t.strictSame(notices(lines), [])
})

t.test('configured as recommended, a handshake that stops sending mid-headers is dropped within connectionTimeout', async (t) => {
  const { port, logs } = await start(t, SHORT_BOUNDS)
  t.strictSame(notices(logs), [])
  // Ten times the bound, and far below Node's 60 s.
  const dropped = await rawExchange(port, HALF_OPEN, { waitMs: 3000 })
  t.equal(dropped.closedByServer, true, 'the server closed it')
  t.equal(dropped.statusLine, '', 'without an answer')
})

t.test('configured as recommended, a handshake that trickles its headers is answered 408 within requestTimeout', async (t) => {
  const { port } = await start(t, SHORT_BOUNDS)
  const socket = netConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  let open = true
  socket.once('close', () => { open = false })
  // One byte every 100 ms keeps the socket from ever being idle for connectionTimeout; 30 bytes (3 s) at most.
  let sent = 0
  for (const byte of HALF_OPEN.slice(0, 30)) {
    if (!open) break
    socket.write(byte)
    sent++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  socket.destroy()
  await closed
  t.ok(sent < 30, `the server ended it before the client gave up (${sent} bytes sent)`)
  t.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 408 Request Timeout\r\n/)
})

t.test('configured as recommended, an open WebSocket outlives both bounds', async (t) => {
  const { app, wsBase } = await start(t, SHORT_BOUNDS)
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const { socket } = await connect(`${wsBase}${PREFIX}?token=${token}`)
  t.teardown(() => socket.terminate())
  const inbox = new Inbox(socket)
  // Idle for longer than requestTimeout plus a check interval.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  socket.send(JSON.stringify({ event: 'ping' }))
  t.equal((await inbox.until(1))[0].event, 'pong')
})
