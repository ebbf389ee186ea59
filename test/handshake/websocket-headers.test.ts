import t from 'tap'
import { startApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { ENVELOPE_KEYS, PREFIX, TRACE_ID } from '../helpers/http.js'
import { rawExchange, upgradeRequest } from '../helpers/raw-http.js'

// What `ws` would refuse after the gate, answered by the gate in the error shape, before a slot is taken.
t.test('a bad Sec-WebSocket-Key, -Version or -Protocol gets 400 in the error shape with Connection: close, and holds no slot', async (t) => {
  const node = await startApp({ limits: { maxConnectionsPerIp: 1 } })
  t.teardown(async () => await node.app.close())
  const token = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const path = `${PREFIX}?token=${token}`
  const cases: Array<[string, Record<string, string>, string]> = [
    ['a short key', { 'sec-websocket-key': 'c2hvcnQ=' }, 'Missing or invalid Sec-WebSocket-Key header'],
    ['a key that is not base64', { 'sec-websocket-key': '!!!!!!!!!!!!!!!!!!!!!!==' }, 'Missing or invalid Sec-WebSocket-Key header'],
    ['version 12', { 'sec-websocket-version': '12' }, 'Unsupported Sec-WebSocket-Version: 13 expected'],
    ['a version that is not a number', { 'sec-websocket-version': 'thirteen' }, 'Unsupported Sec-WebSocket-Version: 13 expected'],
    ['a protocol list with an empty entry', { 'sec-websocket-protocol': 'chat,,v2' }, 'Invalid Sec-WebSocket-Protocol header'],
    ['a protocol that is not a token', { 'sec-websocket-protocol': 'chat v2' }, 'Invalid Sec-WebSocket-Protocol header'],
    ['a protocol offered twice', { 'sec-websocket-protocol': 'chat, chat' }, 'Invalid Sec-WebSocket-Protocol header'],
    ['a protocol list ending in a comma', { 'sec-websocket-protocol': 'chat,' }, 'Invalid Sec-WebSocket-Protocol header']
  ]
  for (const [name, headers, message] of cases) {
    const answer = await rawExchange(node.port, upgradeRequest(path, headers))
    t.equal(answer.status, 400, `${name}: 400`)
    t.equal(answer.headers.connection, 'close', `${name}: Connection: close`)
    t.ok(answer.closedByServer)
    const body = JSON.parse(answer.body)
    t.strictSame(Object.keys(body), ENVELOPE_KEYS)
    t.match(body, { status_code: 400, message, trace_id: TRACE_ID, data: null }, `${name}: ${message}`)
    if (message.includes('Version')) t.equal(answer.headers['sec-websocket-version'], '13, 8', 'the versions it speaks')
  }
  // With one slot per address, a refused handshake that held one would lock the next connect out.
  const { socket } = await connect(`${node.wsBase}${path}`)
  socket.terminate()
})

t.test('valid protocol lists pass the gate: spaces around commas, one protocol', async (t) => {
  const node = await startApp()
  t.teardown(async () => await node.app.close())
  const path = `${PREFIX}?token=${await node.app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`
  for (const protocols of ['chat, v2.realtime', 'chat,v2', 'chat']) {
    const answer = await rawExchange(node.port, upgradeRequest(path, { 'sec-websocket-protocol': protocols }), { waitMs: 300 })
    t.equal(answer.statusLine.split(' ')[1], '101', `"${protocols}" is a valid list`)
  }
})
