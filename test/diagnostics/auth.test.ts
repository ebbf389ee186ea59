import t, { type Test } from 'tap'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import realtime, { type RealtimeOptions } from '../../lib/index.js'
import { startApp, type TestApp } from '../helpers/app.js'
import { PREFIX, assertError, assertOk, bearer, http, type HttpResult } from '../helpers/http.js'

// Personal data or power: operators only (`/test` once it is enabled).
const OPERATOR = ['/connections', '/metrics', '/test?user_id=u1']
// Any signed-in user may list who is connected.
const CONNECTED_USERS = '/connected-users'
const PROTECTED = [CONNECTED_USERS, ...OPERATOR]
const WITH_TEST_ROUTE = { testRoute: { enabled: true, maxPerMinute: 1000 } }
const ADMIN_ONE = 'admin-token-one-' + 'x'.repeat(16)
const ADMIN_TWO = 'admin-token-two-' + 'y'.repeat(16)
const LOCKED_NOTICE = 'fastify-realtime: /api/v1/ws/connections, /api/v1/ws/metrics, /api/v1/ws/test and the server API (/api/v1/ws/publish, …) answer 403 to everyone: ' +
  'set diagnostics.adminTokens or diagnostics.authorize to let operators in (diagnostics.public: true opens the diagnostic ones to anyone, never the server API)'

async function start (t: Test, options: RealtimeOptions): Promise<TestApp> {
  const started = await startApp(options)
  t.teardown(() => started.app.close())
  return started
}

/** A 200 of a protected route: the envelope, or Prometheus text for /metrics. */
function assertAllowed (t: Test, path: string, result: HttpResult): void {
  if (path === '/metrics') {
    t.equal(result.status, 200, `${path}: 200`)
    t.match(result.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    t.match(result.text, /^realtime_connections 0$/m)
  } else {
    assertOk(t, result)
  }
}

const lockedNotices = (logs: string[]): unknown[] => logs.map((line) => JSON.parse(line)).filter((line) => line.msg === LOCKED_NOTICE)

t.test('default: /connected-users takes a bearer token the token store resolves', async (t) => {
  const { app, httpBase } = await start(t, { diagnostics: WITH_TEST_ROUTE })
  const token = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  const revoked = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  await app.realtime.tokens.revoke(revoked)
  const url = `${httpBase}${PREFIX}${CONNECTED_USERS}`
  const missing = await http(url)
  assertError(t, missing, 401, 'Missing bearer token')
  t.equal(missing.headers.get('www-authenticate'), 'Bearer')
  assertError(t, await http(url, { authorization: `Basic ${token}` }), 401, 'Missing bearer token')
  assertError(t, await http(url, { authorization: 'Bearer' }), 401, 'Missing bearer token')
  const unknown = await http(url, bearer('not-a-token-the-store-knows'))
  assertError(t, unknown, 401, 'Invalid or expired token')
  t.equal(unknown.headers.get('www-authenticate'), null)
  assertError(t, await http(url, bearer(revoked)), 401, 'Invalid or expired token')
  assertOk(t, await http(url, bearer(token)))
  assertOk(t, await http(url, { authorization: `bearer  ${token}` }))
})

t.test('default: the operator routes answer 403 to everyone, and the plugin says once at startup how to open them', async (t) => {
  const { app, httpBase, logs } = await start(t, { diagnostics: WITH_TEST_ROUTE })
  const token = await app.realtime.tokens.issue('customer', { ttlSeconds: 60 })
  for (const path of OPERATOR) {
    const url = `${httpBase}${PREFIX}${path}`
    assertError(t, await http(url, bearer(token)), 403, 'Forbidden')
    assertError(t, await http(url, bearer(ADMIN_ONE)), 403, 'Forbidden')
    const missing = await http(url)
    assertError(t, missing, 403, 'Forbidden')
    t.equal(missing.headers.get('www-authenticate'), null, 'no credential would help: no challenge')
  }
  const notices = lockedNotices(logs)
  t.equal(notices.length, 1, 'logged once')
  t.match(notices[0], { level: 30 })

  // Any way of letting someone in, or no diagnostics at all, and nothing is said.
  for (const diagnostics of [{ adminTokens: [ADMIN_ONE] }, { authorize: () => true }, { public: true }, { enabled: false }]) {
    const configured = await start(t, { diagnostics })
    t.strictSame(lockedNotices(configured.logs), [], Object.keys(diagnostics)[0])
  }
})

t.test('default: a token store that is down answers /connected-users 503 with Retry-After, never 401', async (t) => {
  let behaviour: 'throw' | 'hang' = 'throw'
  const { httpBase } = await start(t, {
    diagnostics: WITH_TEST_ROUTE,
    tokens: {
      timeoutMs: 100,
      retryAfterSeconds: 3,
      resolver: async () => {
        if (behaviour === 'throw') throw new Error('token store down')
        return await new Promise(() => {})
      }
    }
  })
  const url = `${httpBase}${PREFIX}${CONNECTED_USERS}`
  const thrown = await http(url, bearer('some-token'))
  assertError(t, thrown, 503, 'Token store unavailable')
  t.equal(thrown.headers.get('retry-after'), '3')
  behaviour = 'hang'
  const hung = await http(url, bearer('some-token'))
  assertError(t, hung, 503, 'Token store unavailable')
  t.equal(hung.headers.get('retry-after'), '3')
  // The operator routes never ask the token store.
  for (const path of OPERATOR) assertError(t, await http(`${httpBase}${PREFIX}${path}`, bearer('some-token')), 403, 'Forbidden')
})

t.test('adminTokens: only those tokens reach the operator routes; /connected-users takes them and user tokens', async (t) => {
  const { app, httpBase } = await start(t, { diagnostics: { ...WITH_TEST_ROUTE, adminTokens: [ADMIN_ONE, ADMIN_TWO] } })
  const userToken = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  for (const path of PROTECTED) {
    const url = `${httpBase}${PREFIX}${path}`
    assertAllowed(t, path, await http(url, bearer(ADMIN_ONE)))
    assertAllowed(t, path, await http(url, bearer(ADMIN_TWO)))
    const missing = await http(url)
    assertError(t, missing, 401, 'Missing bearer token')
    t.equal(missing.headers.get('www-authenticate'), 'Bearer')
  }
  for (const path of OPERATOR) {
    const url = `${httpBase}${PREFIX}${path}`
    assertError(t, await http(url, bearer('admin-token-one-' + 'x'.repeat(15) + 'z')), 403, 'Forbidden')
    assertError(t, await http(url, bearer(ADMIN_ONE.slice(0, -1))), 403, 'Forbidden')
    assertError(t, await http(url, bearer(ADMIN_ONE + 'x')), 403, 'Forbidden')
    assertError(t, await http(url, bearer(userToken)), 403, 'Forbidden')
  }
  const connectedUsers = `${httpBase}${PREFIX}${CONNECTED_USERS}`
  assertOk(t, await http(connectedUsers, bearer(userToken)))
  assertError(t, await http(connectedUsers, bearer(ADMIN_ONE + 'x')), 401, 'Invalid or expired token')
})

t.test('authorize(request): true lets in, anything else is 403 on the operator routes; /connected-users also takes a user token', async (t) => {
  const seen: string[] = []
  const { app, httpBase } = await start(t, {
    diagnostics: {
      ...WITH_TEST_ROUTE,
      authorize: (request) => {
        seen.push(request.url)
        return request.headers['x-admin'] === 'yes'
      }
    }
  })
  const userToken = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  for (const path of OPERATOR) {
    const url = `${httpBase}${PREFIX}${path}`
    assertAllowed(t, path, await http(url, { 'x-admin': 'yes' }))
    assertError(t, await http(url, { 'x-admin': 'no' }), 403, 'Forbidden')
    assertError(t, await http(url), 403, 'Forbidden')
    assertError(t, await http(url, bearer(userToken)), 403, 'Forbidden')
  }
  const connectedUsers = `${httpBase}${PREFIX}${CONNECTED_USERS}`
  assertOk(t, await http(connectedUsers, { 'x-admin': 'yes' }))
  assertOk(t, await http(connectedUsers, bearer(userToken)))
  assertError(t, await http(connectedUsers, { 'x-admin': 'no' }), 401, 'Missing bearer token')
  t.strictSame(seen, [
    ...OPERATOR.flatMap((path) => Array(4).fill(`${PREFIX}${path}`)),
    ...Array(3).fill(`${PREFIX}${CONNECTED_USERS}`)
  ], 'called once per request, with the request')
})

t.test('adminTokens and authorize together: either lets an operator in', async (t) => {
  const { httpBase } = await start(t, {
    diagnostics: { ...WITH_TEST_ROUTE, adminTokens: [ADMIN_ONE], authorize: (request) => request.headers['x-admin'] === 'yes' }
  })
  for (const path of PROTECTED) {
    const url = `${httpBase}${PREFIX}${path}`
    assertAllowed(t, path, await http(url, bearer(ADMIN_ONE)))
    assertAllowed(t, path, await http(url, { 'x-admin': 'yes' }))
    assertError(t, await http(url), 401, 'Missing bearer token')
  }
  for (const path of OPERATOR) assertError(t, await http(`${httpBase}${PREFIX}${path}`, bearer(ADMIN_TWO)), 403, 'Forbidden')
})

t.test('authorize may be async', async (t) => {
  const { httpBase } = await start(t, {
    diagnostics: {
      ...WITH_TEST_ROUTE,
      authorize: async (request) => {
        await sleep(5)
        return request.headers['x-admin'] === 'yes'
      }
    }
  })
  for (const path of PROTECTED) assertAllowed(t, path, await http(`${httpBase}${PREFIX}${path}`, { 'x-admin': 'yes' }))
  for (const path of OPERATOR) assertError(t, await http(`${httpBase}${PREFIX}${path}`, { 'x-admin': 'nope' }), 403, 'Forbidden')
})

t.test('an authorize that throws answers 500 in the envelope, without its message', async (t) => {
  const { httpBase, logs } = await start(t, {
    diagnostics: { authorize: async () => { throw new Error('directory service exploded') } }
  })
  const result = await http(`${httpBase}${PREFIX}/connected-users`)
  assertError(t, result, 500, 'Internal Server Error')
  t.notOk(result.text.includes('exploded'))
  const logged = logs.map((line) => JSON.parse(line)).filter((line) => line.reqId === result.body.trace_id && line.level === 50)
  t.equal(logged.length, 1, 'the failure is logged once, with the trace id')
  t.equal(logged[0]?.err?.message, 'directory service exploded')
})

t.test('public: true serves the protected routes without any header', async (t) => {
  const { httpBase } = await start(t, { diagnostics: { ...WITH_TEST_ROUTE, public: true } })
  for (const path of PROTECTED) {
    assertAllowed(t, path, await http(`${httpBase}${PREFIX}${path}`))
    assertAllowed(t, path, await http(`${httpBase}${PREFIX}${path}`, bearer('garbage')))
  }
})

t.test('routeOpts: hooks run before the auth and may answer themselves; preHandlers run after it', async (t) => {
  const onRequestCalls: string[] = []
  const preHandlerCalls: string[] = []
  const { httpBase } = await start(t, {
    diagnostics: {
      ...WITH_TEST_ROUTE,
      adminTokens: [ADMIN_ONE],
      routeOpts: {
        config: { marker: 'ops-dashboard' },
        onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
          onRequestCalls.push(`${(request.routeOptions.config as { marker?: string }).marker}:${request.routeOptions.url}`)
          if (request.headers['x-block'] === '1') {
            // The plugin's envelope is not required of a hook; this one uses it anyway.
            await reply.code(418).send({ status_code: 418, message: 'Blocked by the hook', trace_id: String(request.id), data: null })
          }
        },
        preHandler: async (request: FastifyRequest) => { preHandlerCalls.push(request.routeOptions.url as string) }
      }
    }
  })
  for (const path of PROTECTED) {
    const url = `${httpBase}${PREFIX}${path}`
    const route = `${PREFIX}${path.split('?')[0]}`
    onRequestCalls.length = 0
    preHandlerCalls.length = 0

    assertAllowed(t, path, await http(url, bearer(ADMIN_ONE)))
    t.strictSame(onRequestCalls, [`ops-dashboard:${route}`], `${path}: onRequest ran and saw routeOpts.config`)
    t.strictSame(preHandlerCalls, [route], `${path}: the user's preHandler ran after the auth let it in`)

    assertError(t, await http(url), 401, 'Missing bearer token')
    t.equal(onRequestCalls.length, 2)
    t.equal(preHandlerCalls.length, 1, `${path}: the user's preHandler does not run for a refused request`)

    // The hook's own reply wins over the auth's 401 and over a valid token alike.
    assertError(t, await http(url, { 'x-block': '1' }), 418, 'Blocked by the hook')
    assertError(t, await http(url, { 'x-block': '1', ...bearer(ADMIN_ONE) }), 418, 'Blocked by the hook')
    t.equal(onRequestCalls.length, 4)
    t.equal(preHandlerCalls.length, 1)
  }
})

t.test('routeOpts: a hook may answer with a body of its own', async (t) => {
  const { httpBase } = await start(t, {
    diagnostics: {
      routeOpts: {
        onRequest: async (_request: FastifyRequest, reply: FastifyReply) => { await reply.code(418).send({ blocked: true }) }
      }
    }
  })
  const blocked = await http(`${httpBase}${PREFIX}/connected-users`)
  t.equal(blocked.status, 418)
  t.strictSame(blocked.body, { blocked: true })
})

t.test('routeOpts.logLevel reaches the routes; an array of preHandlers runs in order after the auth', async (t) => {
  const order: string[] = []
  const { app, httpBase, logs } = await start(t, {
    diagnostics: {
      routeOpts: {
        logLevel: 'warn',
        preHandler: [async () => { order.push('first') }, async () => { order.push('second') }]
      }
    }
  })
  const token = await app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  const quiet = await http(`${httpBase}${PREFIX}/connected-users`, bearer(token))
  assertOk(t, quiet)
  t.strictSame(order, ['first', 'second'])
  const refused = await http(`${httpBase}${PREFIX}/connections`)
  assertError(t, refused, 403, 'Forbidden')
  // The WebSocket route does not get routeOpts: its request is logged at info as usual.
  const control = await http(`${httpBase}${PREFIX}`)
  assertError(t, control, 401, 'Missing access token')
  const lines = logs.map((line) => JSON.parse(line))
  t.strictSame(lines.filter((line) => line.reqId === quiet.body.trace_id || line.reqId === refused.body.trace_id), [], 'nothing below warn is logged for diagnostic routes')
  t.ok(lines.some((line) => line.reqId === control.body.trace_id && line.msg === 'incoming request'), 'the control request is logged')
  t.strictSame(order, ['first', 'second'], 'the refused request reached no preHandler')
})

t.test('invalid diagnostics options reject registration with FST_REALTIME_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<{ path: string, diagnostics: unknown }> = [
    { path: 'diagnostics.adminTokens.0', diagnostics: { adminTokens: ['short'] } },
    { path: 'diagnostics.adminTokens.1', diagnostics: { adminTokens: ['x'.repeat(16), 'y'.repeat(15)] } },
    { path: 'diagnostics.adminTokens', diagnostics: { adminTokens: 'x'.repeat(16) } },
    { path: 'diagnostics.authorize', diagnostics: { authorize: true } },
    { path: 'diagnostics.public', diagnostics: { public: 'yes' } },
    { path: 'diagnostics.cors', diagnostics: { cors: 1 } },
    { path: 'diagnostics.routeOpts', diagnostics: { routeOpts: 'x' } },
    { path: 'diagnostics.testRoute.maxPerMinute', diagnostics: { testRoute: { maxPerMinute: 0 } } },
    { path: 'diagnostics.testRoute.enable', diagnostics: { testRoute: { enable: true } } },
    { path: 'diagnostics.metricsRegistry', diagnostics: { metricsRegistry: {} } },
    { path: 'diagnostics.adminToken', diagnostics: { adminToken: 'x'.repeat(16) } }
  ]
  for (const c of cases) {
    const app = Fastify()
    app.register(realtime, { diagnostics: c.diagnostics } as RealtimeOptions)
    const error = await app.ready().then(() => null, (err: Error & { code?: string }) => err)
    await app.close()
    t.equal(error?.code, 'FST_REALTIME_INVALID_OPTION', c.path)
    t.equal(error?.message.startsWith(`Invalid fastify-realtime option "${c.path}": `), true, `${c.path}: ${error?.message}`)
  }
  const app = Fastify()
  app.register(realtime, { diagnostics: { adminTokens: ['short'] } })
  const error = await app.ready().then(() => null, (err: Error) => err)
  await app.close()
  t.equal(error?.message, 'Invalid fastify-realtime option "diagnostics.adminTokens.0": must not have fewer than 16 characters')
})
