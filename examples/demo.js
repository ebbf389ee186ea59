// A runnable gateway in embedded mode (no Redis), with a page built on the
// client SDK:
//   npm run demo      then open the URL it prints
// Sign in as any user id, subscribe channels, publish the sample events to one
// user or everyone, cut the network and watch what was missed come back
// (history is on), open a second tab as the same user and see the first one
// replaced (4500). The /demo routes exist only in this example.
import { readFile, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import realtime from 'fastify-realtime'

const port = Number(process.env.PORT ?? 3000)
const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const sdkDir = fileURLToPath(new URL('../dist/client/', import.meta.url))

const app = Fastify({
  // Quiet by default: the page shows what happens. LOG_LEVEL=info (or debug) shows the gateway's own log.
  logger: { level: process.env.LOG_LEVEL ?? 'warn' },
  // A client that never finishes its handshake holds a connection only this long (README, "Bounded half-open handshakes").
  connectionTimeout: 10_000,
  requestTimeout: 10_000,
  http: { connectionsCheckingInterval: 1_000 }
})

await app.register(realtime, {
  allowedOrigins: [/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/],
  history: { size: 256, ttlSeconds: 600 },
  heartbeat: { intervalMs: 15_000 }
})

const page = await readFile(here('./demo/index.html'), 'utf8')
const script = await readFile(here('./demo/app.js'), 'utf8')
app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
app.get('/app.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(script))

// The SDK as the package builds it (dist/client), for the page's `import`.
const sdkFiles = new Set((await readdir(sdkDir)).filter((name) => name.endsWith('.js')))
app.get('/sdk/:file', async (request, reply) => {
  const { file } = request.params
  if (!sdkFiles.has(file)) return reply.code(404).send({ message: 'Not found' })
  return reply.type('text/javascript; charset=utf-8').send(await readFile(sdkDir + file, 'utf8'))
})

// Demo only: anyone may sign in as anyone. A real backend issues tokens after its own login.
const UserBody = { type: 'object', required: ['user_id'], properties: { user_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$' } } }
app.post('/demo/login', { schema: { body: UserBody } }, async (request) => {
  // Short, so the page shows the SDK refreshing it in place (DEMO_TOKEN_TTL_SECONDS for the browser tests).
  const ttlSeconds = Number(process.env.DEMO_TOKEN_TTL_SECONDS ?? 120)
  return { token: await app.realtime.tokens.issue(request.body.user_id, { ttlSeconds }), expires_in: ttlSeconds }
})

/** The sample events of the mobile API, by the name of the page's buttons. */
const SAMPLES = {
  notification: (userId, n) => ['notification.events', 'NOTIFICATION_UPDATE', {
    mobile_user_id: mobileUserId(userId), unread_count: n, event_type: 'NOTIFICATION_UPDATE', timestamp: Math.floor(Date.now() / 1000)
  }],
  payment: (userId, n) => ['payment_order.events', 'PAYMENT_ORDER_UPDATED', { order_id: `po_${n}`, status: n % 2 === 0 ? 'paid' : 'pending' }],
  card: (userId, n) => ['card.events', 'CARD_STATUS_UPDATED', { card_id: `card_${n}`, status: n % 2 === 0 ? 'active' : 'frozen' }],
  kyc: (userId, n) => ['kyc.events', 'KYC_STATUS_UPDATED', { level: 1 + (n % 3), status: 'approved' }]
}
let counter = 0

const PublishBody = {
  type: 'object',
  required: ['kind'],
  properties: {
    kind: { enum: ['notification', 'payment', 'card', 'kyc', 'settings', 'force_logout'] },
    user_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$' },
    count: { type: 'integer', minimum: 1, maximum: 20 }
  }
}
app.post('/demo/publish', { schema: { body: PublishBody } }, async (request) => {
  const { kind, user_id: userId, count = 1 } = request.body
  // "Everyone": every user with a socket now (settings is global anyway).
  const users = userId === undefined ? app.realtime.connectedUsers() : [userId]
  const ids = []
  for (let index = 0; index < count; index++) {
    counter++
    if (kind === 'settings') {
      ids.push((await app.realtime.publish('settings', 'withdrawal_settings_updated', {
        type: 'withdrawal_settings_updated', withdrawal_fee_rate: (1 + (counter % 100) / 100).toFixed(2)
      })).id)
      continue
    }
    for (const user of users) {
      if (kind === 'force_logout') await app.realtime.forceLogout(user, { reason: 'demo' })
      else ids.push((await app.realtime.publish(...SAMPLES[kind](user, counter), { userId: user })).id)
    }
  }
  return { published: ids.length, ids, users }
})

function mobileUserId (userId) {
  return /^\d+$/.test(userId) ? Number(userId) : userId
}

const address = await app.listen({ host: '127.0.0.1', port })
console.log(`\nfastify-realtime demo: open ${address}/ in a browser (Ctrl-C stops it)\n`)

if (process.env.DEMO_EXIT_AFTER_MS !== undefined) {
  setTimeout(() => app.close(), Number(process.env.DEMO_EXIT_AFTER_MS)).unref()
}
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close())
