import t from 'tap'
import { MessageRateLimit } from '../../lib/hub/message-rate-limit.js'

t.test('a bucket gives its burst at once, then refills at its rate per second', async (t) => {
  const bucket = new MessageRateLimit(20, 10, 0)
  const taken = Array.from({ length: 25 }, () => bucket.take(0)).filter(Boolean).length
  t.equal(taken, 20, 'the burst')
  t.equal(bucket.refusedInARow, 5, 'the refusals in a row')
  t.equal(bucket.take(99), false, 'not yet a whole token after 99 ms at 10/s')
  t.equal(bucket.take(100), true, 'one token per 100 ms')
  t.equal(bucket.refusedInARow, 0, 'a take ends the run')
  t.equal(Array.from({ length: 30 }, () => bucket.take(60_000)).filter(Boolean).length, 20, 'refilled up to the burst, not beyond')
})

t.test('a fractional rate refills as exactly', async (t) => {
  const bucket = new MessageRateLimit(1, 0.5, 0)
  t.equal(bucket.take(0), true)
  t.equal(bucket.take(1999), false, 'half a token per second: not before 2 s')
  t.equal(bucket.take(2000), true)
})
