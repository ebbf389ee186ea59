import t from 'tap'
import { startApp } from '../helpers/app.js'
import { isConnected, isDisconnected, watchClient } from '../helpers/sdk.js'

t.test('the token is refreshed in place before expires_at: the socket outlives its first token, no reconnect', async (t) => {
  const { app, wsBase, logs } = await startApp()
  t.teardown(() => app.close())
  const issued: string[] = []
  const getToken = async (): Promise<string> => {
    issued.push(await app.realtime.tokens.issue('u1', { ttlSeconds: 2 }))
    return issued.at(-1)!
  }
  const { next, states, until } = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken })
  await next(isConnected, 'connected')
  const started = Date.now()
  // Refreshes come a third of the time left before the expiry (2 s tokens: about every 1.3 s).
  await until(() => issued.length >= 3 && Date.now() - started > 2500, 'two refreshes, past the first token\'s expiry')
  t.strictSame(states.map((state) => state.state), ['connecting', 'connected'], 'one socket all along')
  t.equal(app.realtime.stats().connects, 1)
  t.notOk(logs.some((line) => issued.some((token) => line.includes(token))), 'no token in any log line')
})

t.test('a refresh refused (INVALID_TOKEN) is tried again halfway to the expiry; past it, 4005 and a reconnect with a new token', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  // The client's clock first runs ahead, so the first refresh is due at once; set right when the refused one is asked for.
  let ahead = 2700
  const answers: Array<() => Promise<string>> = [
    async () => await app.realtime.tokens.issue('u1', { ttlSeconds: 3 }),
    async () => { ahead = 0; return 'not-a-token' },
    async () => await app.realtime.tokens.issue('u1', { ttlSeconds: 60 })
  ]
  let asked = 0
  const { next, states, until } = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken: async () => await answers[asked++](), now: () => Date.now() + ahead })
  await next(isConnected, 'connected')
  const started = Date.now()
  await until(() => asked === 3, 'the second refresh')
  t.ok(Date.now() - started > 500, 'tried again later, not at once')
  await until(() => Date.now() - started > 3500, 'past the first token\'s expiry')
  t.strictSame(states, [{ state: 'connecting' }, states[1]], 'the refused refresh cost nothing; the second kept the socket past 3 s')

  let late = 0
  const failing = watchClient(t, {
    url: `${wsBase}/api/v1/ws`,
    getToken: async () => {
      if (late++ === 0) return await app.realtime.tokens.issue('u2', { ttlSeconds: 1 })
      if (late === 2) throw new Error('auth server down')
      return await app.realtime.tokens.issue('u2', { ttlSeconds: 60 })
    }
  })
  await failing.next(isConnected, 'connected')
  t.strictSame(await failing.next(isDisconnected, 'expired'), { state: 'disconnected', code: 4005, reason: 'Access token expired', delayMs: 5 },
    'getToken failed at the refresh, too close to the expiry to try again')
  await failing.next(isConnected, 'reconnected with a new token')
  t.equal(late, 3)
})

t.test('a token valid for a month: the refresh timer is capped, not fired at once', async (t) => {
  const { app, wsBase } = await startApp()
  t.teardown(() => app.close())
  let asked = 0
  const { next } = watchClient(t, { url: `${wsBase}/api/v1/ws`, getToken: async () => { asked++; return await app.realtime.tokens.issue('u1', { ttlSeconds: 31 * 86400 }) } })
  await next(isConnected, 'connected')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(asked, 1)
})
