// Scenario 4 (2-node arms only): per-user publishes on node 0 at a fixed
// rate to users spread over both nodes; cross-node latency and Redis CPU.
import { Redis } from 'ioredis'
import { redisCpuSeconds } from '../lib/redis-server.js'

export async function targeted (session, config, redisUrl) {
  const connect = await session.connect(config.clients, config.connectConcurrency)
  if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)
  if (session.arm.client === 'plugin') {
    const { acked } = await session.loadgen.request('subscribe', { channel: 'notification.events' }, 40_000)
    if (acked < session.clients) throw new Error(`only ${acked}/${session.clients} clients subscribed`)
  }
  const count = Math.round(config.rate * config.seconds)
  await session.loadgen.request('record', { count })
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  try {
    const cpuBefore = await redisCpuSeconds(redis)
    await session.publisher.request('paced', { rate: config.rate, count, size: config.size, targeted: true, users: session.clients }, config.seconds * 1000 + 60_000)
    const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
    const redisCpu = await redisCpuSeconds(redis) - cpuBefore
    return {
      'targeted.remoteP99': result.remote.p99,
      'targeted.localP99': result.local.p99,
      'targeted.redisCpuPerMessage': redisCpu * 1e6 / count,
      'targeted.received': result.received,
      'targeted.expected': count
    }
  } finally {
    redis.disconnect()
  }
}
