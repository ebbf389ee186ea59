// A runnable single-node gateway (embedded mode: no Redis needed).
//   npm run demo
// then open the printed URL with any WebSocket client, for example:
//   node -e "const ws = new (require('ws'))(process.argv[1]); ws.on('message', m => console.log(String(m)))" 'ws://…'
import Fastify from 'fastify'
import realtime from 'fastify-realtime'

const port = Number(process.env.PORT ?? 3000)
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

await app.register(realtime, {
  allowedOrigins: [`http://localhost:${port}`, `http://127.0.0.1:${port}`],
  heartbeat: { intervalMs: 30_000 }
})

await app.listen({ host: '127.0.0.1', port })

// Embedded mode keeps token state in memory; a real backend writes it to Redis.
const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 3600 })
console.log(`\nDemo user 120045 can connect for an hour with:\n  ws://127.0.0.1:${port}/api/v1/ws?token=${token}\n`)

if (process.env.DEMO_EXIT_AFTER_MS !== undefined) {
  setTimeout(() => app.close(), Number(process.env.DEMO_EXIT_AFTER_MS)).unref()
}
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close())
