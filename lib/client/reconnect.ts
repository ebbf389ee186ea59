/**
 * What the client does after its socket ended, read from the close code (or,
 * for a connect refused before `open`, from the HTTP status a plain GET of the
 * same URL got). One table, so the SDK and the README say the same thing.
 *
 * - `retry`: reconnect after the normal backoff (1001, 1006, 4000–4499, anything unknown).
 * - `slow`: reconnect after the longer backoff (4006 rate limited, 429).
 * - `token`: ask `getToken()` for a new token, then reconnect with backoff (4005, 401).
 * - `stop`: do not reconnect; the state becomes `closed` (4500–4999, 403).
 * - `reset`: forget every position (one `resync` per channel), then reconnect
 *   after the normal backoff, without `recover` (400 to a connect that had one).
 */
export type Decision = 'retry' | 'slow' | 'token' | 'stop' | 'reset'

/** The decision for a close code the socket ended with. */
export function decideClose (code: number): Decision {
  if (code >= 4500 && code <= 4999) return 'stop'
  if (code === 4005) return 'token'
  if (code === 4006) return 'slow'
  return 'retry'
}

/**
 * The decision for the status of the GET that follows a connect that failed
 * before `open`: 426 means the gate would have let the upgrade through (the
 * failure was the network's), 400 a request the server will never accept:
 * when it had a `recover` (`recovering`), that is what the server refused (a
 * channel it no longer knows, more than it allows), and the client starts over
 * without it.
 */
export function decideStatus (status: number, recovering = false): Decision {
  if (status === 400 && recovering) return 'reset'
  if (status === 401) return 'token'
  if (status === 403 || status === 400) return 'stop'
  if (status === 429) return 'slow'
  return 'retry'
}

export interface Backoff {
  /** The first delay's lower bound, and the floor of every delay. */
  minMs: number
  /** No delay is longer. */
  maxMs: number
}

export const BACKOFF: Backoff = { minMs: 500, maxMs: 20_000 }
/** After 4006 or 429: the server asked the client to send less. */
export const SLOW_BACKOFF: Backoff = { minMs: 5_000, maxMs: 60_000 }

/**
 * Exponential backoff with full jitter: `minMs` plus a random share of
 * `minMs · 2^attempt`, capped at `maxMs`. The jitter spreads a whole fleet's
 * reconnects after a node restart instead of sending them in one wave.
 */
export function backoffDelay (attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(attempt, 30))
  return Math.min(backoff.maxMs, Math.round(backoff.minMs + random() * ceiling))
}
