import t from 'tap'
import { startApp } from '../helpers/app.js'
import { isClosed, isConnected, isDisconnected, networkCutter, watchClient } from '../helpers/sdk.js'

const RETRY = [1000, 4000, 4001, 4003, 4004, 4499]
const STOP = [4500, 4501, 4502, 4503, 4600, 4999]

t.test('a server close with a code the client may reconnect after: disconnected with the code, reason and normal delay, then connected again', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  for (const code of RETRY) {
    const userId = `retry-${code}`
    const token = await app.realtime.tokens.issue(userId, { ttlSeconds: 60 })
    const { next, states } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token })
    await next(isConnected, `${code}: connected`)
    await app.realtime.disconnect(userId, { code, reason: `closed with ${code}` })
    t.strictSame(await next(isDisconnected, `${code}: disconnected`), { state: 'disconnected', code, reason: `closed with ${code}`, delayMs: 5 }, String(code))
    await next(isConnected, `${code}: connected again`)
    t.strictSame(states.map((state) => state.state), ['connecting', 'connected', 'disconnected', 'connecting', 'connected'], `${code}: the states`)
  }
})

t.test('4006: the longer backoff', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('flooder', { ttlSeconds: 60 })
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token })
  await next(isConnected, 'connected')
  await app.realtime.disconnect('flooder', { code: 4006, reason: 'Rate limited' })
  t.strictSame(await next(isDisconnected, 'disconnected'), { state: 'disconnected', code: 4006, reason: 'Rate limited', delayMs: 40 })
  await next(isConnected, 'connected again')
})

t.test('4500–4999: closed with the code and reason, and no reconnect', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  for (const code of STOP) {
    const userId = `stop-${code}`
    const token = await app.realtime.tokens.issue(userId, { ttlSeconds: 60 })
    const { next, states } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token })
    await next(isConnected, `${code}: connected`)
    await app.realtime.disconnect(userId, { code, reason: `closed with ${code}` })
    t.strictSame(await next(isClosed, `${code}: closed`), { state: 'closed', code, reason: `closed with ${code}` }, String(code))
    await new Promise((resolve) => setTimeout(resolve, 50)) // ten times the reconnect delay
    t.strictSame(states.map((state) => state.state), ['connecting', 'connected', 'closed'], `${code}: no reconnect`)
    t.notOk(app.realtime.connectedUsers().includes(userId), `${code}: the server has no socket of the user`)
  }
})

t.test('4005: getToken() is asked for a new token before the reconnect; with a fixed token the client closes', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const issued: string[] = []
  const getToken = async (): Promise<string> => {
    issued.push(await app.realtime.tokens.issue('renewing', { ttlSeconds: 60 }))
    return issued.at(-1)!
  }
  const renewing = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken })
  await renewing.next(isConnected, 'connected')
  t.equal(issued.length, 1, 'the first connect asked for a token')
  await app.realtime.disconnect('renewing', { code: 4005, reason: 'Access token expired' })
  t.strictSame(await renewing.next(isDisconnected, 'disconnected'), { state: 'disconnected', code: 4005, reason: 'Access token expired', delayMs: 5 })
  await renewing.next(isConnected, 'connected again')
  t.equal(issued.length, 2, 'a new token for the reconnect')

  const fixed = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('fixed', { ttlSeconds: 60 }) })
  await fixed.next(isConnected, 'connected')
  await app.realtime.disconnect('fixed', { code: 4005, reason: 'Access token expired' })
  t.strictSame(await fixed.next(isClosed, 'closed'), { state: 'closed', code: 4005, reason: 'Access token expired' }, 'nothing to reconnect with')
})

t.test('the real thing: a newer connection of the user (4500), a revoked token (4501), a forced logout (4502) end the session', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const url = `${wsBase}/api/v1/ws`
  const older = watchClient(t, { url, token: await app.realtime.tokens.issue('two-tabs', { ttlSeconds: 60 }) })
  await older.next(isConnected, 'the older tab connected')
  const newer = watchClient(t, { url, token: await app.realtime.tokens.issue('two-tabs', { ttlSeconds: 60 }) })
  await newer.next(isConnected, 'the newer tab connected')
  t.strictSame(await older.next(isClosed, 'the older tab closed'), { state: 'closed', code: 4500, reason: 'Replaced by a newer connection' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(newer.client.state.state, 'connected', 'the older tab did not come back to take over')

  const revokedToken = await app.realtime.tokens.issue('revoked', { ttlSeconds: 60 })
  const revoked = watchClient(t, { url, getToken: () => revokedToken })
  await revoked.next(isConnected, 'connected')
  await app.realtime.tokens.revoke(revokedToken)
  t.strictSame(await revoked.next(isClosed, 'closed'), { state: 'closed', code: 4501, reason: 'Access token revoked' })

  const loggedOut = watchClient(t, { url, token: await app.realtime.tokens.issue('120045', { ttlSeconds: 60 }) }, ['mobile.force.logout'])
  await loggedOut.next(isConnected, 'connected')
  await app.realtime.forceLogout('120045')
  t.strictSame(await loggedOut.next(isClosed, 'closed'), { state: 'closed', code: 4502, reason: 'Forced logout' })
  t.match(loggedOut.events, [{ event: 'MOBILE_USER_FORCE_LOGOUT_EVENT', channel: 'mobile.force.logout', data: { mobile_user_id: 120045, is_force_logout: true } }],
    'the force-logout event reached its handler without a subscription')
})

t.test('1006 (the server cut the socket) and 1009 (a message over the payload limit): reconnect', async (t) => {
  const network = networkCutter()
  const { app, wsBase } = await startApp({ limits: { maxPayloadBytes: 64 } }, {}, network.beforeListen)
  t.teardown(() => app.close())
  const { client, next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('cut', { ttlSeconds: 60 }) })
  await next(isConnected, 'connected')
  network.cut()
  t.strictSame(await next(isDisconnected, 'cut'), { state: 'disconnected', code: 1006, reason: '', delayMs: 5 })
  await next(isConnected, 'connected again')
  const tooBig = client.subscribe('x'.repeat(100))
  t.strictSame(await next(isDisconnected, 'too big'), { state: 'disconnected', code: 1009, reason: '', delayMs: 5 })
  // The subscribe would be sent again on every reconnect (and close it again): the app gives it up.
  await client.unsubscribe('x'.repeat(100))
  await t.rejects(tooBig, { code: 'UNSUBSCRIBED' })
  await next(isConnected, 'connected once more')
})

t.test('1001 (app.close()): reconnect attempts with growing delays, each failing as the server is gone (1006, the GET fails too)', async (t) => {
  const { app, wsBase } = await startApp()
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('shutdown', { ttlSeconds: 60 }), random: () => 0.999 })
  await next(isConnected, 'connected')
  await app.close()
  t.strictSame(await next(isDisconnected, 'shut down'), { state: 'disconnected', code: 1001, reason: 'Server shutting down', delayMs: 10 })
  t.strictSame(await next(isDisconnected, 'refused'), { state: 'disconnected', code: 1006, reason: '', delayMs: 15 }, 'the second attempt waits longer')
  t.strictSame(await next(isDisconnected, 'refused again'), { state: 'disconnected', code: 1006, reason: '', delayMs: 20 }, 'and is capped at maxMs')
})

t.test('reconnect(): skips the backoff of a waiting reconnect; does nothing while connected or closed', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const { client, next, states } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), backoff: { minMs: 60_000, maxMs: 60_000 } })
  await next(isConnected, 'connected')
  client.reconnect()
  await app.realtime.disconnect('u1', { code: 4000, reason: 'network changed' })
  t.strictSame(await next(isDisconnected, 'disconnected'), { state: 'disconnected', code: 4000, reason: 'network changed', delayMs: 60_000 })
  client.reconnect()
  await next(isConnected, 'connected at once')
  client.close()
  client.reconnect()
  t.strictSame(states.map((state) => state.state), ['connecting', 'connected', 'disconnected', 'connecting', 'connected', 'closed'])
})

t.test('pingIntervalMs against the gateway: its pongs keep the socket', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  const { next, states } = watchClient(t, { url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), pingIntervalMs: 20 })
  await next(isConnected, 'connected')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.strictSame(states.map((state) => state.state), ['connecting', 'connected'])
  t.ok(app.realtime.connections()[0].messages_in >= 3, 'pings went out')
})
