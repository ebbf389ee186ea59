// A client the app passes keeps its own settings. Those that make ioredis send
// a publish again later (after a reconnect, or after a Cluster failover
// delay) can deliver it twice or behind publishes made after it: the plugin
// names them at startup.
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { resendingOptions } from '../../lib/redis/client.js'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'

const WARNING = 'fastify-realtime: the Redis client passed in may send a publish again later, twice or out of order; set these options'

function warned (logs: string[]): unknown {
  const line = logs.find((entry) => entry.includes(WARNING))
  return line === undefined ? undefined : JSON.parse(line).options
}

t.test('a borrowed Redis that re-sends what was in flight when its link dropped is named at startup', async (t) => {
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  const { app, logs } = await startApp({ redis, keyPrefix: uniquePrefix() })
  t.teardown(() => app.close())
  t.same(warned(logs), { autoResendUnfulfilledCommands: false })
})

t.test('a borrowed Redis set as README says is not', async (t) => {
  const redis = new Redis(REDIS_URL, { autoResendUnfulfilledCommands: false })
  t.teardown(() => redis.disconnect())
  const { app, logs } = await startApp({ redis, keyPrefix: uniquePrefix() })
  t.teardown(() => app.close())
  t.equal(warned(logs), undefined)
})

t.test('the client the plugin creates from a URL is not', async (t) => {
  const { app, logs } = await startApp({ redis: REDIS_URL, keyPrefix: uniquePrefix() })
  t.teardown(() => app.close())
  t.equal(warned(logs), undefined)
})

// The options of a Cluster client are read, nothing is sent (the gateway path is the one above).
t.test('a Cluster client with ioredis\' failover retries, and one without', async (t) => {
  const retrying = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true })
  t.same(resendingOptions(retrying), { retryDelayOnFailover: 0, retryDelayOnClusterDown: 0, 'redisOptions.autoResendUnfulfilledCommands': false })
  const strict = new Cluster([{ host: '127.0.0.1', port: 1 }], {
    lazyConnect: true, retryDelayOnFailover: 0, retryDelayOnClusterDown: 0, redisOptions: { autoResendUnfulfilledCommands: false }
  })
  t.same(resendingOptions(strict), {})
  retrying.disconnect()
  strict.disconnect()
})
