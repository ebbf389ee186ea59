import t from 'tap'
import { randomHex, randomInt32 } from '../lib/random-ids.js'

// 4 KiB pool: 1,000 draws of 8 bytes and 2,000 of 4 cross several refills.
t.test('pooled hex ids: the length asked for, lower-case hex, none alike across refills of the pool', async (t) => {
  const ids = Array.from({ length: 1000 }, () => randomHex(8))
  t.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(id)), '16 hex digits each')
  t.equal(new Set(ids).size, ids.length, 'no two alike')
  t.match(randomHex(3), /^[0-9a-f]{6}$/, 'other sizes too')
})

t.test('pooled 32-bit integers: signed, spread over the whole range, none alike across refills', async (t) => {
  const values = Array.from({ length: 2000 }, randomInt32)
  t.ok(values.every((value) => Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31), 'signed 32-bit integers')
  t.ok(values.some((value) => value < 0) && values.some((value) => value > 0), 'both signs')
  // 2,000 draws from 2^32 values: a repeat has a chance of about 1 in 2,000.
  t.ok(new Set(values).size >= values.length - 1, 'at most one repeat')
})
