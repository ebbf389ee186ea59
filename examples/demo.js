// A runnable single-node gateway (embedded mode: no Redis needed).
//   npm run demo
// Open http://127.0.0.1:3000/ in a browser: the page connects as demo user
// 120045 and shows the events the backend publishes every few seconds.
import Fastify from 'fastify'
import realtime from 'fastify-realtime'

const port = Number(process.env.PORT ?? 3000)
const origin = `http://127.0.0.1:${port}`
const app = Fastify({
  logger: { level: process.env.LOG_LEVEL ?? 'info' },
  // A client that never finishes its handshake holds a connection only this long (README, "Bounded half-open handshakes").
  connectionTimeout: 10_000,
  requestTimeout: 10_000,
  http: { connectionsCheckingInterval: 1_000 }
})

await app.register(realtime, {
  allowedOrigins: [origin, `http://localhost:${port}`],
  heartbeat: { intervalMs: 30_000 }
})

// Embedded mode keeps token state in memory; a real backend writes it to Redis.
const token = await app.realtime.tokens.issue('120045', { ttlSeconds: 3600 })

app.get('/', async (_request, reply) => reply.type('text/html').send(page(token)))

// What the rest of a backend would do: push events as things happen.
let unread = 0
const timers = [
  setInterval(() => {
    unread++
    app.realtime.publish('notification.events', 'NOTIFICATION_UPDATE', {
      mobile_user_id: 120045, unread_count: unread, event_type: 'NOTIFICATION_UPDATE', timestamp: Math.floor(Date.now() / 1000)
    }, { userId: '120045' }).catch((error) => app.log.error(error))
  }, 3000),
  setInterval(() => {
    app.realtime.publish('settings', 'withdrawal_settings_updated', {
      type: 'withdrawal_settings_updated', withdrawal_fee_rate: (1 + Math.random()).toFixed(2)
    }).catch((error) => app.log.error(error))
  }, 10_000)
]
app.addHook('onClose', async () => timers.forEach(clearInterval))

await app.listen({ host: '127.0.0.1', port })
console.log(`\nOpen ${origin}/ in a browser, or connect any WebSocket client to:\n  ws://127.0.0.1:${port}/api/v1/ws?token=${token}\n`)

if (process.env.DEMO_EXIT_AFTER_MS !== undefined) {
  setTimeout(() => app.close(), Number(process.env.DEMO_EXIT_AFTER_MS)).unref()
}
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close())

function page (demoToken) {
  return `<!doctype html>
<meta charset="utf-8">
<title>fastify-realtime demo</title>
<style>body{font:14px system-ui;margin:2rem}pre{background:#f4f4f4;padding:.5rem;margin:.25rem 0}</style>
<h1>fastify-realtime demo</h1>
<p>Status: <b id="status">connecting…</b></p>
<div id="log"></div>
<script>
const log = document.getElementById('log')
const status = document.getElementById('status')
const ws = new WebSocket('ws://' + location.host + '/api/v1/ws?token=${demoToken}')
ws.onopen = () => {
  status.textContent = 'connected'
  ws.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
}
ws.onmessage = (message) => {
  const line = document.createElement('pre')
  line.textContent = message.data
  log.prepend(line)
}
ws.onclose = (event) => { status.textContent = 'closed (' + event.code + ')' }
</script>
`
}
