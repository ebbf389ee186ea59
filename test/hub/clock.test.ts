import t from 'tap'
import { WALL_CLOCK_ORIGIN, monotonicMs, smallInteger, wallClockMs } from '../../lib/hub/clock.js'

t.test('a connection\'s clocks are whole milliseconds, wall-clock ones from WALL_CLOCK_ORIGIN', async (t) => {
  const before = Date.now()
  const wall = wallClockMs()
  t.ok(Number.isInteger(wall), 'wall-clock ms are whole')
  t.ok(WALL_CLOCK_ORIGIN + wall >= before && WALL_CLOCK_ORIGIN + wall <= Date.now(), 'origin + ms is now')
  const monotonic = monotonicMs()
  t.ok(Number.isInteger(monotonic) && monotonic <= performance.now(), 'monotonic ms are whole and not ahead')
})

t.test('smallInteger keeps every value: an int32 as one, anything else as it is', async (t) => {
  t.equal(smallInteger(0), 0)
  t.equal(smallInteger(-5), -5)
  t.equal(smallInteger(2 ** 31 - 1), 2 ** 31 - 1)
  t.equal(smallInteger(2 ** 31), 2 ** 31, 'past 32 bits it does not wrap')
  t.equal(smallInteger(-(2 ** 31) - 1), -(2 ** 31) - 1)
  t.equal(smallInteger(1.5), 1.5, 'a fraction stays a fraction')
})
