// @ts-check
// The ioredis settings README recommends for a client passed to the plugin,
// shared by the failover tests and the stress nodes (plain JavaScript, so
// that npm run stress can import it too).

/**
 * A Sentinel-managed client: no offline queue, no resend (what was in flight
 * fails at the drop), Sentinel asked
 * again soon, and a primary demoted behind our back (READONLY) left.
 * @param {object} sentinel `{ sentinels, name }`
 */
export function sentinelClientOptions (sentinel) {
  return {
    ...sentinel,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: 500,
    enableAutoPipelining: true,
    // Ask Sentinel again soon: the primary it named may be the one that died.
    retryStrategy: () => 100,
    sentinelRetryStrategy: () => 100,
    // A primary demoted behind our back answers writes with READONLY: reconnect, and Sentinel names the new one.
    /** @param {Error} error */
    reconnectOnError: (error) => error.message.startsWith('READONLY') ? 2 : false
  }
}

/**
 * A Cluster client: no resend, and no delayed retry of a command whose node
 * went away (ioredis would send such a publish again after
 * retryDelayOnFailover, behind the publishes made meanwhile). The offline
 * queue stays on: a first command to a node whose connection is coming up
 * waits for it.
 */
export const CLUSTER_CLIENT_OPTIONS = Object.freeze({
  maxRedirections: 2,
  retryDelayOnFailover: 0,
  retryDelayOnClusterDown: 0,
  redisOptions: { commandTimeout: 500, autoResendUnfulfilledCommands: false }
})
