// lib/redis/turn-batch.ts: when a batch goes out. Without spacing, at the end
// of the turn its first request came in; with spacing, a busy batch waits
// until that long after the previous one, and an idle one still goes at once.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { TurnBatch } from '../../lib/redis/turn-batch.js'

const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

function recording (spacingMs: number) {
  const runs: string[][] = []
  const batch = new TurnBatch(async (inputs: string[]) => {
    runs.push(inputs)
    return inputs.map((input) => input.toUpperCase())
  }, { spacingMs })
  return { batch, runs }
}

t.test('requests of one turn are one run, answered in order; a lone request on an idle batch goes at the end of its turn', async (t) => {
  const { batch, runs } = recording(0)
  t.same(await Promise.all([batch.add('a'), batch.add('b')]), ['A', 'B'])
  const lone = batch.add('c')
  await nextTurn()
  t.same(runs, [['a', 'b'], ['c']], 'sent in the turn after it was asked for')
  t.equal(await lone, 'C')
})

t.test('with spacing, requests that come soon after a batch went out wait for the rest of the spacing and share the next one', async (t) => {
  const { batch, runs } = recording(300)
  const first = batch.add('a')
  await nextTurn()
  t.same(runs, [['a']], 'the first one, on an idle batch, goes at once')
  const second = batch.add('b')
  await nextTurn()
  const third = batch.add('c')
  await nextTurn()
  t.same(runs, [['a']], 'the next ones wait')
  t.same(await Promise.all([first, second, third]), ['A', 'B', 'C'])
  t.same(runs, [['a'], ['b', 'c']], 'and go out together')
})

t.test('with spacing, a request after a quiet spell goes at the end of its turn again', async (t) => {
  const { batch, runs } = recording(20)
  await batch.add('a')
  await sleep(40)
  const later = batch.add('b')
  await nextTurn()
  t.same(runs, [['a'], ['b']])
  t.equal(await later, 'B')
})
