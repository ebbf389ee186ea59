import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { startApp, type TestApp } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { ADMIN_TOKEN, PREFIX, assertError, assertOk, bearer, http, openClient } from '../helpers/http.js'
import { CONSOLE_CSP, renderPage } from '../../lib/diagnostics/console.js'

// The operator console's page and assets, and the action log of the routes it calls.
// What the page does in a browser: test/browser/console.test.ts.

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

async function start (t: Test, diagnostics: Record<string, unknown> = {}): Promise<TestApp> {
  const node = await startApp({ cluster: { nodeId: 'console-node' }, diagnostics: { adminTokens: [ADMIN_TOKEN], console: true, ...diagnostics } })
  t.teardown(() => node.app.close())
  return node
}

/** The log lines of operator actions, parsed. */
const actionLines = (node: TestApp): any[] => node.logs.map((line) => JSON.parse(line)).filter((line) => line.msg === 'fastify-realtime: operator action')

t.test('off by default: no console route', async (t) => {
  const node = await startApp({ diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  for (const path of ['/console', '/console/console.js', '/console/console.css']) {
    t.equal((await http(`${node.httpBase}${PREFIX}${path}`, bearer(ADMIN_TOKEN))).status, 404, path)
  }
})

t.test('the page and its two assets: strict CSP, no cache, nothing from elsewhere, no inline script', async (t) => {
  const node = await start(t)
  t.equal(CONSOLE_CSP, CSP)
  const expected = [
    ['/console', 'text/html; charset=utf-8'],
    ['/console/console.js', 'text/javascript; charset=utf-8'],
    ['/console/console.css', 'text/css; charset=utf-8']
  ]
  for (const [path, type] of expected) {
    // No credential: the page holds no data, only the script that asks the operator routes for it.
    const result = await http(`${node.httpBase}${PREFIX}${path}`)
    t.equal(result.status, 200, path)
    t.equal(result.headers.get('content-type'), type)
    t.equal(result.headers.get('content-security-policy'), CSP)
    t.equal(result.headers.get('x-content-type-options'), 'nosniff')
    t.equal(result.headers.get('x-frame-options'), 'DENY')
    t.equal(result.headers.get('referrer-policy'), 'no-referrer')
    t.equal(result.headers.get('cache-control'), 'no-store')
    t.notMatch(result.text, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i, `${path}: no other host`)
    if (path === '/console/console.js') t.notMatch(result.text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'the script never parses markup')
  }
  const page = (await http(`${node.httpBase}${PREFIX}/console`)).text
  const scripts = [...page.matchAll(/<script\b[^>]*>/g)].map((match) => match[0])
  t.strictSame(scripts, ['<script id="config" type="application/json">', `<script src="${PREFIX}/console/console.js" defer>`], 'a data block and the served script, nothing inline')
  t.match(page, `<link rel="stylesheet" href="${PREFIX}/console/console.css">`)
  t.notMatch(page, /\bstyle=|\bon[a-z]+=/, 'no inline style or handler')
  const config = JSON.parse(/<script id="config" type="application\/json">(.*)<\/script>/.exec(page)?.[1] ?? '')
  t.strictSame(config, {
    base: PREFIX,
    testEvent: { channel: 'notification.events', event: 'REALTIME_TEST' },
    closeCodes: {
      1000: 'normal closure',
      1001: 'going away',
      1002: 'protocol error',
      1005: 'no status',
      1006: 'abnormal closure',
      1007: 'invalid payload',
      1008: 'policy violation',
      1009: 'message too big',
      4001: 'slow consumer',
      4003: 'resync needed',
      4005: 'token expired',
      4006: 'rate limited',
      4500: 'replaced',
      4501: 'token revoked',
      4502: 'forced logout',
      4503: 'protocol violation'
    },
    refreshMs: 5000
  })
})

t.test('the page cannot be broken out of by what it embeds', async (t) => {
  const hostile = '/x"><script>alert(1)</script>&\''
  const page = renderPage('<link href="{{base}}/a.css"><script type="application/json">{{config}}</script>', {
    base: hostile, testEvent: { channel: '</script><b>', event: 'E' }, closeCodes: {}, refreshMs: 1
  })
  t.equal(page, '<link href="/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;/a.css"><script type="application/json">' +
    '{"base":"/x\\"\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\u0026\'","testEvent":{"channel":"\\u003c/script\\u003e\\u003cb\\u003e","event":"E"},"closeCodes":{},"refreshMs":1}</script>')
  const json = /type="application\/json">(.*)<\/script>$/.exec(page)?.[1] ?? ''
  t.equal(JSON.parse(json).base, hostile, 'the data block still reads back as the value')
})

t.test('a console query never reaches the logs: the page takes no query', async (t) => {
  const node = await start(t)
  const result = await http(`${node.httpBase}${PREFIX}/console?token=${ADMIN_TOKEN}&x=1`)
  t.equal(result.status, 200)
  t.notOk(node.logs.some((line) => line.includes(ADMIN_TOKEN)), 'no line carries the token')
  t.ok(node.logs.some((line) => line.includes(`"url":"${PREFIX}/console"`)), 'the URL is logged without its query')
})

t.test('/metrics names the node that answered, so the console tells scrapes through one URL apart', async (t) => {
  const node = await start(t)
  const result = await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))
  t.equal(result.status, 200)
  t.equal(result.headers.get('x-realtime-node'), 'console-node')
  t.match(result.text, /^realtime_subscriber_replacements_total 0$/m)
})

t.test('each server API action is logged once with the admin token\'s digest prefix, never a token or data', async (t) => {
  const node = await start(t)
  const alice = await openClient(t, node, node, 'alice', ['notification.events'])
  const customer = await node.app.realtime.tokens.issue('bob', { ttlSeconds: 60 })
  const operator = `admin-token:${createHash('sha256').update(ADMIN_TOKEN).digest('hex').slice(0, 8)}`
  const post = async (path: string, body: unknown): Promise<any> => assertOk(t, await http(`${node.httpBase}${PREFIX}${path}`, bearer(ADMIN_TOKEN), 'POST', body))

  await post('/publish', { channel: 'notification.events', event: '<b>TEST</b>', data: { secret: 'data-never-logged' }, user_id: 'alice' })
  await post('/publish', [{ channel: 'settings', event: 'S', data: {} }, { channel: 'settings', event: 'S', data: {} }])
  await post('/disconnect', { user_id: 'carol', code: 4000, reason: 'checking' })
  await post('/revoke', { token: customer })
  const aliceClosed = closed(alice.socket)
  await post('/force-logout', { user_id: 'alice' })
  t.equal((await aliceClosed).code, 4502)

  const lines = actionLines(node).map(({ operator, action, user_id: userId, channel, event, items, code, reason, level }) =>
    ({ operator, action, user_id: userId, channel, event, items, code, reason, level }))
  const entry = (fields: Record<string, unknown>): Record<string, unknown> =>
    ({ operator, user_id: undefined, channel: undefined, event: undefined, items: undefined, code: undefined, reason: undefined, level: 30, ...fields })
  t.strictSame(lines, [
    entry({ action: 'publish', channel: 'notification.events', event: '<b>TEST</b>', user_id: 'alice' }),
    entry({ action: 'publish', items: 2 }),
    entry({ action: 'disconnect', user_id: 'carol', code: 4000, reason: 'checking' }),
    entry({ action: 'revoke' }),
    entry({ action: 'force-logout', user_id: 'alice' })
  ])
  const all = node.logs.join('\n')
  t.notOk(all.includes(ADMIN_TOKEN), 'never the admin token')
  t.notOk(all.includes(customer), 'never the revoked token')
  t.notOk(all.includes('data-never-logged'), 'never an event\'s data')
})

t.test('authorize names the operator: a string is the name, true is just "authorize"; a refusal logs nothing', async (t) => {
  const node = await start(t, {
    adminTokens: [],
    authorize: (request: { headers: Record<string, string | undefined> }) => {
      const user = request.headers['x-sso-user']
      return user === 'anonymous' ? true : user === 'nobody' ? '' : user ?? false
    }
  })
  const disconnect = async (headers: Record<string, string>): Promise<any> =>
    await http(`${node.httpBase}${PREFIX}/disconnect`, headers, 'POST', { user_id: 'dave' })
  assertOk(t, await disconnect({ 'x-sso-user': 'jane@ops' }))
  assertOk(t, await disconnect({ 'x-sso-user': 'anonymous' }))
  assertError(t, await disconnect({ 'x-sso-user': 'nobody' }), 403, 'Forbidden')
  assertError(t, await disconnect({}), 403, 'Forbidden')
  t.strictSame(actionLines(node).map((line) => line.operator), ['authorize:jane@ops', 'authorize'])
})

t.test('/connections filters by node too, alone or with a user', async (t) => {
  const node = await start(t)
  await openClient(t, node, node, 'erin')
  await openClient(t, node, node, 'frank')
  const list = async (query: string): Promise<string[]> =>
    assertOk(t, await http(`${node.httpBase}${PREFIX}/connections?${query}`, bearer(ADMIN_TOKEN))).connections.map((entry: any) => entry.user_id).sort()
  t.strictSame(await list('node_id=console-node'), ['erin', 'frank'])
  t.strictSame(await list('node_id=other-node'), [])
  t.strictSame(await list('node_id=console-node&user_id=frank'), ['frank'])
  t.strictSame(await list('user_id=erin'), ['erin'])
  assertError(t, await http(`${node.httpBase}${PREFIX}/connections?node_id=`, bearer(ADMIN_TOKEN)), 400, 'querystring/node_id must NOT have fewer than 1 characters')
})
