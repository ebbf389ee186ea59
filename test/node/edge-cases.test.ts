import t from 'tap'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'
import { connect, closed, handshake } from '../helpers/client.js'
import { interceptFirstClaim, startNodes, waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'

t.test('messages on the plugin\'s channels that it did not write are ignored, with a warning', async (t) => {
  const keyPrefix = uniquePrefix()
  const [node] = await startNodes(t, 1, { keyPrefix })
  const client = await connect(`${node.wsBase}/api/v1/ws?token=${await node.app.realtime.tokens.issue('u1', { ttlSeconds: 60 })}`)
  t.teardown(() => client.socket.terminate())
  const inbox = new Inbox(client.socket)
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  await waitFor(async () => await redis.exists(`${keyPrefix}gen:u1`) === 1, 'the socket to be claimed')
  const event = Buffer.from('{"event":"forged","channel":"settings","data":{}}')
  await redis.publish(`${keyPrefix}c:{settings}`, 'garbage')
  await redis.publish(`${keyPrefix}c:{settings}`, 'E123 settings-without-newline')
  await redis.publish(`${keyPrefix}ctl`, 'C{not json')
  await redis.publish(`${keyPrefix}ctl`, 'C"a string"')
  // A well-formed event on a channel that is not its own does not count as a global event.
  await redis.publish(`${keyPrefix}ctl`, Buffer.concat([Buffer.from('E123 settings\n'), event]))
  // An event for a channel the catalog does not know, on the user's channel.
  await redis.publish(`${keyPrefix}u:{u1}`, Buffer.concat([Buffer.from('E123 nope.events\n'), event]))
  // A foreign publisher without a usable timestamp still gets its well-formed event through.
  await redis.publish(`${keyPrefix}c:{settings}`, Buffer.concat([Buffer.from('Eabc settings\n'), Buffer.from('{"event":"external","channel":"settings","data":{}}')]))
  await node.app.realtime.publish('settings', 'real', { n: 1 })
  t.same(await inbox.until(2), [
    { event: 'external', channel: 'settings', data: {} },
    { event: 'real', channel: 'settings', data: { n: 1 } }
  ], 'only the well-formed events arrive')
  const warnings = node.logs.filter((line) => line.includes('ignored a message not written by this plugin'))
  t.equal(warnings.length, 4, 'each malformed message was reported')
})

t.test('fencing: a newer claim announced while this socket is still claiming closes it with 4500', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = new Redis(REDIS_URL)
  const publisher = new Redis(REDIS_URL)
  t.teardown(async () => { await redis.quit(); await publisher.quit() })
  // Hold the generation claim until the test has announced a newer one.
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const claims = interceptFirstClaim(redis, async () => await held)
  // A short heartbeat: the periodic check runs while the claim is held, and must not claim twice.
  // (Not shorter: a client starved of CPU by tests beside it would miss a pong and be cut with 1006.)
  const { app, wsBase } = await startApp({ redis, keyPrefix, heartbeat: { intervalMs: 100 } })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('held', { ttlSeconds: 60 })}`)
  const clientClosed = closed(client.socket)
  await waitFor(() => claims() === 1, 'the claim to start')
  await publisher.publish(`${keyPrefix}u:{held}`, `C${JSON.stringify({ type: 'takeover', userId: 'held', generation: 9e15 })}`)
  // Let the announcement arrive before the claim answers (test/node/fencing.test.ts pins the order down without timing).
  await new Promise((resolve) => setTimeout(resolve, 400))
  release()
  t.same(await clientClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  t.equal(claims(), 1, 'the periodic check did not start a second claim meanwhile')
})

t.test('fencing: a failed claim leaves the socket open and the periodic check claims again', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const claims = interceptFirstClaim(redis, async () => { throw new Error('claim refused') })
  const { app, wsBase, logs } = await startApp({ redis, keyPrefix, heartbeat: { intervalMs: 100 } })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('retry', { ttlSeconds: 60 })}`)
  t.teardown(() => client.socket.terminate())
  await waitFor(async () => await redis.exists(`${keyPrefix}gen:retry`) === 1, 'the second claim')
  t.ok(claims() >= 2)
  t.ok(logs.some((line) => line.includes('generation claim failed') && line.includes('claim refused')))
  t.equal(client.socket.readyState, client.socket.OPEN)
})

t.test('a metrics registry can hold one plugin instance at a time', async (t) => {
  const registry = new Registry()
  const first = await startApp({ diagnostics: { metricsRegistry: registry } })
  t.teardown(() => first.app.close())
  await t.rejects(startApp({ diagnostics: { metricsRegistry: registry } }), {
    code: 'FST_REALTIME_INVALID_OPTION',
    message: 'Invalid fastify-realtime option "diagnostics.metricsRegistry": it already holds the metrics of another fastify-realtime instance'
  })
})

t.test('health reports a Redis client that has ended as down', async (t) => {
  const redis = new Redis(REDIS_URL)
  const { app, httpBase } = await startApp({ redis, keyPrefix: uniquePrefix() })
  t.teardown(() => app.close())
  await redis.quit()
  const health = await (await fetch(`${httpBase}/api/v1/ws/health`)).json() as { data: { redis: string, status: string } }
  t.equal(health.data.redis, 'down')
  t.equal(health.data.status, 'degraded')
})

t.test('a probe that cannot be published blames Redis, not the subscriber: nothing is replaced', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  let refused = 0
  const realPublish = redis.publish.bind(redis) as (...args: unknown[]) => Promise<number>
  ;(redis as unknown as { publish: (...args: unknown[]) => Promise<number> }).publish = async (channel: unknown, ...rest: unknown[]) => {
    if (String(channel).startsWith(`${keyPrefix}n:`)) {
      refused++
      throw new Error('publish refused')
    }
    return await realPublish(channel, ...rest)
  }
  const { app } = await startApp({ redis, keyPrefix, cluster: { probeIntervalMs: 20 } })
  t.teardown(() => app.close())
  await waitFor(() => refused >= 5, 'several refused probes')
  t.equal(app.realtime.stats().redis_reconnects, 0, 'the subscriber was never replaced')
})

t.test('a token the backend deletes from Redis itself closes its socket (4501) on every node, without tokens.revoke', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix, heartbeat: { intervalMs: 100 } })
  const token = await a.app.realtime.tokens.issue('stolen', { ttlSeconds: 600 })
  const client = await connect(`${b.wsBase}/api/v1/ws?token=${token}`)
  const clientClosed = closed(client.socket)
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const { createHash } = await import('node:crypto')
  await redis.del(`${keyPrefix}token:${createHash('sha256').update(token).digest('hex')}`)
  t.same(await clientClosed, { code: 4501, reason: 'Access token revoked' })
})

t.test('a revoke that does not name the user (a node of an earlier version) closes the socket with the token, and only it', async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix })
  const token = await a.app.realtime.tokens.issue('revoked-user', { ttlSeconds: 600 })
  const other = await a.app.realtime.tokens.issue('other-user', { ttlSeconds: 600 })
  const client = await connect(`${b.wsBase}/api/v1/ws?token=${token}`)
  const bystander = await connect(`${b.wsBase}/api/v1/ws?token=${other}`)
  const clientClosed = closed(client.socket)
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const { createHash } = await import('node:crypto')
  const tokenHash = createHash('sha256').update(token).digest('hex')
  await redis.publish(`${keyPrefix}ctl`, `C${JSON.stringify({ type: 'revoke', tokenHash })}`)
  t.same(await clientClosed, { code: 4501, reason: 'Access token revoked' })
  t.equal(bystander.socket.readyState, bystander.socket.OPEN, 'the other user\'s socket stays open')
  bystander.socket.close()
})

t.test('fencing: a socket whose first claim failed loses to a connection that claimed after it connected', async (t) => {
  const keyPrefix = uniquePrefix()
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const claims = interceptFirstClaim(redis, async () => {
    // Meanwhile a newer connection of the user claims on another node.
    await redis.set(`${keyPrefix}gen:late`, String((Date.now() + 60_000) * 1000))
    throw new Error('claim refused')
  })
  const { app, wsBase } = await startApp({ redis, keyPrefix, heartbeat: { intervalMs: 50 } })
  t.teardown(() => app.close())
  const client = await connect(`${wsBase}/api/v1/ws?token=${await app.realtime.tokens.issue('late', { ttlSeconds: 60 })}`)
  t.same(await closed(client.socket), { code: 4500, reason: 'Replaced by a newer connection' })
  t.equal(claims(), 1, 'it did not claim again')
})

t.test('a token key of another type counts as no access (401), not as an outage', async (t) => {
  const keyPrefix = uniquePrefix()
  const { app, wsBase } = await startApp({ redis: REDIS_URL, keyPrefix })
  t.teardown(() => app.close())
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const { createHash } = await import('node:crypto')
  const key = `${keyPrefix}token:${createHash('sha256').update('hash-typed').digest('hex')}`
  await redis.hset(key, 'user_id', 'u1')
  await redis.expire(key, 60)
  const result = await handshake(`${wsBase}/api/v1/ws?token=hash-typed`)
  t.equal(result.kind === 'rejected' && result.status, 401)
})
