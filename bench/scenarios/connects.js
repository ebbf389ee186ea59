// Scenario 5b: connect rate at 50 and at 500 handshakes in flight, each on
// fresh processes (scenario 5 measures 50 in flight on the sockets the
// broadcast scenarios then use, and on the shared Redis). Counted until each
// socket can receive, as in 5. The 2-node arms use a redis-server of the
// measurement's own, pinned to core 1 with the load generator (as in 4b):
// core 0 runs the nodes alone, as the embedded arm's node has it alone, and
// Redis's INFO counts only these connects.
//
// Two more measurements split the 2-node plugin arm's gap to the embedded
// one in two: the plugin on one node in cluster mode (what cluster mode adds
// to a connect, on a node that has core 0 alone as the embedded one has),
// and bare ws on two processes sharing core 0 (what two processes on one
// core cost, with no plugin and no Redis).
import { monotonicNs } from '../lib/payload.js'
import { sleep } from '../lib/rpc.js'

const SETTLE_MS = 300

export async function connectsInFlight (lab, config) {
  const metrics = {}
  const windows = []
  const variants = [{ prefix: '', arm: lab.arm }]
  if (lab.arm.cluster && lab.arm.client === 'plugin') variants.push({ prefix: 'oneNode.', arm: { ...lab.arm, nodes: 1 } })
  if (lab.arm.id === 'ws-cork') variants.push({ prefix: 'twoProcesses.', arm: { ...lab.arm, nodes: 2 } })
  const notes = []
  for (const inFlight of config.inFlight) {
    for (const { prefix, arm } of variants) {
      const { window, _notes = [], ...measured } = await measure(lab, arm, config.clients, inFlight)
      for (const [key, value] of Object.entries(measured)) metrics[`connect${inFlight}.${prefix}${key}`] = value
      windows.push(window)
      for (const note of _notes) if (!notes.includes(note)) notes.push(note)
    }
  }
  // The connects alone, for `--cpu-prof` (bench/profile-top.js).
  return { ...metrics, _notes: notes, _windows: windows }
}

/** `clients` connects to fresh nodes of `arm`, `inFlight` handshakes at a time; closes them after. */
async function measure (lab, arm, clients, inFlight) {
  const redis = arm.cluster ? await lab.ownRedis() : undefined
  const session = await lab.open({ arm, redisUrl: redis?.url })
  try {
    const redisUsage = async () => redis === undefined ? undefined : await redis.usage()
    // Issued first (on the 2-node arm a SET each), so that the CPU counted is the connects'.
    await session.prepareTokens(clients)
    const cpuBefore = await session.cpuSplit()
    const redisBefore = await redisUsage()
    const startNs = monotonicNs()
    const connect = await session.connect(clients, inFlight)
    const endNs = monotonicNs()
    // Cluster mode finishes a connect's work after the socket can receive (presence waits up to
    // 100 ms to share a write, the takeover re-read 20 ms): counted before the CPU is read.
    await sleep(SETTLE_MS)
    const cpuAfter = await session.cpuSplit()
    const redisAfter = await redisUsage()
    if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)
    const perConnect = (before, after) => (after - before) / connect.opened
    return {
      perSecond: connect.perSecond,
      failed: connect.failed,
      // Every node's CPU (µs) per socket opened: on the 2-node arm, what cluster mode adds to a connect.
      cpuPerConnect: perConnect(cpuBefore.total, cpuAfter.total),
      // The measurement's own redis-server per socket opened: µs, every command it ran (a script's
      // own calls included), and the commands of the requests a turn's connects share (a token lookup,
      // claim, SUBSCRIBE and re-read each: fewer than 4 where a batch holds more than one connect).
      ...(redisBefore === undefined || redisAfter === undefined
        ? {}
        : {
            redisCpuPerConnect: perConnect(redisBefore.cpuSeconds, redisAfter.cpuSeconds) * 1e6,
            redisCommandsPerConnect: perConnect(redisBefore.commands, redisAfter.commands),
            batchedCommandsPerConnect: perConnect(redisBefore.batched, redisAfter.batched)
          }),
      _notes: redis === undefined && arm.cluster ? [`no redis-server could be started: the shared Redis at ${lab.redisUrl} was used`] : [],
      window: [Number(startNs / 1000n), Number(endNs / 1000n)]
    }
  } finally {
    // Closed before the next measurement starts, so that its sockets cost nothing there.
    await session.close()
  }
}
