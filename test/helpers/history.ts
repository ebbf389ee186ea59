// Shared by the history tests (test/history): deployments in either mode,
// phones that recover, and publishing plans whose ids the tests check.
import type { Test } from 'tap'
import type { RealtimeOptions } from '../../lib/index.js'
import { startApp, type TestApp } from './app.js'
import { startNodes, waitFor } from './cluster.js'
import { within } from './outage.js'
import { openPhone, type Phone } from './phone.js'

export const WS_PATH = '/api/v1/ws'
export const PAYMENTS = 'payment_order.events'
export const KYC = 'kyc.events'
export const SETTINGS = 'settings'

export type Mode = 'embedded' | 'cluster'
export const MODES: Mode[] = ['embedded', 'cluster']

/** One embedded app, or `count` cluster nodes on the shared Redis with one key prefix; closed at teardown. */
export async function deploy (t: Test, mode: Mode, count: number, options: RealtimeOptions = {}): Promise<TestApp[]> {
  if (mode === 'cluster') return await startNodes(t, count, options)
  if (count !== 1) throw new Error('embedded mode is one node')
  const node = await startApp({ limits: { maxConnectionsPerIp: 0 }, ...options })
  t.teardown(async () => await node.app.close())
  return [node]
}

export interface Device {
  userId: string
  token: string
  /** The phone of the current socket. */
  phone: Phone
}

/** `<channel>@<id>,…` for the handshake's `recover`, URL-encoded. */
export function recoverParam (positions: Record<string, string>): string {
  return encodeURIComponent(Object.entries(positions).map(([channel, id]) => `${channel}@${id}`).join(','))
}

/** Where a socket can be opened: a node of this process, or one in a child process. */
export interface Endpoint {
  wsBase: string
}

/** Opens a socket of `token` on `node` (with `recover` if given), terminated at teardown. */
export async function open (t: Test, node: Endpoint, token: string, recover?: Record<string, string>): Promise<Phone> {
  const query = recover === undefined ? '' : `&recover=${recoverParam(recover)}`
  const phone = await within(openPhone(`${node.wsBase}${WS_PATH}?token=${token}${query}`), 10_000, 'the socket to open')
  t.teardown(() => phone.socket.terminate())
  return phone
}

/** Sends `subscribe` (with `since` if given) and returns its `subscribed` answer. */
export async function subscribe (phone: Phone, channel: string, since?: string): Promise<any> {
  const before = phone.inbox.messages.length
  phone.send(since === undefined ? { event: 'subscribe', channel } : { event: 'subscribe', channel, since })
  await waitFor(() => phone.inbox.messages.slice(before).some((message) => message.event === 'subscribed' && message.channel === channel), `subscribed to ${channel}`, 10_000)
  return phone.inbox.messages.slice(before).find((message) => message.event === 'subscribed' && message.channel === channel)
}

/** A fresh token for `userId`, a socket on `node` subscribed to `channels` (settings comes by itself). */
export async function join (t: Test, node: TestApp, userId: string, channels: string[]): Promise<Device> {
  const token = await node.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const phone = await open(t, node, token)
  for (const channel of channels) await subscribe(phone, channel)
  return { userId, token, phone }
}

/** The channel events the phone has received, once there are `count` of them (bounded). */
export async function eventsOf (phone: Phone, count: number, what = `${count} events`): Promise<any[]> {
  await waitFor(() => phone.events().length >= count, what, 15_000)
  return phone.events()
}

/** Terminates the phone's socket and waits until no node holds a socket of the user. */
export async function dropSocket (phone: Phone, nodes: TestApp[], userId: string): Promise<void> {
  phone.socket.terminate()
  await waitFor(() => nodes.every((node) => !node.app.realtime.connectedUsers().includes(userId)), `${userId}'s socket to be gone`)
}

export interface Published {
  channel: string
  seq: number
  id: string
}

/**
 * Publishes one event per entry of `channels` in order, awaiting each, from
 * `node` to `userId` (global channels without it). Event `E<seq>`, data `{ seq }`.
 */
export async function publishAll (node: TestApp, userId: string, channels: string[], firstSeq = 0): Promise<Published[]> {
  const published: Published[] = []
  for (const [index, channel] of channels.entries()) {
    const seq = firstSeq + index
    const options = channel === SETTINGS ? {} : { userId }
    const { id } = await node.app.realtime.publish(channel, `E${seq}`, { seq }, options)
    published.push({ channel, seq, id: id as string })
  }
  return published
}

/** The event a client receives for a published one. */
export function received ({ channel, seq, id }: Published): Record<string, unknown> {
  return { event: `E${seq}`, channel, data: { seq }, id }
}

export function epochOf (id: string): string {
  return id.slice(0, id.lastIndexOf(':'))
}

export function offsetOf (id: string): number {
  return Number(id.slice(id.lastIndexOf(':') + 1))
}

/** The ids of `events` on `channels` (one stream's channels), as offsets. */
export function offsets (events: Array<{ channel: string, id: string }>, channels: string[]): number[] {
  return events.filter((event) => channels.includes(event.channel)).map((event) => offsetOf(event.id))
}

/** `count` consecutive integers from `from`. */
export function range (from: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index)
}

export interface FiftyMissedPlan {
  /** Where the socket is first. */
  first: Endpoint
  /** Who publishes, in turn (event i from publishers[i % length]); the first one issues the token. */
  publishers: TestApp[]
  /** Where the client reconnects with `recover`. */
  second: Endpoint
  /** Ends the first socket, and waits until the deployment knows it is gone. */
  disconnect: (phone: Phone) => Promise<void>
  userId: string
}

// 50 events: 20 on each user channel (one stream), 10 on settings (its own).
export const FIFTY = Array.from({ length: 50 }, (_, index) => [PAYMENTS, KYC, SETTINGS, KYC, PAYMENTS][index % 5])

/** Publishes `channels` (as `publishAll`), event i from publishers[i % length]. */
export async function publishInTurn (publishers: TestApp[], userId: string, channels: string[], firstSeq: number): Promise<Published[]> {
  const published: Published[] = []
  for (const [index, channel] of channels.entries()) {
    published.push(...await publishAll(publishers[index % publishers.length], userId, [channel], firstSeq + index))
  }
  return published
}

/**
 * The client sees 6 live events on payments, kyc and settings, loses its
 * socket, 50 events are published on the three channels, and it reconnects
 * with `recover`: `connected` has exact positions and recovery, then come
 * exactly the 50 in each stream's order (ids strictly following), then live ones.
 */
export async function fiftyMissed (t: Test, plan: FiftyMissedPlan): Promise<void> {
  const { publishers, userId } = plan
  const token = await publishers[0].app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const first = await open(t, plan.first, token)
  const { positions } = first.connected.data
  t.strictSame(Object.keys(positions), [SETTINGS], 'a position for every channel subscribed at connected')
  t.notOk('recovery' in first.connected.data, 'no recover, no recovery')
  const settingsEpoch = epochOf(positions.settings)
  t.match(positions.settings, /^[A-Za-z0-9_-]{8}:0$/, 'an empty stream is at offset 0')
  const paymentsSubscribed = await subscribe(first, PAYMENTS)
  const userEpoch = epochOf(paymentsSubscribed.data.position)
  t.strictSame(paymentsSubscribed.data, { subscriptions: [SETTINGS, PAYMENTS], position: `${userEpoch}:0` })
  t.strictSame((await subscribe(first, KYC)).data, { subscriptions: [SETTINGS, PAYMENTS, KYC], position: `${userEpoch}:0` })

  const live = await publishInTurn(publishers, userId, [PAYMENTS, KYC, SETTINGS, KYC, SETTINGS, PAYMENTS], 0)
  t.strictSame(await eventsOf(first, 6), live.map(received))
  t.strictSame(live.map((event) => event.id), [
    `${userEpoch}:1`, `${userEpoch}:2`, `${settingsEpoch}:1`, `${userEpoch}:3`, `${settingsEpoch}:2`, `${userEpoch}:4`
  ], 'ids count up per stream: the user channels share one')
  await plan.disconnect(first)

  const missed = await publishInTurn(publishers, userId, FIFTY, 100)
  const recover = { [SETTINGS]: live[4].id, [PAYMENTS]: live[5].id, [KYC]: live[3].id }
  const phone = await open(t, plan.second, token, recover)
  const userMissed = missed.filter((event) => event.channel !== SETTINGS)
  const settingsMissed = missed.filter((event) => event.channel === SETTINGS)
  const lastUser = userMissed[userMissed.length - 1].id
  const lastSettings = settingsMissed[settingsMissed.length - 1].id
  t.equal(phone.connected.event, 'connected')
  t.strictSame(phone.connected.data.subscriptions, [SETTINGS, PAYMENTS, KYC])
  t.strictSame(phone.connected.data.positions, { [SETTINGS]: lastSettings, [PAYMENTS]: lastUser, [KYC]: lastUser })
  t.strictSame(phone.connected.data.recovery, {
    [SETTINGS]: { recovered: true, replayed: 10 },
    [PAYMENTS]: { recovered: true, replayed: 20 },
    [KYC]: { recovered: true, replayed: 20 }
  })
  const replay = await eventsOf(phone, 50, 'the replay')
  t.equal(replay.length, 50)
  t.strictSame(replay.filter((event) => event.channel !== SETTINGS), userMissed.map(received), 'the user stream, its channels interleaved as published')
  t.strictSame(replay.filter((event) => event.channel === SETTINGS), settingsMissed.map(received))
  t.strictSame(offsets(replay, [PAYMENTS, KYC]), range(5, 40), 'user ids strictly following the last one seen')
  t.strictSame(offsets(replay, [SETTINGS]), range(3, 10), 'settings ids strictly following the last one seen')

  const after = await publishInTurn(publishers, userId, [KYC, SETTINGS, PAYMENTS], 200)
  const all = await eventsOf(phone, 53, 'the live events')
  t.strictSame(all.slice(50).filter((event) => event.channel !== SETTINGS), [received(after[0]), received(after[2])])
  t.strictSame(all.slice(50).filter((event) => event.channel === SETTINGS), [received(after[1])])
  t.strictSame(after.map((event) => event.id), [`${userEpoch}:45`, `${settingsEpoch}:13`, `${userEpoch}:46`])
  // A last event on each stream: anything sent twice would come before it.
  const [lastKyc, lastSetting] = await publishInTurn(publishers, userId, [KYC, SETTINGS], 300)
  await eventsOf(phone, 55, 'the last events')
  await waitFor(() => phone.events().some((event) => event.id === lastKyc.id) && phone.events().some((event) => event.id === lastSetting.id), 'the last events', 10_000)
  t.equal(phone.events().length, 55, 'nothing twice')
}
