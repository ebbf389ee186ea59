import t, { type Test } from 'tap'
import { once } from 'node:events'
import { setImmediate as yieldTurn } from 'node:timers/promises'
import type { TestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/cluster.js'
import { PAYMENTS, SETTINGS, deploy, offsetOf, open, range, subscribe } from '../helpers/history.js'
import { within } from '../helpers/outage.js'
import type { Phone } from '../helpers/phone.js'

type Via = 'recover' | 'since'

interface Variant {
  name: string
  mode: 'embedded' | 'cluster'
  via: Via
  /** The user's payments channel (the user stream), or settings (a global stream, shared by the runs). */
  channel: string
  runs: number
}

const VARIANTS: Variant[] = [
  { name: 'embedded, handshake recover', mode: 'embedded', via: 'recover', channel: PAYMENTS, runs: 20 },
  { name: 'embedded, subscribe with since', mode: 'embedded', via: 'since', channel: PAYMENTS, runs: 20 },
  { name: 'cluster, publisher on the other node, handshake recover', mode: 'cluster', via: 'recover', channel: PAYMENTS, runs: 20 },
  { name: 'cluster, publisher on the other node, subscribe with since', mode: 'cluster', via: 'since', channel: PAYMENTS, runs: 20 },
  // settings is subscribed at connect: a subscribe with since asks again for what it may have had live, so only the handshake applies.
  { name: 'cluster, settings, publisher on the other node, handshake recover', mode: 'cluster', via: 'recover', channel: SETTINGS, runs: 15 }
]

/** Publishes seq 0, 1, 2, … on `channel` (to the user, for a user channel) as fast as the publisher node takes them, until stopped. */
function startPublisher (node: TestApp, userId: string, channel: string): { ids: string[], stop: () => Promise<void> } {
  const ids: string[] = []
  const state = { stopped: false }
  const running = (async () => {
    while (!state.stopped) {
      const seq = ids.length
      const { id } = await node.app.realtime.publish(channel, 'TICK', { seq }, channel === SETTINGS ? {} : { userId })
      ids.push(id as string)
      // Embedded publishes never wait for I/O: let the sockets' turn come.
      await yieldTurn()
    }
  })()
  return { ids, stop: async () => { state.stopped = true; await within(running, 10_000, 'the publisher to stop') } }
}

const ticksOn = (phone: Phone, channel: string): any[] => phone.events().filter((event) => event.channel === channel)

/**
 * One run: the client sees a few ticks, loses its socket while the publisher
 * keeps going, reconnects (to `second`) and recovers from the last tick it
 * saw. Every tick must reach it exactly once, in order.
 */
async function run (t: Test, variant: Variant, first: TestApp, second: TestApp, publisher: TestApp, index: number): Promise<void> {
  const { channel } = variant
  const ticks = (phone: Phone): any[] => ticksOn(phone, channel)
  const userId = `prop-${variant.mode}-${variant.via}-${channel}-${index}`
  const token = await first.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const before = await open(t, first, token)
  const start = channel === SETTINGS ? before.connected.data.positions[SETTINGS] : (await subscribe(before, channel)).data.position
  const ticker = startPublisher(publisher, userId, channel)
  const seenBefore = index % 5 + 1
  await waitFor(() => ticks(before).length >= seenBefore, 'the first ticks', 10_000)
  const closed = once(before.socket, 'close')
  before.socket.terminate()
  await closed
  const firstTicks = ticks(before)
  const lastSeen = firstTicks[firstTicks.length - 1].id as string

  const after = await open(t, second, token, variant.via === 'recover' ? { [channel]: lastSeen } : undefined)
  let outcome: Record<string, unknown>
  let position: string
  if (variant.via === 'recover') {
    outcome = after.connected.data.recovery[channel]
    position = after.connected.data.positions[channel]
  } else {
    t.strictSame(Object.keys(after.connected.data.positions), [SETTINGS])
    const { data } = await subscribe(after, channel, lastSeen)
    const { subscriptions: _subscriptions, position: at, ...rest } = data
    outcome = rest
    position = at
  }
  await waitFor(() => ticks(after).length >= 5, 'ticks after the reconnect', 10_000)
  await ticker.stop()
  const lastId = ticker.ids[ticker.ids.length - 1]
  await waitFor(() => ticks(after).some((event) => event.id === lastId), 'the last tick', 10_000)

  const all = [...firstTicks, ...ticks(after)]
  const seqs = all.map((event) => event.data.seq)
  const expected = range(0, ticker.ids.length)
  // One assertion per run: a failing run prints what it got.
  if (JSON.stringify(seqs) !== JSON.stringify(expected) || all.some((event, at) => event.id !== ticker.ids[at])) {
    t.strictSame(seqs, expected, `run ${index}: every tick once, in order`)
    t.strictSame(all.map((event) => event.id), ticker.ids, `run ${index}: the ids as published`)
  }
  t.strictSame(outcome, { recovered: true, replayed: offsetOf(position) - offsetOf(lastSeen) }, `run ${index}: recovered what was published before the read`)
  t.strictSame(all.map((event) => offsetOf(event.id)), range(offsetOf(start) + 1, ticker.ids.length),
    `run ${index}: ids contiguous from the first position (${ticker.ids.length} ticks, ${seenBefore} before)`)
  after.socket.terminate()
}

for (const variant of VARIANTS) {
  t.test(`a publisher at full speed while the client reconnects (${variant.name}): every event once, in order, ${variant.runs} runs`, async (t) => {
    const nodes = await deploy(t, variant.mode, variant.mode === 'cluster' ? 2 : 1, { history: { size: 10_000 } })
    const [a, b] = variant.mode === 'cluster' ? nodes : [nodes[0], nodes[0]]
    for (let index = 0; index < variant.runs; index++) {
      // The client on a, the publisher on b; it comes back to a or to b in turn.
      await run(t, variant, a, index % 2 === 0 ? a : b, b, index)
    }
  })
}
