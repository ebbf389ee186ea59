// Arm A (and B with --redis): fastify-realtime from the built package (dist/).
import Fastify from 'fastify'
import realtime from 'fastify-realtime'
import { Redis } from 'ioredis'
import { runServer, serverOptions, reportError } from './common.js'
import { benchData, GATEWAY_ENVELOPE_BYTES } from '../lib/payload.js'
import { BENCH_ADMIN_TOKEN } from '../lib/http-publisher.js'

const options = serverOptions()
// With --history (scenarios 7 and 8) the plugin's warnings are counted, by message, for the report's anomalies
// (a history read that failed, a token store that did not answer in time, …); nothing is printed.
const warnings = new Map()
const warningLog = {
  write (line) {
    let entry
    try {
      entry = JSON.parse(line)
    } catch {
      entry = { msg: String(line).slice(0, 200) }
    }
    const key = entry.err?.message === undefined ? entry.msg : `${entry.msg}: ${entry.err.message}`
    warnings.set(key, (warnings.get(key) ?? 0) + 1)
  }
}
const app = Fastify({ logger: options.history ? { level: 'warn', stream: warningLog } : false })
await app.register(realtime, {
  // Every client comes from 127.0.0.1, so the per-address cap is off; the global cap keeps its default.
  // The reconnect storm's admission-control variant sets a handshake rate (0, the default, sets none).
  // BENCH_FANOUT_SLICE_SIZE (an experiment, see bench/README.md, Profiling): another `limits.fanoutSliceSize` than the default.
  limits: { maxConnectionsPerIp: 0, handshakesPerSecond: options.handshakesPerSecond, ...fanoutSlice() },
  // No protocol pings during a run.
  heartbeat: { intervalMs: 3_600_000 },
  // Scenario 9 publishes over the server API (POST /api/v1/ws/publish) with this operator token.
  diagnostics: { adminTokens: [BENCH_ADMIN_TOKEN] },
  ...(options.redis === undefined ? {} : { redis: options.redis, keyPrefix: options.keyPrefix }),
  // The history scenarios: every event appended to its stream (defaults: 256 per stream, 600 s).
  ...(options.history ? { history: {} } : {})
})
// With --droppable (the reconnect storm) every TCP connection, so that `drop` can cut them all at once. Only
// then: a Set entry and a close listener per socket are about 0.5 KiB, which the idle memory scenario would
// count as the plugin's (measured with `--only memory`).
const tcp = new Set()
if (options.droppable) {
  app.server.on('connection', (socket) => {
    tcp.add(socket)
    socket.once('close', () => tcp.delete(socket))
  })
}
await app.listen({ host: '127.0.0.1', port: 0 })

// publishTo's settlements, made once (not two closures per publish).
const published = () => true
const notPublished = (error) => {
  reportError(error)
  return false
}

runServer({
  port: app.server.address().port,
  path: '/api/v1/ws',
  publish (seq, size) {
    app.realtime.publish('settings', 'bench', benchData(seq, size, GATEWAY_ENVELOPE_BYTES)).catch(reportError)
  },
  publishTo (user, seq, size) {
    // `notification.events` carries the same envelope length as `settings` plus 11 bytes; the pad absorbs it.
    const data = benchData(seq, size, GATEWAY_ENVELOPE_BYTES + 'notification.events'.length - 'settings'.length)
    // Resolves true, or false once the failure is reported: publishEach bounds the publishes in flight with it.
    return app.realtime.publish('notification.events', 'bench', data, { userId: `user-${user}` }).then(published, notPublished)
  },
  async issueTokens (from, count) {
    const tokens = new Array(count)
    // In batches: sequential round trips would be slow against Redis, one huge batch needlessly bursty.
    for (let start = 0; start < count; start += 200) {
      const batch = []
      for (let index = start; index < Math.min(count, start + 200); index++) {
        batch.push(app.realtime.tokens.issue(`user-${from + index}`, { ttlSeconds: 3600 }).then((token) => { tokens[index] = token }))
      }
      await Promise.all(batch)
    }
    return tokens
  },
  buffered: () => app.realtime.connections().reduce((bytes, connection) => bytes + connection.buffered_bytes, 0),
  stats: () => app.realtime.stats(),
  connectionCount: () => app.realtime.connections().length,
  dropAll () {
    if (!options.droppable) throw new Error('drop: this node was started without --droppable')
    const count = tcp.size
    for (const socket of tcp) socket.destroy()
    return count
  },
  warnings: () => Object.fromEntries(warnings),
  // The process exits right after: the kernel closes the sockets (a graceful
  // app.close() would wait for thousands of close handshakes). Only the shared
  // Redis needs tidying.
  async close () {
    if (options.redis !== undefined && options.node === 0) await deleteKeys(options.redis, options.keyPrefix)
  }
})

function fanoutSlice () {
  const size = Number(process.env.BENCH_FANOUT_SLICE_SIZE)
  return Number.isInteger(size) && size > 0 ? { fanoutSliceSize: size } : {}
}

/** Removes this run's token keys from the shared Redis (never FLUSH: other users share it). */
async function deleteKeys (url, prefix) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}
