// Run as a child process by test/lifecycle.test.ts: a gateway with a Redis it
// owns and a connected client is closed, and the process must then exit on
// its own. It prints the resources still alive after close.
import Fastify from 'fastify'
import WebSocket from 'ws'
import { once } from 'node:events'
import realtime from '../../lib/index.js'
import { REDIS_URL, uniquePrefix } from './app.js'

const app = Fastify()
await app.register(realtime, { redis: REDIS_URL, keyPrefix: uniquePrefix(), heartbeat: { intervalMs: 1000 } })
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address() as { port: number }
const token = await app.realtime.tokens.issue('exit-test', { ttlSeconds: 60 })
const client = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws?token=${token}`)
await once(client, 'message')
await app.realtime.publish('settings', 'bye', {})
await once(client, 'message')
const clientClosed = once(client, 'close')
await app.close()
const [code] = await clientClosed
// What could keep the process alive once this module has finished.
setTimeout(() => {
  console.log(JSON.stringify({ code, resources: process.getActiveResourcesInfo() }))
}, 100)
