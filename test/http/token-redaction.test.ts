import t from 'tap'
import { connect as netConnect } from 'node:net'
import { once } from 'node:events'
import { startApp } from '../helpers/app.js'
import { handshake } from '../helpers/client.js'
import { createClientErrorScrubber, createPrefixMatcher, stripQueryParam } from '../../lib/http/token-redaction.js'

/** Writes raw bytes to the server and returns everything it answers until it closes. */
async function rawExchange (port: number, request: string): Promise<string> {
  const socket = netConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.write(request)
  // Some answers keep the connection open; give up waiting after a second.
  const timer = setTimeout(() => socket.destroy(), 1000)
  await once(socket, 'close')
  clearTimeout(timer)
  return Buffer.concat(chunks).toString()
}

/** A log line as text, with serialized Buffers (pino writes them as byte arrays) turned back into text. */
function readable (line: string): string {
  return JSON.stringify(JSON.parse(line, (_key, value) =>
    value?.type === 'Buffer' && Array.isArray(value.data) ? Buffer.from(value.data).toString('latin1') : value))
}

t.test('the token never reaches a log line (level trace) or a body, whatever the request', async (t) => {
  const { app, wsBase, httpBase, port, logs } = await startApp({ tokens: { authorizationHeader: true, protocolPrefix: 'bearer.' } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
  const bodies: string[] = []

  const success = await handshake(`${wsBase}/api/v1/ws?token=${token}&v=2`)
  t.equal(success.kind, 'open', 'success')
  if (success.kind === 'open') success.socket.terminate()

  const viaHeader = await handshake(`${wsBase}/api/v1/ws`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(viaHeader.kind, 'open', 'Authorization header')
  if (viaHeader.kind === 'open') viaHeader.socket.terminate()

  const viaProtocol = await handshake(`${wsBase}/api/v1/ws`, { protocols: ['v1', `bearer.${token}`] })
  t.equal(viaProtocol.kind, 'open', 'subprotocol')
  if (viaProtocol.kind === 'open') viaProtocol.socket.terminate()

  const unauthorized = await handshake(`${wsBase}/api/v1/ws?token=${token}x`)
  t.equal(unauthorized.kind === 'rejected' && unauthorized.status, 401, '401')
  bodies.push(JSON.stringify(unauthorized.kind === 'rejected' && unauthorized.body))

  for (const path of [
    `/api/v1/wsx?token=${token}`, // typo
    `/api/v1/ws/?token=${token}`, // trailing slash
    `/API/V1/WS?token=${token}`, // case
    `/api/v1/ws/connections?%74oken=${token}`, // encoded parameter name
    `/api/v1/ws%zz?token=${token}`, // undecodable path
    `//api/v1/ws?token=${token}`, // a base URL ending in /
    `/./api/v1/ws?token=${token}`, // dot segment
    `/api//v1/ws?token=${token}`, // repeated slash
    `/api/v1/ws/../ws/connections?token=${token}`, // dot-dot segment
    `/api/v1/ws?token=${token}` // plain GET: 426
  ]) {
    const response = await fetch(httpBase + path)
    bodies.push(await response.text())
    t.not(response.status, 200, path)
  }
  const typo = await handshake(`${wsBase}/api/v1/wsx?token=${token}`)
  t.equal(typo.kind === 'rejected' && typo.status, 404, 'upgrade to a typo path')
  bodies.push(JSON.stringify(typo.kind === 'rejected' && typo.body))

  // A second `?` (an SDK appending `?token=` to a URL with a query): the token still counts, and stays out of the logs.
  const doubleQuery = await handshake(`${wsBase}/api/v1/ws?v=2?token=${token}`)
  t.equal(doubleQuery.kind, 'open', 'a second ? is read as &')
  if (doubleQuery.kind === 'open') doubleQuery.socket.terminate()
  // Absolute-form request line: routed to the WebSocket route, token extracted.
  bodies.push(await rawExchange(port, `GET http://127.0.0.1:${port}/api/v1/ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`))
  t.match(bodies[bodies.length - 1], /^HTTP\/1.1 426/, 'absolute form: the token was found, so the plain GET gets 426')
  // With the query source winning, a token offered as subprotocol is still taken out of the header.
  const both = await handshake(`${wsBase}/api/v1/ws?token=${token}`, { protocols: [`bearer.${token}`, 'v1'] })
  t.equal(both.kind === 'open' && both.protocol, 'v1', 'the token is never the selected subprotocol')
  if (both.kind === 'open') both.socket.terminate()

  // Malformed upgrade: no Sec-WebSocket-Key, so `ws` refuses it after the gate.
  bodies.push(await rawExchange(port, `GET /api/v1/ws?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`))
  // Unparsable request: Node hands the raw bytes to `clientError`, Fastify logs them at trace.
  bodies.push(await rawExchange(port, `GET /api/v1/ws?token=${token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nBad Header Line\r\n\r\n`))
  bodies.push(await rawExchange(port, `GET /api/v1/ws?token=${token}\u0001 HTTP/1.1\r\n\r\n`))

  t.match(bodies[bodies.length - 2], /^HTTP\/1.1 400/, 'the unparsable request got 400')
  const lines = logs.map(readable)
  t.ok(lines.length > 20, 'there are log lines to look at')
  t.ok(lines.some((line) => line.includes('"url":"/api/v1/wsx"')), 'the typo URL is logged without its token')
  t.ok(lines.some((line) => line.includes('client error') && line.includes('Authorization: [REDACTED]') && line.includes('token=[REDACTED]')), 'the client error is logged, scrubbed')
  const leakingLogs = lines.filter((line) => line.includes(token))
  t.same(leakingLogs, [], 'no log line carries the token')
  t.same(bodies.filter((body) => body.includes(token)), [], 'no body carries the token')
})

t.test('paths outside the prefix keep their query untouched', async (t) => {
  const { app, httpBase } = await startApp({}, {}, (app) => {
    app.get('/reset', async (request) => request.query)
  })
  t.teardown(() => app.close())
  const response = await fetch(`${httpBase}/reset?token=abc&x=1`)
  t.same(await response.json(), { token: 'abc', x: '1' })
})

t.test('createPrefixMatcher reads paths the way a router might', async (t) => {
  const isUnder = createPrefixMatcher('/api/v1/ws')
  for (const url of ['/api/v1/ws', '/API/V1/WS?x', 'api/v1/ws', '//api//v1/ws', '/x/../api/v1/ws', 'http://host:1/api/v1/ws?token=t', '/api/v1/%77s']) {
    t.equal(isUnder(url), true, url)
  }
  for (const url of ['/', '*', '/api/v1', 'http://host', '/other/api/v1/ws']) t.equal(isUnder(url), false, url)
})

t.test('stripQueryParam', async (t) => {
  t.same(stripQueryParam('/p', 'token'), { url: '/p', value: undefined })
  t.same(stripQueryParam('/p?a=1', 'token'), { url: '/p?a=1', value: undefined })
  t.same(stripQueryParam('/p?token=s&a=1', 'token'), { url: '/p?a=1', value: 's' })
  t.same(stripQueryParam('/p?token=s&token=t', 'token'), { url: '/p', value: 's' })
})

t.test('the client error scrubber leaves errors without a raw packet alone', async (t) => {
  const scrub = createClientErrorScrubber('token')
  const plain = new Error('x')
  scrub(plain)
  t.same(Object.keys(plain), [])
  const noQuery = Object.assign(new Error('x'), { rawPacket: Buffer.from('garbage') })
  scrub(noQuery)
  t.equal(noQuery.rawPacket.toString(), 'garbage')
  const withOthers = Object.assign(new Error('x'), { rawPacket: Buffer.from('GET /p?a=1&token=abc&b=2 HTTP/1.1\r\n') })
  scrub(withOthers)
  t.equal(withOthers.rawPacket.toString(), 'GET /p?a=1&b=2&token=[REDACTED] HTTP/1.1\r\n')
  const off = Object.assign(new Error('x'), { rawPacket: Buffer.from('GET /?token=abc HTTP/1.1\r\nCookie: s=1\r\n') })
  createClientErrorScrubber(false)(off)
  t.equal(off.rawPacket.toString(), 'GET /?token=abc HTTP/1.1\r\nCookie: [REDACTED]\r\n', 'with the query source off only headers are scrubbed')
})
