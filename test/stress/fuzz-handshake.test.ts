// Property test of the handshake gate through real HTTP requests on raw TCP:
// arbitrary query strings (tokens, recover values, other parameters,
// escapes), Origin, Authorization, Sec-WebSocket-Protocol and request ids,
// as a plain GET or an upgrade. Every answer must be one of README's handshake
// table (or `ws`'s own refusal of a malformed subprotocol header), in the
// error shape, with Connection: close; a 101 only for a token that resolves;
// and the node keeps serving.
import t from 'tap'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { startApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { rawExchange } from '../helpers/raw-http.js'
import { HandshakeMessage } from '../../lib/constants.js'

const PREFIX = '/api/v1/ws'
const ORIGIN = 'https://app.example'
const RUNS = 600

/** README "The handshake": the answers a request can get here (enabled, not draining, a memory token store, no connection caps). */
const DOCUMENTED: ReadonlyArray<readonly [number, string]> = [
  [403, HandshakeMessage.ORIGIN_NOT_ALLOWED],
  [401, HandshakeMessage.MISSING_TOKEN],
  [400, HandshakeMessage.INVALID_RECOVER],
  [400, HandshakeMessage.TOO_MANY_TO_RECOVER],
  [401, HandshakeMessage.INVALID_TOKEN],
  [426, HandshakeMessage.UPGRADE_REQUIRED],
  [400, HandshakeMessage.TOKEN_ONLY_PROTOCOL]
]
/** `ws` refuses a Sec-WebSocket-Protocol that is not a list of tokens (RFC 6455 §4.1) after the gate admitted it. */
const WS_BAD_PROTOCOL: readonly [number, string] = [400, 'Invalid Sec-WebSocket-Protocol header']

/** Printable ASCII a request line may carry (no space, no control character). */
const queryChar = fc.constantFrom(...'abcxyzABZ0129-._~!$&\'()*+,;=:@/?%#[]{}|\\^`"<>'.split(''))
const queryJunk = fc.string({ unit: queryChar, maxLength: 40 })
const escaped = fc.string({ maxLength: 12 }).map((value) => encodeURIComponent(value))
const recoverId = fc.oneof(fc.constantFrom('0-1', 'abc:42', 'a_b-c', '', '@', 'x+y', '%20', '%40'), fc.string({ unit: queryChar, maxLength: 10 }))
const channelName = fc.constantFrom('settings', 'kyc.events', 'card.events', 'payment_order.events', 'mobile.force.logout', 'nope', '', 'SETTINGS')
const knownChannel = fc.constantFrom('settings', 'kyc.events', 'card.events', 'payment_order.events', 'mobile.force.logout')
const recoverValue = fc.oneof(
  { weight: 4, arbitrary: fc.uniqueArray(knownChannel, { minLength: 1, maxLength: 5 }).map((channels) => channels.map((channel, index) => `${channel}@e${index}:${index}`).join(',')) },
  fc.array(fc.tuple(channelName, recoverId).map(([channel, id]) => `${channel}@${id}`), { maxLength: 6 }).map((entries) => entries.join(',')),
  queryJunk,
  escaped
)

function headerValue (unit: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.string({ unit, maxLength: 30 }).map((value) => value.trim())
}
const visible = fc.constantFrom(...'abcXYZ019 -_.,;:=/"\'()<>@[]{}?\t'.split(''))

t.test('property: any handshake request gets a documented answer and closes, and the node keeps serving', async (t) => {
  const { app, port, wsBase } = await startApp({
    allowedOrigins: [ORIGIN],
    tokens: { authorizationHeader: true, protocolPrefix: 'bearer.' },
    history: {},
    limits: { maxConnectionsPerIp: 0, maxSubscriptions: 4 }
  })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('fuzz', { ttlSeconds: 600 })
  const tokenLike = fc.oneof(
    { weight: 3, arbitrary: fc.constant(token) },
    { weight: 1, arbitrary: fc.constantFrom('', 'x', token.slice(1), `${token}x`, token.toUpperCase(), encodeURIComponent(token)) },
    { weight: 1, arbitrary: fc.string({ unit: queryChar, maxLength: 50 }) }
  )
  const param = fc.oneof(
    tokenLike.map((value) => `token=${value}`),
    recoverValue.map((value) => `recover=${value}`),
    fc.tuple(fc.constantFrom('TOKEN', 'token[]', ';token', '%74oken', 'tok%65n'), tokenLike).map(([name, value]) => `${name}=${value}`),
    fc.tuple(queryJunk, queryJunk).map(([name, value]) => `${name}=${value}`),
    queryJunk
  )
  const query = fc.tuple(fc.array(param, { maxLength: 4 }), fc.constantFrom('&', '?', ';', '&&')).map(([params, separator]) => params.join(separator))
  const request = fc.record({
    query,
    upgrade: fc.boolean(),
    origin: fc.oneof(
      { weight: 4, arbitrary: fc.constant(null) },
      { weight: 2, arbitrary: fc.constantFrom(ORIGIN, `${ORIGIN}/`, 'HTTPS://APP.EXAMPLE') },
      { weight: 1, arbitrary: fc.constantFrom('null', 'https://app.example.evil', 'https://evil.app.example', '') },
      { weight: 1, arbitrary: headerValue(visible) }
    ),
    authorization: fc.option(fc.oneof(tokenLike.map((value) => `Bearer ${value}`), tokenLike.map((value) => `bearer ${value}`), headerValue(visible))),
    protocol: fc.option(fc.oneof(
      tokenLike.map((value) => `bearer.${value}`),
      tokenLike.map((value) => `realtime.v1, bearer.${value}`),
      fc.constantFrom('realtime.v1', 'a,,b', ', ', 'x y', 'bearer.'),
      headerValue(visible)
    )),
    requestId: fc.option(fc.oneof(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: 16, maxLength: 16 }), headerValue(visible)))
  }, { requiredKeys: ['query', 'upgrade'] })

  const seen = new Map<string, number>()
  await fc.assert(fc.asyncProperty(request, async ({ query, upgrade, origin, authorization, protocol, requestId }) => {
    const lines = [`GET ${PREFIX}${query === '' ? '' : `?${query}`} HTTP/1.1`, 'Host: 127.0.0.1']
    if (upgrade) lines.push('Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13')
    if (origin !== null && origin !== undefined) lines.push(`Origin: ${origin}`)
    if (authorization !== null && authorization !== undefined) lines.push(`Authorization: ${authorization}`)
    if (protocol !== null && protocol !== undefined) lines.push(`Sec-WebSocket-Protocol: ${protocol}`)
    if (requestId !== null && requestId !== undefined) lines.push(`X-Request-Id: ${requestId}`)
    // A 101 is dropped at once; anything else is read until the server closes (at most 2 s).
    const answer = await rawExchange(port, Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), { dropUpgrade: true })
    const described = `${lines.join(' | ')} → ${answer.status} ${answer.body}`
    if (answer.status === 101) {
      if (!upgrade) throw new Error(`101 without an upgrade: ${described}`)
      seen.set('101', (seen.get('101') ?? 0) + 1)
      return
    }
    if (!answer.closedByServer || answer.headers.connection !== 'close') throw new Error(`not closed: ${described}`)
    let body: { status_code?: unknown, message?: unknown, trace_id?: unknown, data?: unknown } | undefined
    try { body = JSON.parse(answer.body) } catch {}
    const message = body?.message ?? answer.body
    const documented = DOCUMENTED.some(([status, text]) => status === answer.status && text === message)
    const wsRefusal = upgrade && answer.status === WS_BAD_PROTOCOL[0] && message === WS_BAD_PROTOCOL[1]
    if (!documented && !wsRefusal) throw new Error(`undocumented answer: ${described}`)
    if (documented && (body?.status_code !== answer.status || typeof body?.trace_id !== 'string' || body?.data !== null)) throw new Error(`not in the error shape: ${described}`)
    const key = `${answer.status} ${String(message)}`
    seen.set(key, (seen.get(key) ?? 0) + 1)
  }), { numRuns: RUNS })

  t.ok((seen.get('101') ?? 0) > 0, `the generator reaches the upgrade: ${JSON.stringify(Object.fromEntries(seen))}`)
  for (const [status, text] of DOCUMENTED) t.ok((seen.get(`${status} ${text}`) ?? 0) > 0, `the generator reaches ${status} ${text}`)
  const probe = await connect(`${wsBase}${PREFIX}?token=${token}`)
  t.equal(probe.first.event, 'connected', 'a normal client still gets in')
  probe.socket.terminate()
})
