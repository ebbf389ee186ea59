import t from 'tap'
import WebSocket from 'ws'
import { createClient, type FetchLike } from '../../lib/client/index.js'
import { startApp } from '../helpers/app.js'
import { freePort } from '../helpers/redis-server.js'
import { FAST, isClosed, isConnected, isDisconnected, watchClient } from '../helpers/sdk.js'

/** A fetch that answers every GET with `status` (and records what it was asked). */
function answering (status: number, body: () => unknown, headers: Record<string, string> = {}): FetchLike & { calls: Array<{ url: string, headers: Record<string, string> }> } {
  const calls: Array<{ url: string, headers: Record<string, string> }> = []
  const fetch = async (url: string, init: { headers: Record<string, string> }): Promise<any> => {
    calls.push({ url, headers: init.headers })
    return { status, headers: { get: (name: string) => headers[name] ?? null }, json: async () => body() }
  }
  return Object.assign(fetch, { calls })
}

t.test('401: with a fixed token the client closes, with the status and the gate\'s message', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const { next, states } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: 'not-a-token' })
  t.strictSame(await next(isClosed, 'closed'), { state: 'closed', code: 1006, reason: 'Invalid or expired token', status: 401 })
  t.strictSame(states.map((state) => state.state), ['connecting', 'closed'])
})

t.test('401: getToken() is asked again, and the reconnect with its token connects', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const tokens = ['expired-token', await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })]
  let asked = 0
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken: () => tokens[asked++] })
  t.strictSame(await next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: 'Invalid or expired token', status: 401, delayMs: 5 })
  t.match(await next(isConnected, 'connected'), { state: 'connected', userId: 'u1' })
  t.equal(asked, 2)
})

t.test('403 (origin refused): closed; the GET of the same URL said why', async (t) => {
  const { app, wsBase } = await startApp({ allowMissingOrigin: false })
  t.teardown(() => app.close())
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }) })
  t.strictSame(await next(isClosed, 'closed'), { state: 'closed', code: 1006, reason: 'Origin not allowed', status: 403 })
})

t.test('503 and 429: reconnect, no sooner than Retry-After says; 429 with the longer backoff', async (t) => {
  const disabled = await startApp({ enabled: false })
  t.teardown(() => disabled.app.close())
  const off = watchClient(t, { url: `${disabled.wsBase}/api/v1/ws`, token: 'any' })
  t.strictSame(await off.next(isDisconnected, 'disabled'), { state: 'disconnected', code: 1006, reason: 'WebSocket is disabled', status: 503, delayMs: 5 })
  t.strictSame(await off.next(isDisconnected, 'disabled again'), { state: 'disconnected', code: 1006, reason: 'WebSocket is disabled', status: 503, delayMs: 5 })
  off.client.close()

  const full = await startApp({ limits: { maxConnections: 1, maxConnectionsPerIp: 1, retryAfterSeconds: 1 } })
  t.teardown(() => full.app.close())
  const first = watchClient(t, { url: `${full.wsBase}/api/v1/ws`, token: await full.app.realtime.tokens.issue('first', { ttlSeconds: 60 }) })
  await first.next(isConnected, 'the first connected')
  const second = watchClient(t, { url: `${full.wsBase}/api/v1/ws`, token: await full.app.realtime.tokens.issue('second', { ttlSeconds: 60 }) })
  t.strictSame(await second.next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: 'Too many connections on this server', status: 503, delayMs: 1000 })
  second.client.close()

  const perIp = await startApp({ limits: { maxConnectionsPerIp: 1, retryAfterSeconds: 1 } })
  t.teardown(() => perIp.app.close())
  const one = watchClient(t, { url: `${perIp.wsBase}/api/v1/ws`, token: await perIp.app.realtime.tokens.issue('one', { ttlSeconds: 60 }) })
  await one.next(isConnected, 'one connected')
  const fetch = answering(429, () => ({ message: 'Too many connections from this address' }))
  const other = watchClient(t, { url: `${perIp.wsBase}/api/v1/ws`, token: await perIp.app.realtime.tokens.issue('other', { ttlSeconds: 60 }) })
  t.strictSame(await other.next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: 'Too many connections from this address', status: 429, delayMs: 1000 })
  other.client.close()
  const slow = watchClient(t, { url: `ws://127.0.0.1:${await freePort()}/api/v1/ws`, token: 'any', fetch })
  t.strictSame(await slow.next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: 'Too many connections from this address', status: 429, delayMs: 40 },
    'without Retry-After, the longer backoff')
})

t.test('426 (the gate would have let it through: the failure was the network\'s): the normal backoff', async (t) => {
  const { app, httpBase } = await startApp()
  t.teardown(() => app.close())
  const port = await freePort()
  const calls: string[] = []
  // The socket goes to a dead port; the GET goes to the gateway, as if the network had dropped only the upgrade.
  const fetch: FetchLike = async (url, init) => {
    calls.push(url)
    return await globalThis.fetch(url.replace(`127.0.0.1:${port}`, httpBase.slice('http://'.length)), init)
  }
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const { next } = watchClient(t, { url: `ws://127.0.0.1:${port}/api/v1/ws`, token, fetch })
  t.strictSame(await next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: 'WebSocket upgrade required', status: 426, delayMs: 5 })
  t.strictSame(calls[0], `http://127.0.0.1:${port}/api/v1/ws?token=${token}`, 'a plain GET of the same URL, http scheme')
})

t.test('400 without a recover: closed (the server will never take this request); a body that is not JSON gives no reason', async (t) => {
  const fetch = answering(400, () => { throw new SyntaxError('not JSON') })
  const port = await freePort()
  const { next } = watchClient(t, { url: `wss://127.0.0.1:${port}/api/v1/ws?v=2`, token: 'a b', fetch })
  t.strictSame(await next(isClosed, 'closed'), { state: 'closed', code: 1006, reason: '', status: 400 })
  t.strictSame(fetch.calls, [{ url: `https://127.0.0.1:${port}/api/v1/ws?v=2&token=a%20b`, headers: {} }],
    'wss becomes https; the URL\'s own query is kept and the token is encoded')
})

t.test('no fetch at all: the close code alone decides (1006: reconnect)', async (t) => {
  const fetch = globalThis.fetch
  t.teardown(() => { globalThis.fetch = fetch })
  // @ts-expect-error an environment without fetch
  delete globalThis.fetch
  const { next } = watchClient(t, { url: `ws://127.0.0.1:${await freePort()}/api/v1/ws`, token: 'any' })
  t.strictSame(await next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: '', delayMs: 5 })
})

t.test('tokenTransport protocol: the token in a subprotocol entry beside a real one; the GET carries it as a bearer header', async (t) => {
  const { app, wsBase } = await startApp({ tokens: { protocolPrefix: 'bearer.', authorizationHeader: true, queryParam: false } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  const opened: Array<string | string[] | undefined> = []
  class Recording extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      opened.push(url, protocols)
    }
  }
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token, tokenTransport: 'protocol', WebSocket: Recording })
  t.match(await next(isConnected, 'connected'), { state: 'connected', userId: 'u1' })
  t.strictSame(opened, [`${wsBase}/api/v1/ws`, ['realtime.v1', `bearer.${token}`]], 'no token in the URL')

  const fetch = answering(401, () => ({ message: 'Invalid or expired token' }))
  const refused = watchClient(t, {
    url: `ws://127.0.0.1:${await freePort()}/api/v1/ws`, token: 'tok', tokenTransport: 'protocol', protocolPrefix: 'jwt.', protocol: 'app.v2', fetch
  })
  t.strictSame(await refused.next(isClosed, 'closed'), { state: 'closed', code: 1006, reason: 'Invalid or expired token', status: 401 })
  t.strictSame(fetch.calls.map((call) => call.headers), [{ authorization: 'Bearer tok' }])

  const real = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: 'unknown', tokenTransport: 'protocol' })
  t.strictSame(await real.next(isClosed, 'closed'), { state: 'closed', code: 1006, reason: 'Invalid or expired token', status: 401 },
    'the server read the bearer header of the GET')
})

t.test('getToken() failing: reconnect with backoff, and ask again', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  let asked = 0
  const getToken = async (): Promise<string> => {
    if (asked++ === 0) throw new Error('auth server down')
    return await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  }
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken })
  t.strictSame(await next(isDisconnected, 'no token'), { state: 'disconnected', code: 1006, reason: 'getToken failed', delayMs: 5 })
  await next(isConnected, 'connected')
  t.equal(asked, 2)
})

t.test('close() while getToken() is pending opens nothing; options without a WebSocket or a token are refused', async (t) => {
  let release = (_token: string): void => {}
  const constructed: string[] = []
  class Counting extends WebSocket {
    constructor (url: string) {
      super(url)
      constructed.push(url)
    }
  }
  const { client, states } = watchClient(t, { url: 'ws://127.0.0.1:1/api/v1/ws', getToken: async () => await new Promise<string>((resolve) => { release = resolve }), WebSocket: Counting })
  await new Promise((resolve) => setTimeout(resolve, 10))
  client.close()
  release('late')
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.strictSame(states, [{ state: 'connecting' }, { state: 'closed', code: 1000, reason: 'Closed by the client' }])
  t.strictSame(constructed, [])
  client.close()
  t.equal(states.length, 2, 'a second close changes nothing')

  const global = globalThis as { WebSocket?: unknown }
  const WebSocketOfNode = global.WebSocket
  t.teardown(() => { global.WebSocket = WebSocketOfNode })
  delete global.WebSocket // Node 22 has one
  t.throws(() => createClient({ url: 'ws://127.0.0.1:1', token: 't' }), { name: 'TypeError', message: 'No WebSocket: pass options.WebSocket (e.g. the ws package on Node 20)' })
  t.throws(() => createClient({ url: 'ws://127.0.0.1:1', WebSocket, ...FAST }), { name: 'TypeError', message: 'Pass options.token or options.getToken' })
})

t.test('the defaults: 500 ms → 20 s, 5 s → 60 s after a 429, with jitter', async (t) => {
  const url = `ws://127.0.0.1:${await freePort()}/api/v1/ws`
  const defaults = { backoff: undefined, slowBackoff: undefined, random: undefined }
  const unavailable = watchClient(t, { url, token: 'any', fetch: answering(503, () => null), ...defaults })
  const first = await unavailable.next(isDisconnected, 'refused') as { delayMs: number }
  unavailable.client.close()
  t.ok(first.delayMs >= 500 && first.delayMs <= 1000, `${first.delayMs} in [500, 1000]`)
  const limited = watchClient(t, { url, token: 'any', fetch: answering(429, () => null), ...defaults })
  const slow = await limited.next(isDisconnected, 'refused') as { delayMs: number }
  limited.client.close()
  t.ok(slow.delayMs >= 5000 && slow.delayMs <= 10000, `${slow.delayMs} in [5000, 10000]`)
})

t.test('close() while the GET is out: the answer changes nothing', async (t) => {
  let answer: (() => void) | undefined
  const fetch: FetchLike = async () => {
    await new Promise<void>((resolve) => { answer = resolve })
    return { status: 503, headers: { get: () => '1' }, json: async () => ({ message: 'Server is shutting down' }) }
  }
  const { client, states, until } = watchClient(t, { url: `ws://127.0.0.1:${await freePort()}/api/v1/ws`, token: 'any', fetch })
  await until(() => answer !== undefined, 'the GET')
  client.close()
  answer!()
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.strictSame(states, [{ state: 'connecting' }, { state: 'closed', code: 1000, reason: 'Closed by the client' }])
})
