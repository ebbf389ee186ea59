import { FST_REALTIME_OUTCOME_UNKNOWN, FST_REALTIME_REDIS_UNAVAILABLE } from '../errors.js'

/**
 * The rejections ioredis gives a command it refused before writing a byte of
 * it (no offline queue, and the link not writable or the cluster not ready).
 * Every other failure (a command timeout, a connection closed or a retry limit
 * reached with the command in flight) may come after Redis ran it.
 */
const REFUSED_UNWRITTEN = new Set([
  'Stream isn\'t writeable and enableOfflineQueue options is false',
  'Cluster isn\'t ready and enableOfflineQueue options is false'
])

/**
 * What a failed Redis write means to its caller: `FST_REALTIME_REDIS_UNAVAILABLE`
 * only when nothing reached Redis (a retry cannot repeat it), otherwise
 * `FST_REALTIME_OUTCOME_UNKNOWN`. A message ioredis might reword falls on the
 * safe side: unknown.
 */
export function writeFailure (error: Error): Error {
  return REFUSED_UNWRITTEN.has(error.message)
    ? new FST_REALTIME_REDIS_UNAVAILABLE(error.message)
    : new FST_REALTIME_OUTCOME_UNKNOWN(error.message)
}
