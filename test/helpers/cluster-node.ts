// A cluster node in a process of its own, so a test can kill it without any
// cleanup (a crash). Configured by environment; prints its port once listening.
import Fastify from 'fastify'
import realtime from '../../lib/index.js'
import { REDIS_URL } from './app.js'

const app = Fastify()
await app.register(realtime, {
  redis: REDIS_URL,
  keyPrefix: process.env.KEY_PREFIX as string,
  heartbeat: { intervalMs: Number(process.env.HEARTBEAT_MS) },
  cluster: { nodeId: process.env.NODE_ID as string },
  // HISTORY: the history option as JSON (off when unset).
  ...(process.env.HISTORY === undefined ? {} : { history: JSON.parse(process.env.HISTORY) })
})
await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ port: (app.server.address() as { port: number }).port }))
