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
  runs: number
}

const VARIANTS: Variant[] = [
  { name: 'embedded, handshake recover', mode: 'embedded', via: 'recover', runs: 25 },
  { name: 'embedded, subscribe with since', mode: 'embedded', via: 'since', runs: 25 },
  { name: 'cluster, publisher on the other node, handshake recover', mode: 'cluster', via: 'recover', runs: 20 },
  { name: 'cluster, publisher on the other node, subscribe with since', mode: 'cluster', via: 'since', runs: 20 }
]

/** Publishes seq 0, 1, 2, … to the user's payments channel as fast as the publisher node takes them, until stopped. */
function startPublisher (node: TestApp, userId: string): { ids: string[], stop: () => Promise<void> } {
  const ids: string[] = []
  const state = { stopped: false }
  const running = (async () => {
    while (!state.stopped) {
      const seq = ids.length
      const { id } = await node.app.realtime.publish(PAYMENTS, 'TICK', { seq }, { userId })
      ids.push(id as string)
      // Embedded publishes never wait for I/O: let the sockets' turn come.
      await yieldTurn()
    }
  })()
  return { ids, stop: async () => { state.stopped = true; await within(running, 10_000, 'the publisher to stop') } }
}

const ticks = (phone: Phone): any[] => phone.events().filter((event) => event.channel === PAYMENTS)

/**
 * One run: the client sees a few ticks, loses its socket while the publisher
 * keeps going, reconnects (to `second`) and recovers from the last tick it
 * saw. Every tick must reach it exactly once, in order.
 */
async function run (t: Test, variant: Variant, first: TestApp, second: TestApp, publisher: TestApp, index: number): Promise<void> {
  const userId = `prop-${variant.mode}-${variant.via}-${index}`
  const token = await first.app.realtime.tokens.issue(userId, { ttlSeconds: 600 })
  const before = await open(t, first, token)
  await subscribe(before, PAYMENTS)
  const ticker = startPublisher(publisher, userId)
  const seenBefore = index % 5 + 1
  await within(waitFor(() => ticks(before).length >= seenBefore), 10_000, 'the first ticks')
  const closed = once(before.socket, 'close')
  before.socket.terminate()
  await closed
  const firstTicks = ticks(before)
  const lastSeen = firstTicks[firstTicks.length - 1].id as string

  const after = await open(t, second, token, variant.via === 'recover' ? { [PAYMENTS]: lastSeen } : undefined)
  let outcome: Record<string, unknown>
  let position: string
  if (variant.via === 'recover') {
    outcome = after.connected.data.recovery[PAYMENTS]
    position = after.connected.data.positions[PAYMENTS]
  } else {
    t.strictSame(Object.keys(after.connected.data.positions), [SETTINGS])
    const { data } = await subscribe(after, PAYMENTS, lastSeen)
    const { subscriptions: _subscriptions, position: at, ...rest } = data
    outcome = rest
    position = at
  }
  await within(waitFor(() => ticks(after).length >= 5), 10_000, 'ticks after the reconnect')
  await ticker.stop()
  const lastId = ticker.ids[ticker.ids.length - 1]
  await within(waitFor(() => ticks(after).some((event) => event.id === lastId)), 10_000, 'the last tick')

  const all = [...firstTicks, ...ticks(after)]
  const seqs = all.map((event) => event.data.seq)
  const expected = range(0, ticker.ids.length)
  // One assertion per run: a failing run prints what it got.
  if (JSON.stringify(seqs) !== JSON.stringify(expected) || all.some((event, at) => event.id !== ticker.ids[at])) {
    t.strictSame(seqs, expected, `run ${index}: every tick once, in order`)
    t.strictSame(all.map((event) => event.id), ticker.ids, `run ${index}: the ids as published`)
  }
  t.strictSame(outcome, { recovered: true, replayed: offsetOf(position) - offsetOf(lastSeen) }, `run ${index}: recovered what was published before the read`)
  t.strictSame(all.map((event) => offsetOf(event.id)), range(1, ticker.ids.length), `run ${index}: ids contiguous from 1 (${ticker.ids.length} ticks, ${seenBefore} before)`)
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
