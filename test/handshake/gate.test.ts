import t from 'tap'
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import { once } from 'node:events'
import { startApp } from '../helpers/app.js'
import { handshake, connect } from '../helpers/client.js'

const TRACE_ID = /^[0-9a-f]{16}$/

t.test('a valid token opens the socket and the first message is `connected`', async (t) => {
  const { app, wsBase } = await startApp({ heartbeat: { intervalMs: 25000 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue(120045, { ttlSeconds: 60 })
  const { socket, first } = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => socket.terminate())
  t.equal(first.event, 'connected')
  t.equal(first.channel, null)
  t.match(first.data, { user_id: '120045', subscriptions: ['settings'], heartbeat_interval_ms: 25000 })
})

t.test('each row of the handshake table, with exact status, message and envelope', async (t) => {
  const { app, wsBase } = await startApp({ allowedOrigins: ['https://app.example.com'] })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })

  const cases: Array<{ name: string, url: string, headers?: Record<string, string>, status: number, message: string }> = [
    { name: 'foreign origin', url: `/api/v1/ws?token=${token}`, headers: { origin: 'https://evil.test' }, status: 403, message: 'Origin not allowed' },
    { name: 'no token', url: '/api/v1/ws', status: 401, message: 'Missing access token' },
    { name: 'empty token', url: '/api/v1/ws?token=', status: 401, message: 'Missing access token' },
    { name: 'unknown token', url: '/api/v1/ws?token=nope', status: 401, message: 'Invalid or expired token' }
  ]
  for (const c of cases) {
    const result = await handshake(`${wsBase}${c.url}`, { headers: c.headers })
    if (result.kind !== 'rejected') throw new Error(`${c.name}: expected a rejection`)
    t.equal(result.status, c.status, c.name)
    t.equal(result.headers['content-type'], 'application/json; charset=utf-8', c.name)
    t.same(Object.keys(result.body), ['status_code', 'message', 'trace_id', 'data'], c.name)
    t.equal(result.body.status_code, c.status, c.name)
    t.equal(result.body.message, c.message, c.name)
    t.equal(result.body.data, null, c.name)
    t.match(result.body.trace_id, TRACE_ID, c.name)
  }
})
