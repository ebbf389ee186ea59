// What a scenario asserts, kept as rows for the report: a failed check never
// throws, so one run shows every count that was off.
import { isDeepStrictEqual } from 'node:util'

export class Checks {
  rows = []

  /** `actual` must equal `expected` exactly (deep). */
  equal (what, actual, expected) {
    this.rows.push({ what, expected: show(expected), actual: show(actual), ok: isDeepStrictEqual(actual, expected) })
  }

  /** `actual` must be at most `limit`. */
  atMost (what, actual, limit) {
    this.rows.push({ what, expected: `≤ ${show(limit)}`, actual: show(actual), ok: actual <= limit })
  }

  /** `actual` must be at least `limit`. */
  atLeast (what, actual, limit) {
    this.rows.push({ what, expected: `≥ ${show(limit)}`, actual: show(actual), ok: actual >= limit })
  }

  get ok () {
    return this.rows.every((row) => row.ok)
  }
}

function show (value) {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** `['Timeout', 'Timeout', 'TCPServerWrap']` → `{ TCPServerWrap: 1, Timeout: 2 }`, sorted, so two lists compare. */
export function countBy (list) {
  const counts = {}
  for (const item of [...list].sort()) counts[item] = (counts[item] ?? 0) + 1
  return counts
}
