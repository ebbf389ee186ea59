import t from 'tap'
import { randomHex, randomInt32 } from '../lib/random-ids.js'

/** Whether `next` starts with the last 4 to 7 bytes of `previous`: two draws that overlapped in the pool. */
function overlaps (previous: string, next: string): boolean {
  for (let shift = 1; shift <= 4; shift++) {
    if (previous.slice(2 * shift) === next.slice(0, previous.length - 2 * shift)) return true
  }
  return false
}

// The pool holds 4 KiB: 1,000 draws of 8 bytes cross it twice (8 bytes divide 4,096), 2,000 draws
// of 3 bytes too, and those leave a tail too short for the next draw before each refill.
t.test('pooled hex ids: the length asked for, lower-case hex, each draw of fresh bytes across refills of the pool', async (t) => {
  const ids = Array.from({ length: 1000 }, () => randomHex(8))
  t.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(id)), '16 hex digits each')
  t.equal(new Set(ids).size, ids.length, 'no two alike')
  t.notOk(ids.some((id, index) => index > 0 && overlaps(ids[index - 1] as string, id)), 'no draw reuses bytes of the one before')
  const short = Array.from({ length: 2000 }, () => randomHex(3))
  t.ok(short.every((id) => /^[0-9a-f]{6}$/.test(id)), 'other sizes too, including draws that do not divide the pool')
})

t.test('pooled 32-bit integers: signed, both signs, none alike across refills', async (t) => {
  const values = Array.from({ length: 2000 }, randomInt32)
  t.ok(values.every((value) => Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31), 'signed 32-bit integers')
  t.ok(values.some((value) => value < 0) && values.some((value) => value > 0), 'both signs')
  // 2,000 draws from 2^32 values: a repeat has a chance of about 1 in 2,000.
  t.ok(new Set(values).size >= values.length - 1, 'at most one repeat')
})
