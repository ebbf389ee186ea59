/**
 * Times a connection keeps: whole milliseconds as small integers, which V8
 * stores inside the object. A `Date.now()`, a fraction, or even the result of
 * subtracting two of them is a double, and a double in a field is a separate
 * 16-byte number, per field and socket.
 */
export const WALL_CLOCK_ORIGIN = Date.now()

/** Wall-clock ms since this module loaded (add `WALL_CLOCK_ORIGIN` for ms since the epoch). */
export function wallClockMs (): number {
  return smallInteger(Date.now() - WALL_CLOCK_ORIGIN)
}

/** Monotonic whole ms (`performance.now()`). */
export function monotonicMs (): number {
  return smallInteger(Math.floor(performance.now()))
}

/**
 * `n`, marked a small integer when it is one (`| 0` is what tells V8); beyond
 * 32 bits (after about 24 days of uptime for the clocks above) it stays a
 * double: the same value in more bytes.
 */
export function smallInteger (n: number): number {
  const int32 = n | 0
  return int32 === n ? int32 : n
}
