// One gateway node of a cluster. Run as many as you like behind a load balancer:
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node examples/cluster/node.js
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3002 node examples/cluster/node.js
// Every node of one deployment uses the same Redis and the same keyPrefix.
import Fastify from 'fastify'
import realtime from 'fastify-realtime'

const port = Number(process.env.PORT ?? 3001)
// Bounded half-open handshakes (README, "Bounded half-open handshakes").
const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' }, connectionTimeout: 10_000, requestTimeout: 10_000 })

await app.register(realtime, {
  redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  keyPrefix: process.env.KEY_PREFIX ?? 'rt-example:',
  cluster: { nodeId: process.env.NODE_ID ?? `node-${port}` }
})

// A backend route of this node: publish to a user, wherever their socket is.
app.post('/notify/:userId', async (request) => {
  const { userId } = request.params
  await app.realtime.publish('notification.events', 'NOTIFICATION_UPDATE', { unread_count: 3 }, { userId })
  return { published: true, node: app.realtime.nodeId }
})

await app.listen({ host: '127.0.0.1', port })
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close())
