import t from 'tap'
import { startApp } from '../helpers/app.js'
import { handshake } from '../helpers/client.js'
import { plainRequest, rawExchange, readableLogLine, upgradeRequest } from '../helpers/raw-pipeline.js'
import type { IncomingMessage } from 'node:http'
import { createClientErrorScrubber, createTokenExtractor, readAccessToken, readTakenParam } from '../../lib/http/token-redaction.js'
import { createTargetRedactor } from '../../lib/http/redact-target.js'

const rawText = async (port: number, request: string): Promise<string> => (await rawExchange(port, request)).text

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
  bodies.push(await rawText(port, `GET http://127.0.0.1:${port}/api/v1/ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`))
  t.match(bodies[bodies.length - 1], /^HTTP\/1.1 426/, 'absolute form: the token was found, so the plain GET gets 426')
  // With the query source winning, a token offered as subprotocol is still taken out of the header.
  const both = await handshake(`${wsBase}/api/v1/ws?token=${token}`, { protocols: [`bearer.${token}`, 'v1'] })
  t.equal(both.kind === 'open' && both.protocol, 'v1', 'the token is never the selected subprotocol')
  if (both.kind === 'open') both.socket.terminate()

  // Malformed upgrade: no Sec-WebSocket-Key, so `ws` refuses it after the gate.
  bodies.push(await rawText(port, `GET /api/v1/ws?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`))
  // Unparsable request: Node hands the raw bytes to `clientError`, Fastify logs them at trace.
  bodies.push(await rawText(port, `GET /api/v1/ws?token=${token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nBad Header Line\r\n\r\n`))
  bodies.push(await rawText(port, `GET /api/v1/ws?token=${token}\u0001 HTTP/1.1\r\n\r\n`))

  t.match(bodies[bodies.length - 2], /^HTTP\/1.1 400/, 'the unparsable request got 400')
  const lines = logs.map(readableLogLine)
  t.ok(lines.length > 20, 'there are log lines to look at')
  t.ok(lines.some((line) => line.includes('"url":"/api/v1/wsx"')), 'the typo URL is logged without its token')
  t.ok(lines.some((line) => line.includes('client error') && line.includes('GET /api/v1/ws HTTP/1.1') && line.includes('Authorization: [REDACTED]')), 'the client error is logged, scrubbed')
  const leakingLogs = lines.filter((line) => line.includes(token))
  t.same(leakingLogs, [], 'no log line carries the token')
  t.same(bodies.filter((body) => body.includes(token)), [], 'no body carries the token')
})

// Each URL hides the token somewhere a router or proxy may still read it, or under a name the plugin does not read.
const hidingUrls = (token: string): Array<{ target: string, status: number, url: string }> => [
  { target: `/api/v1/ws%3Ftoken=${token}`, status: 404, url: '/api/v1/ws[REDACTED]' },
  { target: `/%2Fapi/v1/ws?token=${token}`, status: 404, url: '/[REDACTED]/[REDACTED]/[REDACTED]' },
  { target: `/%2fapi%2fv1%2fws?token=${token}`, status: 404, url: '/[REDACTED]' },
  { target: `/\\api/v1/ws?token=${token}`, status: 404, url: '/[REDACTED]/[REDACTED]/[REDACTED]' },
  { target: `/api/v1/ws%3Ftoken=${token.slice(0, 8)}/${token.slice(8)}`, status: 404, url: '/api/v1/ws[REDACTED]/[REDACTED]' },
  { target: `/api/v1/ws;token=${token}`, status: 404, url: '/api/v1/ws[REDACTED]' },
  { target: `/api/v1/ws/connections%3Ftoken=${token}`, status: 404, url: '/api/v1/ws/connections[REDACTED]' },
  { target: `/api/v1/ws/../../x?token=${token}`, status: 404, url: '/api/v1/ws/../../x' },
  { target: `/x/..%2fapi/v1/ws?token=${token}`, status: 404, url: '/x/..[REDACTED]/[REDACTED]/[REDACTED]' },
  { target: `/api/v1/ws?TOKEN=${token}`, status: 401, url: '/api/v1/ws' },
  { target: `/api/v1/ws?token[]=${token}`, status: 401, url: '/api/v1/ws' },
  { target: `/api/v1/ws?a=1;token=${token}`, status: 401, url: '/api/v1/ws' }
]

t.test('a token hidden in the path or under another name reaches no log line and no body, alone, pipelined or as an upgrade', async (t) => {
  const { app, port, logs } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
  for (const { target, status, url } of hidingUrls(token)) {
    const alone = await rawExchange(port, plainRequest(target))
    const name = target.replace(token, 'T')
    t.equal(alone.responses[0]?.status, status, `${name} alone`)
    const pipelined = await rawExchange(port, `GET /api/v1/ws/health HTTP/1.1\r\nHost: x\r\n\r\n${plainRequest(target)}`, 2)
    t.same(pipelined.responses.map((response) => response.status), [200, status], `${name} second on its connection`)
    const upgrade = await rawExchange(port, upgradeRequest(target))
    t.equal(upgrade.responses[0]?.status, status, `${name} as an upgrade`)
    // Unparsable: Node hands its bytes to the `clientError` log.
    const broken = await rawExchange(port, `GET ${target} HTTP/1.1\r\nBad Header Line\r\n\r\n`)
    t.equal(broken.responses[0]?.status, 400, `${name} in an unparsable request`)
    if (status === 404) t.equal(JSON.parse(alone.responses[0].body).message, `Route GET:${url} not found`, 'the 404 names the redacted URL')
    t.same([alone, pipelined, upgrade, broken].filter((exchange) => exchange.text.includes(token)).map((exchange) => exchange.text), [], `${name}: no body carries the token`)
    const incoming = logs.map((line) => JSON.parse(line)).filter((line) => line.msg === 'incoming request').slice(-4).map((line) => line.req.url)
    t.same(incoming, [url, '/api/v1/ws/health', url, url], 'Fastify saw the redacted URL, each time')
  }
  t.equal(logs.filter((line) => line.includes('client error')).length, hidingUrls(token).length, 'every unparsable request was logged')
  t.same(logs.map(readableLogLine).filter((line) => line.includes(token)), [], 'no log line carries the token')
})

t.test('the WebSocket route and unknown paths under the prefix keep no query parameter, diagnostic routes only their documented ones', async (t) => {
  const { app, port, logs } = await startApp({ diagnostics: { public: true, testRoute: { enabled: true } } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 60 })
  const cases = [
    { target: `/api/v1/ws?v=2&token=${token}&recover=x`, url: '/api/v1/ws' },
    { target: `/api/v1/wsx?a=1&token=${token}`, url: '/api/v1/wsx' },
    { target: `/api/v1/ws/health?token=${token}&verbose=1`, url: '/api/v1/ws/health' },
    { target: `/api/v1/ws/connections?user_id=u&token=${token}&limit=1&cursor=`, url: '/api/v1/ws/connections?user_id=u&limit=1&cursor=' },
    { target: `/api/v1/ws/connections?limit=1;token=${token}`, url: '/api/v1/ws/connections?limit=' },
    { target: `/api/v1/ws/connections?user_id=u%26token%3D${token}`, url: '/api/v1/ws/connections?user_id=' },
    { target: `/api/v1/ws/test?user_id=u&limit=1&token=${token}`, url: '/api/v1/ws/test?user_id=u' }
  ]
  for (const { target, url } of cases) {
    const { responses } = await rawExchange(port, plainRequest(target))
    const name = target.replace(token, 'T')
    t.notOk(responses[0].body.includes(token), `${name}: no token in the body`)
    const incoming = logs.map((line) => JSON.parse(line)).filter((line) => line.msg === 'incoming request').at(-1)
    t.equal(incoming.req.url, url, name)
  }
  t.same(logs.filter((line) => line.includes(token)), [], 'no log line carries the token')
})

t.test('a diagnostic request keeps its documented parameters, without the token', async (t) => {
  const { app, wsBase, httpBase, logs } = await startApp({ diagnostics: { public: true } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u', { ttlSeconds: 60 })
  const sockets = await Promise.all(['u', 'v'].map(async (user) => {
    const { socket } = await handshake(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue(user, { ttlSeconds: 60 })}`) as { socket: { terminate: () => void } }
    return socket
  }))
  t.teardown(() => sockets.forEach((socket) => socket.terminate()))
  const response = await fetch(`${httpBase}/api/v1/ws/connections?user_id=u&token=${token}&limit=1`)
  const body = await response.json() as { data: { connections: Array<{ user_id: string }>, count: number } }
  t.equal(response.status, 200)
  t.same(body.data.connections.map((entry) => entry.user_id), ['u'], 'filtered by user_id')
  t.equal(body.data.count, 1)
  const badLimit = await fetch(`${httpBase}/api/v1/ws/connections?limit=1;token=${token}`)
  t.equal(badLimit.status, 400, 'a documented parameter that smuggles more is refused, not dropped')
  t.same(logs.filter((line) => line.includes(token)), [], 'no log line carries the token')
})

t.test('redaction changes no route: parametric routes of the app match what they matched before', async (t) => {
  const { app, port } = await startApp({}, {}, (app) => {
    app.get('/:slug', async (request) => ({ route: 'slug', params: request.params }))
    app.get('/api/v1/:x', async (request) => ({ route: 'x', params: request.params }))
  })
  t.teardown(() => app.close())
  const answer = async (target: string): Promise<{ status: number | undefined, body: unknown }> => {
    const [response] = (await rawExchange(port, plainRequest(target))).responses
    return { status: response?.status, body: JSON.parse(response?.body ?? 'null') }
  }
  t.same(await answer('/%2fapi%2fv1%2fws?token=T'), { status: 200, body: { route: 'slug', params: { slug: '[REDACTED]' } } }, 'one segment stays one')
  t.same(await answer('/api/v1/ws%3Ftoken=T'), { status: 200, body: { route: 'x', params: { x: 'ws[REDACTED]' } } }, 'the token is not in the parameter')
  t.equal((await answer('/%2Fapi/v1/ws?token=T')).status, 404, 'three segments match neither')
  t.equal((await answer('/api/v1/w%73?token=T')).status, 401, 'an escaped unreserved character still reaches the WebSocket route')
})

t.test('paths outside the prefix keep their query untouched', async (t) => {
  const { app, httpBase } = await startApp({}, {}, (app) => {
    app.get('/reset', async (request) => request.query)
  })
  t.teardown(() => app.close())
  const response = await fetch(`${httpBase}/reset?token=abc&x=1`)
  t.same(await response.json(), { token: 'abc', x: '1' })
})

t.test('the client error scrubber redacts every request target under the prefix and credential headers', async (t) => {
  const redact = createTargetRedactor('/api/v1/ws', { outOfBand: ['token'], documented: new Map([['/api/v1/ws/connections', ['limit']]]) })
  const scrub = createClientErrorScrubber(redact, 'token')
  const plain = new Error('x')
  scrub(plain)
  t.same(Object.keys(plain), [], 'an error without a raw packet is left alone')
  const scrubbed = (packet: string, scrubber = scrub): string => {
    const error = Object.assign(new Error('x'), { rawPacket: Buffer.from(packet, 'latin1') })
    scrubber(error)
    return error.rawPacket.toString('latin1')
  }
  t.equal(scrubbed('garbage'), 'garbage')
  t.equal(scrubbed('GET /api/v1/ws%3Ftoken%3Dabc HTTP/1.1\r\nHost: x\r\n\r\nGET /%2Fapi/v1/ws?token=abc HTTP/1.1\r\n'),
    'GET /api/v1/ws[REDACTED] HTTP/1.1\r\nHost: x\r\n\r\nGET /[REDACTED]/[REDACTED]/[REDACTED] HTTP/1.1\r\n', 'pipelined targets too')
  t.equal(scrubbed('/api/v1/ws/connections?limit=1&token=abc\tHTTP/1.1\r\n'), '/api/v1/ws/connections?limit=1\tHTTP/1.1\r\n', 'a line without a method')
  t.equal(scrubbed('GET /p?a=1&token=abc&b=2 HTTP/1.1\r\n'), 'GET /p?a=1&token=[REDACTED]&b=2 HTTP/1.1\r\n', 'outside the prefix only the token parameter goes')
  const off = createClientErrorScrubber(redact, false)
  t.equal(scrubbed('GET /?token=abc HTTP/1.1\r\nCookie: s=1\r\n', off), 'GET /?token=abc HTTP/1.1\r\nCookie: [REDACTED]\r\n', 'with the query source off only headers are scrubbed outside the prefix')
})

t.test('readTakenParam reads every out-of-band parameter of a request under the prefix', async (t) => {
  const redact = createTargetRedactor('/api/v1/ws', { outOfBand: ['token', 'recover'], documented: new Map() })
  const extract = createTokenExtractor(redact, { queryParam: 'token', authorizationHeader: false, protocolPrefix: false })
  const request = { url: '/api/v1/ws?recover=a@1&token=t&x=1', headers: {}, rawHeaders: [] } as unknown as IncomingMessage
  extract(request)
  t.equal(request.url, '/api/v1/ws')
  t.equal(readTakenParam(request, 'recover'), 'a@1')
  t.equal(readTakenParam(request, 'x'), undefined)
  t.equal(readAccessToken(request), 't')
  const outside = { url: '/elsewhere?recover=a@1', headers: {}, rawHeaders: [] } as unknown as IncomingMessage
  extract(outside)
  t.equal(readTakenParam(outside, 'recover'), undefined)
  t.equal(outside.url, '/elsewhere?recover=a@1')
})
