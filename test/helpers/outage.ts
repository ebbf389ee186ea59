import type { Test } from 'tap'
import type WebSocket from 'ws'
import { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import { topicsFor } from '../../lib/node/wire.js'
import type { TestApp } from './app.js'
import { connect } from './client.js'
import { waitFor } from './cluster.js'
import { Inbox } from './messages.js'
import { OwnRedis } from './redis-server.js'

/** Rejects if `promise` has not settled within `ms`: every wait in outage tests is bounded. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** Retries `attempt` until it resolves (Redis clients reconnect with backoff after a restart). */
export async function eventually<T> (attempt: () => Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${(error as Error).message}`)
      await sleep(50)
    }
  }
}

/** How a call to the Redis-backed API ended: `'resolved'`, or the code it rejected with. */
export async function outcome (call: Promise<unknown>): Promise<string> {
  return await call.then(() => 'resolved', (error: { code?: string }) => String(error.code))
}

/** A redis-server of the test's own, killed (thawed first) at teardown whatever happened. */
export async function ownRedis (t: Test): Promise<OwnRedis> {
  const own = await OwnRedis.start()
  t.teardown(async () => {
    own.thaw()
    await own.kill()
  })
  return own
}

/** A client straight to `url`, closed at teardown; it reconnects by itself after a restart. */
export function directClient (t: Test, url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  return redis
}

export interface Phone {
  token: string
  socket: WebSocket
  inbox: Inbox
  /** Close codes the client saw; stays empty while the socket is open. */
  closes: number[]
}

/**
 * Connects `userId` to `node`, subscribes it to `channel` (its `subscribed`
 * answer is the inbox's first message) and waits until Redis has the user's
 * channel subscribed, so that what is published next can reach the socket.
 */
export async function connectPhone (t: Test, node: TestApp, userId: string, channel: string, inspector: Redis, keyPrefix: string): Promise<Phone> {
  const token = await node.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const { socket } = await connect(`${node.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => socket.terminate())
  const phone: Phone = { token, socket, inbox: new Inbox(socket), closes: [] }
  socket.on('close', (code) => phone.closes.push(code))
  socket.send(JSON.stringify({ event: 'subscribe', channel }))
  await within(phone.inbox.until(1), 5000, `${userId} subscribed to ${channel}`)
  const redisChannel = topicsFor(keyPrefix).user(userId)
  await waitFor(async () => (await inspector.pubsub('NUMSUB', redisChannel) as Array<string | number>)[1] === 1, `${userId}'s channel subscribed`)
  return phone
}
