// lib/redis/client.ts: the client the plugin creates for a URL. A command in
// flight when its link drops must fail then: ioredis, told not to send it
// again, would otherwise keep it through a quick reconnect and drop it
// unanswered, and every auto-pipelined command after it would wait behind it
// until the command timeout.
import t from 'tap'
import { once } from 'node:events'
import { createRedisClient } from '../../lib/redis/client.js'
import { OwnRedis } from '../helpers/redis-server.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const redis = await OwnRedis.start()
t.teardown(async () => await redis.kill())

t.test('a command in flight when the link drops fails at the drop; the client answers again after its reconnect', async (t) => {
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(async () => await proxy.close())
  const client = createRedisClient(proxy.url, 'in-flight', { warn () {} })
  t.teardown(() => client.disconnect())
  await once(client, 'ready')
  await client.set('in-flight:key', 'value')
  proxy.muteReplies()
  const inFlight = client.get('in-flight:key').then(() => 'answered', (error: Error) => error.message)
  // Written (auto-pipelined on the next tick) and run by Redis; its answer never comes back.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(proxy.cutMuted(), 1)
  t.match(await inFlight, /max retries per request/i, 'failed when the link dropped, not held until the command timeout')
  await once(client, 'ready')
  t.equal(await client.get('in-flight:key'), 'value', 'answered on the new link')
})
