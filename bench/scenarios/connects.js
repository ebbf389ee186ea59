// Scenario 5b: connect rate with many handshakes in flight (500), on fresh
// processes: scenario 5 measures 50 in flight on the sockets the broadcast
// scenarios then use. Counted until each socket can receive, as in 5. The
// 2-node arms use a redis-server of the step's own, pinned to core 1 with the
// load generator (as in 4b): core 0 runs the nodes alone, as the embedded
// arm's node has it alone, and Redis's INFO cpu counts only these connects.
import { monotonicNs } from '../lib/payload.js'
import { sleep } from '../lib/rpc.js'

const SETTLE_MS = 300

export async function connectsInFlight (lab, config) {
  const redis = lab.arm.cluster ? await lab.ownRedis() : undefined
  const session = await lab.open({ redisUrl: redis?.url })
  const redisUsage = async () => redis === undefined ? undefined : await redis.usage()
  // Issued first (on the 2-node arm a SET each), so that the CPU counted is the connects'.
  await session.prepareTokens(config.clients)
  const cpuBefore = await session.cpuSplit()
  const redisBefore = await redisUsage()
  const startNs = monotonicNs()
  const connect = await session.connect(config.clients, config.concurrency)
  const endNs = monotonicNs()
  // Cluster mode finishes a connect's work after the socket can receive (presence waits up to
  // 100 ms to share a write, the takeover re-read 20 ms): counted before the CPU is read.
  await sleep(SETTLE_MS)
  const cpuAfter = await session.cpuSplit()
  const redisAfter = await redisUsage()
  if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)
  return {
    'connect500.perSecond': connect.perSecond,
    'connect500.failed': connect.failed,
    // Every node's CPU (µs) per socket opened: on the 2-node arm, what cluster mode adds to a connect.
    'connect500.cpuPerConnect': (cpuAfter.total - cpuBefore.total) / connect.opened,
    // The step's own redis-server per socket opened (its token lookup, claim, SUBSCRIBE, presence, …): µs,
    // and commands (fewer than a connect's requests where a turn's share one).
    ...(redisBefore === undefined || redisAfter === undefined
      ? {}
      : {
          'connect500.redisCpuPerConnect': (redisAfter.cpuSeconds - redisBefore.cpuSeconds) * 1e6 / connect.opened,
          'connect500.redisCommandsPerConnect': (redisAfter.commands - redisBefore.commands) / connect.opened
        }),
    ...(redis === undefined && lab.arm.cluster ? { _notes: [`no redis-server could be started: the shared Redis at ${lab.redisUrl} was used`] } : {}),
    // The connects alone, for `--cpu-prof` (bench/profile-top.js).
    _windows: [[Number(startNs / 1000n), Number(endNs / 1000n)]]
  }
}
