import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../helpers/app.js'
import { ADMIN_TOKEN, PREFIX, assertError, assertOk, bearer, http, openClient } from '../helpers/http.js'

t.test('a token in the query and the Authorization header of a diagnostic request reaches no log line', async (t) => {
  const node = await startApp({ diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  t.teardown(() => node.app.close())
  const token = await node.app.realtime.tokens.issue('ops', { ttlSeconds: 60 })
  const alice = await openClient(t, node, node, 'alice')
  const unknown = randomBytes(32).toString('base64url')

  const listed = await http(`${node.httpBase}${PREFIX}/connections?token=${token}&limit=5`, bearer(ADMIN_TOKEN))
  const data = assertOk(t, listed)
  t.equal(data.count, 1)
  // The diagnostics auth reads the header only: a token in the query is not accepted.
  const queryOnly = await http(`${node.httpBase}${PREFIX}/connected-users?token=${token}`)
  assertError(t, queryOnly, 401, 'Missing bearer token')
  const refused = await http(`${node.httpBase}${PREFIX}/metrics?token=${unknown}`, bearer(unknown))
  assertError(t, refused, 403, 'Forbidden')
  const notFound = await http(`${node.httpBase}${PREFIX}/nope?token=${token}`, bearer(token))
  t.equal(notFound.status, 404)
  t.equal(notFound.body.message, `Route GET:${PREFIX}/nope not found`)
  assertOk(t, await http(`${node.httpBase}${PREFIX}/health?token=${token}`, bearer(token)))

  for (const result of [listed, queryOnly, refused, notFound]) {
    t.notOk([token, unknown, alice.token, ADMIN_TOKEN].some((secret) => result.text.includes(secret)), 'no token in the body')
  }
  const lines = node.logs.map((line) => JSON.parse(line))
  const incoming = lines.find((line) => line.reqId === listed.body.trace_id && line.msg === 'incoming request')
  t.equal(incoming?.req?.url, `${PREFIX}/connections?limit=5`, 'the request was logged, its URL without the token')
  t.ok(lines.length > 10, `trace-level logging is on (${lines.length} lines)`)
  for (const secret of [token, unknown, alice.token, ADMIN_TOKEN]) {
    t.strictSame(node.logs.filter((line) => line.includes(secret)), [], 'no log line carries a token')
  }
})
