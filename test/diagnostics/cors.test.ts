import t, { type Test } from 'tap'
import type { RealtimeOptions } from '../../lib/index.js'
import { startApp, type TestApp } from '../helpers/app.js'
import { PREFIX, assertError, assertOk, bearer, http } from '../helpers/http.js'

const ADMIN_ORIGIN = 'https://admin.example.com'
const ROUTES = ['/connected-users', '/connections', '/metrics', '/health', '/test?user_id=u1']

async function start (t: Test, options: RealtimeOptions): Promise<TestApp> {
  const node = await startApp(options)
  t.teardown(() => node.app.close())
  return node
}

const preflight = (origin: string): Record<string, string> => ({ origin, 'access-control-request-method': 'GET' })
const corsHeaders = (headers: Headers): string[] => [...headers.keys()].filter((name) => name.startsWith('access-control-'))

t.test('an allowed origin gets CORS headers on the diagnostic routes, preflight included', async (t) => {
  const { app, httpBase } = await start(t, { allowedOrigins: [ADMIN_ORIGIN] })
  const health = await http(`${httpBase}${PREFIX}/health`, { origin: ADMIN_ORIGIN })
  assertOk(t, health)
  t.equal(health.headers.get('access-control-allow-origin'), ADMIN_ORIGIN)
  t.match(health.headers.get('vary'), /\bOrigin\b/)

  const options = await http(`${httpBase}${PREFIX}/connections`, { ...preflight(ADMIN_ORIGIN), 'access-control-request-headers': 'authorization' }, 'OPTIONS')
  t.equal(options.status, 204, 'the preflight needs no auth')
  t.equal(options.text, '')
  t.equal(options.headers.get('access-control-allow-origin'), ADMIN_ORIGIN)
  t.match(options.headers.get('access-control-allow-methods'), /\bGET\b/)
  t.equal(options.headers.get('access-control-allow-headers'), 'authorization')

  // An error answer carries the header too, so the admin page can read it.
  const refused = await http(`${httpBase}${PREFIX}/connected-users`, { origin: ADMIN_ORIGIN })
  assertError(t, refused, 401, 'Missing bearer token')
  t.equal(refused.headers.get('access-control-allow-origin'), ADMIN_ORIGIN)
  const ops = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  const allowed = await http(`${httpBase}${PREFIX}/connected-users`, { origin: ADMIN_ORIGIN, ...bearer(ops) })
  assertOk(t, allowed)
  t.equal(allowed.headers.get('access-control-allow-origin'), ADMIN_ORIGIN)
})

t.test('a foreign origin, a suffix trick or null gets no allow-origin', async (t) => {
  const { httpBase } = await start(t, { allowedOrigins: [ADMIN_ORIGIN] })
  for (const origin of ['https://evil.test', `${ADMIN_ORIGIN}.evil.test`, 'http://admin.example.com', 'null']) {
    const health = await http(`${httpBase}${PREFIX}/health`, { origin })
    assertOk(t, health)
    t.equal(health.headers.get('access-control-allow-origin'), null, `GET from ${origin}`)
    const options = await http(`${httpBase}${PREFIX}/connections`, preflight(origin), 'OPTIONS')
    t.equal(options.status, 404, `preflight from ${origin} is not handled`)
    t.strictSame(corsHeaders(options.headers), [], `preflight from ${origin}: no CORS header`)
  }
  const sameSite = await http(`${httpBase}${PREFIX}/health`)
  t.equal(sameSite.headers.get('access-control-allow-origin'), null, 'no Origin, no header')
})

t.test('a RegExp origin is anchored, as at the handshake', async (t) => {
  const { httpBase } = await start(t, { allowedOrigins: [/https:\/\/[a-z]+\.example\.com/] })
  t.equal((await http(`${httpBase}${PREFIX}/health`, { origin: ADMIN_ORIGIN })).headers.get('access-control-allow-origin'), ADMIN_ORIGIN)
  t.equal((await http(`${httpBase}${PREFIX}/health`, { origin: `${ADMIN_ORIGIN}.evil.test` })).headers.get('access-control-allow-origin'), null)
})

t.test('the WebSocket route keeps its own origin gate: no CORS headers there', async (t) => {
  const { httpBase } = await start(t, { allowedOrigins: [ADMIN_ORIGIN] })
  const ws = await http(`${httpBase}${PREFIX}`, { origin: ADMIN_ORIGIN })
  assertError(t, ws, 401, 'Missing access token')
  t.strictSame(corsHeaders(ws.headers), [])
})

t.test('cors: false registers no CORS at all', async (t) => {
  const { httpBase } = await start(t, { allowedOrigins: [ADMIN_ORIGIN], diagnostics: { cors: false } })
  const health = await http(`${httpBase}${PREFIX}/health`, { origin: ADMIN_ORIGIN })
  assertOk(t, health)
  t.strictSame(corsHeaders(health.headers), [])
  const options = await http(`${httpBase}${PREFIX}/connections`, preflight(ADMIN_ORIGIN), 'OPTIONS')
  t.equal(options.status, 404)
  t.strictSame(corsHeaders(options.headers), [])
})

t.test('diagnostics.enabled: false removes all five routes', async (t) => {
  const { app, httpBase } = await start(t, { allowedOrigins: [ADMIN_ORIGIN], diagnostics: { enabled: false, public: true, testRoute: { enabled: true } } })
  const ops = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  for (const route of ROUTES) {
    const result = await http(`${httpBase}${PREFIX}${route}`, { origin: ADMIN_ORIGIN, ...bearer(ops) })
    t.equal(result.status, 404, route)
    // No route of the plugin then, so none of the query reaches Fastify.
    t.strictSame(result.body, { message: `Route GET:${PREFIX}${route.split('?')[0]} not found`, error: 'Not Found', statusCode: 404 })
    t.strictSame(corsHeaders(result.headers), [])
  }
  t.equal((await http(`${httpBase}${PREFIX}/connections`, preflight(ADMIN_ORIGIN), 'OPTIONS')).status, 404)
  assertError(t, await http(`${httpBase}${PREFIX}`), 401, 'Missing access token')
})
