// Two nodes and a phone, end to end (needs Redis on REDIS_URL, default 127.0.0.1:6379):
//   npm run example:cluster
// The phone connects to node B; the backend publishes through node A; the
// event crosses Redis and reaches the phone. Then both nodes shut down.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { Redis } from 'ioredis'

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = `rt-example-${randomBytes(4).toString('hex')}:`
const nodeScript = new URL('./node.js', import.meta.url)

async function startNode (port) {
  const child = fork(nodeScript, { env: { ...process.env, PORT: String(port), KEY_PREFIX: keyPrefix, LOG_LEVEL: 'warn' } })
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await fetch(`http://127.0.0.1:${port}/api/v1/ws`)
      return child
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`node on ${port} did not start`)
}

const [portA, portB] = [Number(process.env.PORT_A ?? 3101), Number(process.env.PORT_B ?? 3102)]
const nodes = [await startNode(portA), await startNode(portB)]
try {
  // The rest of the backend writes token state in the layout README documents; here we do it by hand.
  const redis = new Redis(redisUrl)
  const token = randomBytes(32).toString('base64url')
  const { createHash } = await import('node:crypto')
  const key = `${keyPrefix}token:${createHash('sha256').update(token).digest('hex')}`
  await redis.set(key, JSON.stringify({ user_id: '120045', expires_at: Math.floor(Date.now() / 1000) + 300 }), 'EX', 300)
  await redis.quit()

  const phone = new WebSocket(`ws://127.0.0.1:${portB}/api/v1/ws?token=${token}`)
  const messages = []
  phone.on('message', (data) => messages.push(JSON.parse(data)))
  await once(phone, 'open')
  phone.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
  while (messages.length < 2) await new Promise((resolve) => setTimeout(resolve, 20))
  await new Promise((resolve) => setTimeout(resolve, 200)) // node B listens on the user's channel

  const answer = await (await fetch(`http://127.0.0.1:${portA}/notify/120045`, { method: 'POST' })).json()
  console.log('node A answered:', answer)
  while (messages.length < 3) await new Promise((resolve) => setTimeout(resolve, 20))
  console.log('phone on node B received:', JSON.stringify(messages[2]))
  phone.terminate()
} finally {
  for (const node of nodes) node.kill('SIGTERM')
  await Promise.all(nodes.map((node) => once(node, 'exit')))
}
