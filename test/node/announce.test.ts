import t from 'tap'
import WebSocket from 'ws'
import type { Test } from 'tap'
import { Registry } from 'prom-client'
import { Redis } from 'ioredis'
import { REDIS_URL, startApp, uniquePrefix } from '../helpers/app.js'
import { closed } from '../helpers/client.js'
import { waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'

/**
 * A node whose subscriber holds back every SUBSCRIBE of a user channel until
 * `release()`: its sockets are upgraded but cannot be announced yet.
 */
async function nodeWithHeldSubscribes (t: Test, options: Record<string, unknown> = {}) {
  const keyPrefix = uniquePrefix()
  const client = new Redis(REDIS_URL)
  t.teardown(() => client.disconnect())
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const duplicate = client.duplicate.bind(client)
  client.duplicate = (...args: Parameters<Redis['duplicate']>) => {
    const subscriber = duplicate(...args)
    const subscribe = subscriber.subscribe.bind(subscriber) as (...channels: string[]) => Promise<unknown>
    ;(subscriber as unknown as { subscribe: typeof subscribe }).subscribe = async (...channels) => {
      if (channels.some((channel) => channel.startsWith(`${keyPrefix}u:`))) await held
      return await subscribe(...channels)
    }
    return subscriber
  }
  const node = await startApp({ redis: client, keyPrefix, ...options })
  t.teardown(() => node.app.close())
  // Global channels are subscribed at startup, asynchronously: the tests publish on settings once it landed.
  await waitFor(async () => (await client.pubsub('NUMSUB', `${keyPrefix}c:{settings}`) as Array<string | number>)[1] === 1, 'settings subscribed')
  return { node, release }
}

/** Opens a socket and records what it receives from the first byte on. */
async function open (t: Test, url: string): Promise<{ socket: WebSocket, inbox: Inbox }> {
  const socket = new WebSocket(url)
  t.teardown(() => socket.terminate())
  const inbox = new Inbox(socket)
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  return { socket, inbox }
}

t.test('cluster mode: connected goes out once the node listens; what came meanwhile follows it', async (t) => {
  const metrics = new Registry()
  const { node, release } = await nodeWithHeldSubscribes(t, { diagnostics: { metricsRegistry: metrics } })
  const deliveries = async (): Promise<number> => {
    const histogram = await metrics.getSingleMetric('realtime_publish_to_delivery_seconds')?.get()
    return histogram?.values.find((value) => (value as { metricName?: string }).metricName === 'realtime_publish_to_delivery_seconds_count')?.value ?? 0
  }
  const token = await node.app.realtime.tokens.issue('early', { ttlSeconds: 60 })
  const { socket, inbox } = await open(t, `${node.wsBase}/api/v1/ws?token=${token}`)
  socket.send(JSON.stringify({ event: 'ping' }))
  await node.app.realtime.publish('settings', 'while_listening', { n: 1 })
  await waitFor(() => node.app.realtime.stats().messages_in === 1, 'the ping')
  // The global channel was subscribed at startup: the event reaches the node and is handed to the socket.
  await waitFor(async () => await deliveries() === 1, 'the settings event')
  t.same(inbox.messages, [], 'nothing before connected')
  release()
  const [connected, ...rest] = await inbox.until(3)
  t.equal(connected.event, 'connected')
  // The ping and the publish race each other to the node; both were held.
  t.same(rest.map((message) => message.event).sort(), ['pong', 'while_listening'], 'then what was held')
})

t.test('cluster mode: a socket replaced before its announcement never gets connected', async (t) => {
  const { node, release } = await nodeWithHeldSubscribes(t)
  const token = await node.app.realtime.tokens.issue('twice', { ttlSeconds: 60 })
  const first = await open(t, `${node.wsBase}/api/v1/ws?token=${token}`)
  const firstClosed = closed(first.socket)
  const second = await open(t, `${node.wsBase}/api/v1/ws?token=${token}`)
  t.same(await firstClosed, { code: 4500, reason: 'Replaced by a newer connection' })
  release()
  const [connected] = await second.inbox.until(1)
  t.equal(connected.event, 'connected')
  t.same(first.inbox.messages, [], 'the replaced socket got nothing')
})

t.test('cluster mode: what is held for a socket not announced yet is capped like unsent bytes', async (t) => {
  const { node } = await nodeWithHeldSubscribes(t, { limits: { maxBufferedBytes: 4096 } })
  const token = await node.app.realtime.tokens.issue('held', { ttlSeconds: 60 })
  const { socket } = await open(t, `${node.wsBase}/api/v1/ws?token=${token}`)
  const gone = closed(socket)
  for (let n = 0; n < 10; n++) await node.app.realtime.publish('settings', 'big', { pad: 'x'.repeat(1000) })
  t.equal((await gone).code, 1006, 'terminated')
  await waitFor(() => node.app.realtime.stats().closes[4001] === 1, 'recorded as a slow consumer')
  t.equal(node.app.realtime.stats().slow_consumer_cuts, 1)
})
