// Scenarios 5, 2, 3 and 6 on one set of sockets: connect rate (with token
// validation for the plugin), burst broadcast, paced broadcast, then a burst
// with 1% of the clients no longer reading.

/** Connects, warms up, then measures burst, paced and slow-consumer burst. */
export async function broadcastSuite (session, config) {
  const metrics = {}
  await session.prepareTokens(config.clients)
  const connect = await session.connect(config.clients, config.connectConcurrency)
  metrics['connect.perSecond'] = connect.perSecond
  metrics['connect.failed'] = connect.failed
  if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)

  await burst(session, config.warmup, config.size) // JIT warm-up, not reported
  const { window, ...measured } = await burst(session, config.burst, config.size)
  Object.assign(metrics, prefixed('burst', measured))
  const { window: pacedWindow, ...pacedMeasured } = await paced(session, config.paced, config.size)
  Object.assign(metrics, prefixed('paced', pacedMeasured))
  Object.assign(metrics, prefixed('slow', await slowBurst(session, config)))
  return metrics
}

/**
 * Only bursts, several of them, for `--cpu-prof`: `_windows` (monotonic µs,
 * the profile's clock) lets bench/profile-top.js keep just the bursts' samples.
 */
export async function burstOnly (session, config) {
  await session.prepareTokens(config.clients)
  await session.connect(config.clients, config.connectConcurrency)
  await burst(session, config.warmup, config.size)
  const runs = []
  for (let index = 0; index < 5; index++) runs.push(await burst(session, config.burst, config.size))
  const metrics = prefixed('burst', Object.fromEntries(Object.keys(runs[0]).filter((key) => key !== 'window').map((key) => [key, runs.reduce((sum, run) => sum + run[key], 0) / runs.length])))
  return { ...metrics, _windows: runs.map((run) => run.window) }
}

/**
 * Only the paced broadcast (after a warm-up burst), for `--cpu-prof`: the
 * syscall-bound case, one write per socket per message; `_windows` as in burstOnly.
 */
export async function pacedOnly (session, config) {
  await session.prepareTokens(config.clients)
  await session.connect(config.clients, config.connectConcurrency)
  await burst(session, config.warmup, config.size)
  const { window, ...measured } = await paced(session, config.paced, config.size)
  return { ...prefixed('paced', measured), _windows: [window] }
}

/** `count` messages published back to back in one tick on node 0. */
export async function burst (session, count, size) {
  const expected = session.clients * count
  await session.loadgen.request('record', { count: expected })
  const before = await session.each('watch', {})
  const cpuBefore = await session.cpuSplit()
  const loadgenBefore = (await session.loadgen.request('cpu')).total
  const reply = await session.publisher.request('burst', { count, size }, 120_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 120_000 }, 130_000)
  const cpuAfter = await session.cpuSplit()
  const cpu = cpuAfter.total - cpuBefore.total
  const loadgenCpu = (await session.loadgen.request('cpu')).total - loadgenBefore
  const peaks = await session.each('peaks')
  const seconds = (Number(BigInt(result.lastNs) - BigInt(reply.startNs)) / 1e9)
  return {
    cpuPerDelivery: cpu / Math.max(1, result.received),
    systemPerDelivery: (cpuAfter.system - cpuBefore.system) / Math.max(1, result.received),
    loadgenCpuPerDelivery: loadgenCpu / Math.max(1, result.received),
    loopMs: reply.loopMs,
    perSecond: result.received / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    rssGrowth: rssGrowth(before, peaks),
    received: result.received,
    expected,
    window: [Number(BigInt(reply.startNs) / 1000n), Number(BigInt(result.lastNs) / 1000n)]
  }
}

/** `rate` messages per second for `seconds`, from a timer on node 0. */
export async function paced (session, { rate, seconds }, size) {
  const count = Math.round(rate * seconds)
  const expected = session.clients * count
  await session.loadgen.request('record', { count: expected })
  const cpuBefore = await session.cpuSplit()
  const reply = await session.publisher.request('paced', { rate, count, size }, seconds * 1000 + 60_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const cpuAfter = await session.cpuSplit()
  const cpu = cpuAfter.total - cpuBefore.total
  return {
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    eldP99: reply.eldP99,
    cpuPerDelivery: cpu / Math.max(1, result.received),
    systemPerDelivery: (cpuAfter.system - cpuBefore.system) / Math.max(1, result.received),
    received: result.received,
    expected,
    window: [Number(BigInt(reply.startNs) / 1000n), Number(BigInt(result.lastNs) / 1000n)]
  }
}

/** The burst again with the first 1% of clients paused; counts and latency are the others'. */
async function slowBurst (session, config) {
  const { paused } = await session.loadgen.request('pause', { count: Math.round(session.clients * config.slowFraction) })
  const expected = (session.clients - paused) * config.burst
  await session.loadgen.request('record', { count: expected })
  const before = await session.each('watch', {})
  await session.publisher.request('burst', { count: config.burst, size: config.size }, 120_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 120_000 }, 130_000)
  const peaks = await session.each('peaks')
  const stats = await session.each('stats')
  return {
    p99: result.latency.p99,
    rssGrowth: rssGrowth(before, peaks),
    cuts: slowConsumerCuts(stats),
    received: result.received,
    expected
  }
}

/** MiB between the RSS when watching started and its peak, summed over nodes. */
export function rssGrowth (before, peaks) {
  return peaks.reduce((total, peak, node) => total + peak.rssPeak - before[node].rss, 0) / 1048576
}

export function slowConsumerCuts (stats) {
  if (stats.some((entry) => entry === null)) return NaN
  return stats.reduce((total, entry) => total + entry.slow_consumer_cuts, 0)
}

export function prefixed (prefix, object) {
  return Object.fromEntries(Object.entries(object).map(([key, value]) => [`${prefix}.${key}`, value]))
}
