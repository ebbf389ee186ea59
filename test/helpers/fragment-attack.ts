// Run as a child process with a small heap by test/connection/partial-messages.test.ts:
// one token connects again and again, each time starting a text message of
// 16,000 one-byte fragments that it never finishes, and never reads. Prints
// how much the heap grew; a crash (out of memory) is the failure.
import Fastify from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import realtime from '../../lib/index.js'
import { openRaw, fragmentedText } from './raw-ws.js'

const CONNECTS = 120
const gc = (globalThis as { gc?: () => void }).gc

const app = Fastify()
await app.register(realtime, { limits: { maxConnectionsPerIp: 0 } })
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address() as { port: number }
const token = await app.realtime.tokens.issue('attacker', { ttlSeconds: 600 })
const attack = fragmentedText(16_000)

gc?.()
const before = process.memoryUsage().heapUsed
const sockets = []
for (let index = 0; index < CONNECTS; index++) {
  const raw = await openRaw(port, `/api/v1/ws?token=${token}`)
  raw.socket.write(attack)
  raw.socket.pause()
  sockets.push(raw.socket)
}
// Let the gateway read what was sent before measuring.
await sleep(1500)
gc?.()
const growthMiB = Math.round((process.memoryUsage().heapUsed - before) / 1024 / 1024 * 10) / 10
const report = { connects: app.realtime.stats().connects, growthMiB, open: app.realtime.connections().length }
for (const socket of sockets) socket.destroy()
await app.close()
console.log(JSON.stringify(report))
