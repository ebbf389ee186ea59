// Small statistics helpers shared by the load generator and the report.

/** The `p`-th percentile (0–100) of an ascending array, nearest-rank; NaN if empty. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

/** p50/p99/max of nanosecond samples (a typed array, sorted in place), in milliseconds. */
export function latencySummary (samples) {
  samples.sort()
  const ms = (ns) => ns / 1e6
  return {
    count: samples.length,
    p50: ms(percentile(samples, 50)),
    p99: ms(percentile(samples, 99)),
    max: ms(samples.length === 0 ? NaN : samples[samples.length - 1])
  }
}

/** Median, min and max of repetition values (NaN and null are left out). */
export function spread (values) {
  const finite = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b)
  if (finite.length === 0) return null
  const middle = finite.length >> 1
  const median = finite.length % 2 === 1 ? finite[middle] : (finite[middle - 1] + finite[middle]) / 2
  return { median, min: finite[0], max: finite[finite.length - 1], n: finite.length }
}

/** Sums the same numeric fields of several objects (one per server node). */
export function sumFields (objects, fields) {
  const total = {}
  for (const field of fields) total[field] = objects.reduce((sum, object) => sum + object[field], 0)
  return total
}
