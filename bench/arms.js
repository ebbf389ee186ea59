// The arms of the comparison: which server script, how many nodes, how clients connect.

export const ARMS = [
  { id: 'plugin', title: 'plugin (embedded)', script: 'servers/plugin.js', client: 'plugin', nodes: 1, tokens: true },
  { id: 'plugin-redis', title: 'plugin ×2 (Redis)', script: 'servers/plugin.js', client: 'plugin', nodes: 2, tokens: true, cluster: true },
  { id: 'ws-naive', title: 'ws naive', script: 'servers/ws-naive.js', client: 'ws', nodes: 1 },
  { id: 'ws-cork', title: 'ws cork', script: 'servers/ws-cork.js', client: 'ws', nodes: 1 },
  { id: 'socketio', title: 'Socket.IO 4', script: 'servers/socketio.js', client: 'sio', nodes: 1 },
  { id: 'socketio-redis', title: 'Socket.IO ×2 (Redis)', script: 'servers/socketio.js', client: 'sio', nodes: 2, cluster: true },
  // The native anchor: runs under Bun (installed on demand, lib/bun.js; `runtime` is set to its binary then), skipped where it cannot be had.
  { id: 'bun', title: 'Bun (uWS)', script: 'servers/bun.js', client: 'ws', nodes: 1, bun: true }
]

/**
 * The 2-node arms (and scenario 4) need a Redis at REDIS_URL; BENCH_CLUSTER=0
 * leaves them out for a quicker run.
 */
export function clusterEnabled () {
  return process.env.BENCH_CLUSTER !== '0'
}
