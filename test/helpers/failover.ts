// What the two Redis failover tests (Cluster, Sentinel) share: two gateway
// nodes on borrowed clients, a phone on node B subscribed to CHANNEL, a
// publish loop from node A to it, and the audit of what the phone got.
import type { Test } from 'tap'
import type { Cluster, Redis } from 'ioredis'
import type WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp, uniquePrefix, type TestApp } from './app.js'
import { waitFor } from './cluster.js'
import type { Inbox } from './messages.js'
import { openPhone } from './phone.js'

export const CHANNEL = 'payment_order.events'
const PUBLISH_EVERY_MS = 10

export type Outcome = 'ok' | 'FST_REALTIME_REDIS_UNAVAILABLE' | 'FST_REALTIME_OUTCOME_UNKNOWN'

export interface Deployment {
  nodes: [TestApp, TestApp]
  keyPrefix: string
  /** The phone of user `phone`, on node B, subscribed to CHANNEL; its inbox from `connected` on. */
  phone: Inbox
  phoneSocket: WebSocket
  /** Opens a socket of `user` on `node`, terminated at teardown. */
  open: (node: TestApp, user: string) => Promise<{ inbox: Inbox, socket: WebSocket }>
}

/**
 * Two nodes of one deployment, node `i` on `clients[i]` (borrowed: the plugin
 * leaves them open, they are disconnected at teardown), and the phone on node B.
 */
export async function deploy (t: Test, clients: [Redis | Cluster, Redis | Cluster]): Promise<Deployment> {
  const keyPrefix = uniquePrefix()
  for (const client of clients) client.on('error', () => {})
  const nodes: TestApp[] = []
  const sockets: WebSocket[] = []
  t.teardown(async () => {
    for (const socket of sockets) socket.terminate()
    await Promise.all(nodes.map(async (node) => await node.app.close()))
    for (const client of clients) client.disconnect()
  })
  for (const [index, client] of clients.entries()) {
    await waitFor(() => client.status === 'ready', 'the Redis client to be ready')
    nodes.push(await startApp({ redis: client, keyPrefix, limits: { maxConnectionsPerIp: 0 }, cluster: { nodeId: `node-${index}`, probeIntervalMs: 200, publishTimeoutMs: 500 } }))
  }
  const open = async (node: TestApp, user: string): Promise<{ inbox: Inbox, socket: WebSocket }> => {
    const token = await node.app.realtime.tokens.issue(user, { ttlSeconds: 600 })
    const { socket, inbox } = await openPhone(`${node.wsBase}/api/v1/ws?token=${token}`)
    sockets.push(socket)
    return { socket, inbox }
  }
  const [a, b] = nodes
  const phone = await open(b, 'phone')
  phone.socket.send(JSON.stringify({ event: 'subscribe', channel: CHANNEL }))
  await phone.inbox.until(2)
  return { nodes: [a, b], keyPrefix, phone: phone.inbox, phoneSocket: phone.socket, open }
}

/** Publishes `seq` 0, 1, … from `node` to `user` every few ms until `stop()`; records each outcome. */
export function publishLoop (node: TestApp, user: string): { outcomes: Map<number, Outcome>, next: () => number, stop: () => Promise<void> } {
  const outcomes = new Map<number, Outcome>()
  const pending: Array<Promise<unknown>> = []
  const state = { running: true, seq: 0 }
  const loop = (async () => {
    for (; state.running; state.seq++) {
      // The outcome settles later, when `state.seq` has moved on: file it under this publish's own.
      const mine = state.seq
      pending.push(node.app.realtime.publish(CHANNEL, 'TICK', { seq: mine }, { userId: user }).then(
        () => outcomes.set(mine, 'ok'),
        (error: { code: Outcome }) => outcomes.set(mine, error.code)
      ))
      await sleep(PUBLISH_EVERY_MS)
    }
  })()
  return {
    outcomes,
    next: () => state.seq,
    /** Ends the loop; resolves once every publish made has settled. */
    stop: async () => {
      state.running = false
      await loop
      await Promise.allSettled(pending)
    }
  }
}

/** What the phone got, checked against what the publisher was told. */
export function audit (t: Test, phone: Inbox, outcomes: Map<number, Outcome>): void {
  const seqs = phone.messages.filter((message) => message.event === 'TICK').map((message) => message.data.seq as number)
  t.equal(new Set(seqs).size, seqs.length, 'nothing delivered twice')
  t.strictSame(seqs, [...seqs].sort((x, y) => x - y), 'every delivered event in publish order')
  t.strictSame(seqs.filter((seq) => outcomes.get(seq) === 'FST_REALTIME_REDIS_UNAVAILABLE'), [], 'no refused publish delivered')
  const lost = [...outcomes].filter(([seq, outcome]) => outcome === 'ok' && !seqs.includes(seq)).map(([seq]) => seq)
  // An accepted publish may be lost around the failover (async replication, a
  // subscriber still on the old primary): the phone must be told resync after
  // the last event it got before the lost one.
  const unannounced = lost.filter((seq) => {
    const lastBefore = phone.messages.findLastIndex((message) => message.event === 'TICK' && message.data.seq < seq)
    return !phone.messages.slice(lastBefore + 1).some((message) => message.event === 'resync')
  })
  t.strictSame(unannounced, [], `every accepted event lost (${lost.length}) is followed by a resync`)
  const counts: Record<string, number> = {}
  for (const outcome of outcomes.values()) counts[outcome] = (counts[outcome] ?? 0) + 1
  t.comment(`publishes: ${JSON.stringify(counts)}; delivered ${seqs.length}; accepted but lost ${lost.length}`)
}
