import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import type { TestApp } from '../helpers/app.js'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'
import { hashToken } from '../../lib/tokens/token-store.js'
import { closed } from '../helpers/client.js'
import { startNodes } from '../helpers/cluster.js'
import { within } from '../helpers/outage.js'
import { openPhone, type Phone } from '../helpers/phone.js'

async function open (t: Test, node: TestApp, token: string): Promise<Phone> {
  const phone = await openPhone(`${node.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => phone.socket.terminate())
  return phone
}

/** The next message after the ones already received. */
async function next (phone: Phone): Promise<any> {
  return (await within(phone.inbox.until(phone.inbox.messages.length + 1), 5000, 'the next message')).at(-1)
}

const invalidToken = { event: 'error', channel: null, data: { code: 'INVALID_TOKEN', message: 'Invalid or expired token' } }

t.test('a refresh with a new token of the same user answers refreshed; expiry then follows the new token (4005)', async (t) => {
  const node = await startApp()
  t.teardown(async () => await node.app.close())
  const old = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 600 })
  const phone = await open(t, node, old)
  t.ok(Math.abs(phone.connected.data.expires_at - (Date.now() / 1000 + 600)) < 5, 'connected carries the expiry in unix seconds')
  const renewed = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 1 })
  phone.send({ event: 'refresh', token: renewed })
  const answer = await next(phone)
  t.strictSame(Object.keys(answer), ['event', 'channel', 'data'])
  t.match(answer, { event: 'refreshed', channel: null, data: { expires_at: Number } })
  t.ok(answer.data.expires_at < Date.now() / 1000 + 2, 'the expiry of the new token')
  t.equal((await within(closed(phone.socket), 5000, 'the expiry')).code, 4005, 'closed when the new token expires')
  t.notOk(node.logs.some((line) => line.includes(renewed) || line.includes(old)), 'no token in any log line')
})

t.test('cluster: after a refresh, revoking the new token on another node closes the socket (4501); revoking the old one no longer does', async (t) => {
  const [a, b] = await startNodes(t, 2)
  const old = await a.app.realtime.tokens.issue('u1', { ttlSeconds: 600 })
  const phone = await open(t, a, old)
  const renewed = await a.app.realtime.tokens.issue('u1', { ttlSeconds: 600 })
  phone.send({ event: 'refresh', token: renewed })
  t.equal((await next(phone)).event, 'refreshed')

  // A witness on the same node: revocations reach a node in order, so once its socket closed, the old token's was handled too.
  const witnessToken = await a.app.realtime.tokens.issue('u2', { ttlSeconds: 600 })
  const witness = await open(t, a, witnessToken)
  await b.app.realtime.tokens.revoke(old)
  await b.app.realtime.tokens.revoke(witnessToken)
  t.equal((await within(closed(witness.socket), 5000, 'the witness revoked')).code, 4501)
  t.equal(phone.socket.readyState, WebSocket.OPEN, 'the old token no longer closes the socket')

  await b.app.realtime.tokens.revoke(renewed)
  t.equal((await within(closed(phone.socket), 5000, 'the new token revoked')).code, 4501)
})

t.test('an unknown, revoked, expired or another user\'s token answers INVALID_TOKEN and the socket keeps its own', async (t) => {
  const node = await startApp()
  t.teardown(async () => await node.app.close())
  const own = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 600 })
  const phone = await open(t, node, own)
  const revoked = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 600 })
  await node.app.realtime.tokens.revoke(revoked)
  const expiring = await node.app.realtime.tokens.issue('u1', { ttlSeconds: 1 })
  const someoneElse = await node.app.realtime.tokens.issue('u2', { ttlSeconds: 600 })
  // Past its expiry: 1 s rounded up to a whole second.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  for (const token of ['not-a-token-' + 'x'.repeat(40), revoked, expiring, someoneElse]) {
    phone.send({ event: 'refresh', token })
    t.strictSame(await next(phone), invalidToken)
  }
  phone.send({ event: 'refresh' })
  t.strictSame(await next(phone), { event: 'error', channel: null, data: { code: 'INVALID_MESSAGE', message: '"refresh" needs a "token" string of 1 to 4096 characters' } })
  t.notOk(node.logs.some((line) => line.includes(someoneElse) || line.includes(revoked)), 'no token in any log line')
  await node.app.realtime.tokens.revoke(own)
  t.equal((await within(closed(phone.socket), 5000, 'its own token revoked')).code, 4501, 'revocation still follows its own token')
})

t.test('a failed refresh counts as an invalid message (4503); a store that does not answer is TOKEN_STORE_UNAVAILABLE and counts not', async (t) => {
  const node = await startApp({
    limits: { maxInvalidMessages: 3 },
    tokens: {
      timeoutMs: 100,
      resolver: async (token) => {
        if (token === 'slow') return await new Promise(() => {})
        return token === 'good' ? { userId: 'u1', expiresAt: Math.floor(Date.now() / 1000) + 600 } : null
      }
    }
  })
  t.teardown(async () => await node.app.close())
  const phone = await open(t, node, 'good')
  for (let index = 0; index < 3; index++) {
    phone.send({ event: 'refresh', token: 'slow' })
    t.strictSame(await next(phone), { event: 'error', channel: null, data: { code: 'TOKEN_STORE_UNAVAILABLE', message: 'Token store unavailable; try again' } })
  }
  phone.send({ event: 'refresh', token: 'bad' })
  t.strictSame(await next(phone), invalidToken)
  phone.send({ event: 'refresh', token: 'bad' })
  t.strictSame(await next(phone), invalidToken)
  phone.send({ event: 'refresh', token: 'bad' })
  t.strictSame(await next(phone), invalidToken)
  t.equal((await within(closed(phone.socket), 5000, 'the third invalid message')).code, 4503)
})

/** A resolver of the test's own: `slow-…` tokens answer after 200 ms, the others at once; `revoked` holds the tokens it refuses. */
function scriptedResolver (revoked: Set<string>) {
  return async (token: string) => {
    if (token.startsWith('slow-')) await new Promise((resolve) => setTimeout(resolve, 200))
    if (revoked.has(token)) return null
    const ttl = Number(token.split('-').at(-1))
    return { userId: 'u1', expiresAt: Math.floor(Date.now() / 1000) + ttl }
  }
}

t.test('refreshes are answered in the order they were sent, a slow one before a fast one after it, and count against the message rate limit', async (t) => {
  const node = await startApp({ limits: { messageBurst: 3, messagesPerSecond: 1 }, tokens: { resolver: scriptedResolver(new Set()) } })
  t.teardown(async () => await node.app.close())
  const phone = await open(t, node, 'first-600')
  phone.send({ event: 'refresh', token: 'slow-100' })
  phone.send({ event: 'refresh', token: 'fast-200' })
  phone.send({ event: 'refresh', token: 'fast-300' })
  phone.send({ event: 'refresh', token: 'fast-400' })
  const answers = (await within(phone.inbox.until(5), 5000, 'four answers')).slice(1)
  // The fourth message is refused at once, before the refreshes resolve.
  t.match(answers[0], { event: 'error', data: { code: 'RATE_LIMITED' } })
  t.strictSame(answers.slice(1).map((answer) => answer.event), ['refreshed', 'refreshed', 'refreshed'])
  const expiresIn = answers.slice(1).map((answer) => Math.round(answer.data.expires_at - Date.now() / 1000))
  t.ok(expiresIn[0] <= 100 && expiresIn[1] > 150 && expiresIn[1] <= 200 && expiresIn[2] > 250, `answered in the order sent (${expiresIn.join(', ')})`)
})

t.test('the token recheck follows the refreshed token: the old one revoked leaves the socket open, the new one revoked closes it (4501)', async (t) => {
  const revoked = new Set<string>()
  const node = await startApp({ tokens: { resolver: scriptedResolver(revoked), recheckIntervalMs: 50 } })
  t.teardown(async () => await node.app.close())
  const phone = await open(t, node, 'old-600')
  phone.send({ event: 'subscribe', channel: 'kyc.events' })
  await next(phone)
  phone.send({ event: 'refresh', token: 'new-600' })
  t.equal((await next(phone)).event, 'refreshed')
  revoked.add('old-600')
  // Several rechecks go by: none closes the socket for its old token.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(phone.socket.readyState, WebSocket.OPEN)
  t.strictSame(node.app.realtime.connections()[0].subscriptions, ['settings', 'kyc.events'], 'subscriptions untouched by the refresh')
  revoked.add('new-600')
  t.equal((await within(closed(phone.socket), 5000, 'the recheck')).code, 4501)
})

t.test('Redis default layout, where a socket keeps only its token\'s hash: the recheck follows the refreshed token too', async (t) => {
  const keyPrefix = uniquePrefix()
  const node = await startApp({ redis: REDIS_URL, keyPrefix, tokens: { recheckIntervalMs: 50 } })
  t.teardown(async () => await node.app.close())
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const [oldToken, newToken] = await Promise.all([node.app.realtime.tokens.issue('hash-user', { ttlSeconds: 600 }), node.app.realtime.tokens.issue('hash-user', { ttlSeconds: 900 })])
  const phone = await open(t, node, oldToken)
  phone.send({ event: 'refresh', token: newToken })
  t.equal((await next(phone)).event, 'refreshed')
  t.equal(await redis.del(`${keyPrefix}token:${hashToken(oldToken)}`), 1, 'the old token revoked by deleting its key')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(phone.socket.readyState, WebSocket.OPEN, 'several rechecks went by; none closed the socket for its old token')
  t.equal(await redis.del(`${keyPrefix}token:${hashToken(newToken)}`), 1)
  t.equal((await within(closed(phone.socket), 5000, 'the recheck')).code, 4501)
})

t.test('a recheck of the old token that answers after a refresh closes nothing', async (t) => {
  const revoked = new Set(['slow-old-600'])
  const node = await startApp({ tokens: { resolver: scriptedResolver(revoked), recheckIntervalMs: 100 } })
  t.teardown(async () => await node.app.close())
  // Admitted before its token is refused: the handshake resolved it, then the test revokes it.
  revoked.delete('slow-old-600')
  const phone = await open(t, node, 'slow-old-600')
  revoked.add('slow-old-600')
  // The first recheck is under way (it takes 200 ms) when the refresh lands.
  await new Promise((resolve) => setTimeout(resolve, 150))
  phone.send({ event: 'refresh', token: 'new-600' })
  t.equal((await next(phone)).event, 'refreshed')
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(phone.socket.readyState, WebSocket.OPEN, 'the old token\'s late "revoked" was not applied to the renewed socket')
})

t.test('after INVALID_TOKEN the socket keeps its old expiry: it still closes with 4005 when that comes', async (t) => {
  const node = await startApp()
  t.teardown(async () => await node.app.close())
  const phone = await open(t, node, await node.app.realtime.tokens.issue('u1', { ttlSeconds: 1 }))
  phone.send({ event: 'refresh', token: await node.app.realtime.tokens.issue('u2', { ttlSeconds: 600 }) })
  t.strictSame(await next(phone), invalidToken)
  t.equal((await within(closed(phone.socket), 5000, 'the old expiry')).code, 4005)
})
