// limits.handshakesPerSecond's bucket and the Retry-After it gives: the
// handshakes refused in a storm are told to come back spread over the seconds
// the node needs to let them all in, not all after one second.
import t from 'tap'
import { handshakeRate } from '../../lib/handshake/handshake-rate.js'

t.test('0 sets no rate: every handshake goes on', async (t) => {
  const admit = handshakeRate(0, () => 0)
  t.same(Array.from({ length: 1000 }, () => admit(true)).filter((wait) => wait !== 0), [])
})

t.test('over the rate, each refused upgrade waits behind the ones refused before it', async (t) => {
  let now = 1_000
  const admit = handshakeRate(2, () => now)
  t.same([admit(true), admit(true)], [0, 0], 'a second\'s worth passes at once')
  // Refused 3rd to 8th: the node lets 2 in per second, so the k-th refused has room after k/2 s.
  t.same(Array.from({ length: 6 }, () => admit(true)), [1, 1, 2, 2, 3, 3])
  now += 400
  t.equal(admit(true), 4, 'the 7th refused has room after 3.5 s, 0.4 s of which have passed: 3.1 s, rounded up')
  now += 10_000
  t.same([admit(true), admit(true), admit(true)], [0, 0, 1], 'the queue drained: a fresh burst, then a wait of its own')
})

t.test('a refused plain GET (the SDK asking why its connect failed) is told a random wait up to the end of the queue, and adds none', async (t) => {
  const draws = [0, 0.5, 0.99, 1]
  const admit = handshakeRate(1, () => 0, () => draws.shift() as number)
  t.equal(admit(true), 0)
  t.same([admit(true), admit(true), admit(true), admit(true)], [1, 2, 3, 4], 'four upgrades queued: 4 s until the last is in')
  t.same([admit(false), admit(false), admit(false), admit(false)], [1, 2, 4, 4], 'at least 1 s, at most the end of the queue')
  t.equal(admit(true), 5, 'the GETs took no place')
})

t.test('while refused upgrades wait, a plain GET is refused rather than take their place in the bucket', async (t) => {
  let now = 0
  const admit = handshakeRate(10, () => now)
  t.same(Array.from({ length: 10 }, () => admit(true)).filter((wait) => wait === 0).length, 10)
  t.same(Array.from({ length: 5 }, () => admit(true)), [1, 1, 1, 1, 1], 'queued until 0.5 s')
  now = 300
  t.equal(admit(false), 1, 'three tokens refilled, but upgrades are waiting: the GET is told to wait')
  t.equal(admit(true), 0, 'an upgrade takes a refilled token')
  now = 600
  t.equal(admit(true), 0)
  t.equal(admit(false), 0, 'nobody waiting any more: a GET takes a token like an upgrade')
})

t.test('the wait is capped at 30 s: beyond it the clients\' own backoff spreads them', async (t) => {
  const admit = handshakeRate(1, () => 0)
  const waits = Array.from({ length: 100 }, () => admit(true))
  t.equal(waits[0], 0)
  t.equal(waits[29], 29)
  t.equal(Math.max(...waits), 30)
  t.equal(waits[99], 30)
})

t.test('a backlog beyond the cap is not remembered: once the storm ends, the wait shrinks with time', async (t) => {
  let now = 0
  const admit = handshakeRate(1, () => now)
  for (let i = 0; i < 1000; i++) admit(true)
  now += 25_000
  t.equal(admit(true), 0, 'the bucket refilled')
  t.equal(admit(true), 6, 'the queue ended 30 s after the last refusal, 25 s of which have passed; then its own second')
})
