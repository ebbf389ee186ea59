// Scenario 9 (plugin arms only): publishing over the server API's HTTP route
// against app.realtime.publish in the gateway's own process, side by side in
// one session: the same sockets, the same events, the three ways measured
// alternately so drift on the machine hits all of them alike.
const CHANNEL = 'notification.events'

/**
 * The ways a publish gets in: `inProcess` publishes inside node 0 (the
 * bench's rpc starts it), `single` and `batch` POST {prefix}/publish to
 * node 0 from the load generator (keep-alive HTTP; one event per request, or
 * `batch` per request). In flight: `inFlight` publishes, or `batchInFlight`
 * batches.
 */
const WAYS = {
  inProcess: (session, config) => session.publisher.request('publishSeries', {
    users: session.clients, count: config.count, size: config.size, inFlight: config.inFlight
  }, 120_000),
  single: (session, config) => session.loadgen.request('httpPublish', {
    url: publishUrl(session), users: session.clients, count: config.count, size: config.size, batch: 1, inFlight: config.inFlight
  }, 120_000),
  batch: (session, config) => session.loadgen.request('httpPublish', {
    url: publishUrl(session), users: session.clients, count: config.count, size: config.size, batch: config.batch, inFlight: config.batchInFlight
  }, 120_000)
}

/**
 * `clients` sockets spread over the arm's nodes, each its own user,
 * subscribed to notification.events; every way publishes `count` events
 * (seq 0..count-1, seq i to user i % clients) on node 0, after one unmeasured
 * run each of `warmup` events. Per way: publishes/s (first publish → last
 * answer), end-to-end latency p50/p99 (publish call → the socket has it),
 * server CPU per publish (all nodes), each event once; and single and batch
 * as ratios to in-process.
 */
export async function httpPublishCost (session, config) {
  const connect = await session.connect(config.clients, config.connectConcurrency)
  if (connect.opened < config.clients) throw new Error(`${connect.opened}/${config.clients} clients connected: ${JSON.stringify(connect.failures)}`)
  const { acked } = await session.loadgen.request('subscribe', { channel: CHANNEL }, 40_000)
  if (acked < session.clients) throw new Error(`only ${acked}/${session.clients} clients subscribed`)
  const names = Object.keys(WAYS)
  // Unmeasured first: JIT warm-up of each path, keep-alive connections, Redis subscriptions settled.
  for (const name of names) await measure(session, name, { ...config, count: config.warmup })
  const runs = {}
  for (let round = 0; round < config.rounds; round++) {
    // Rotated per round: no way always runs first or right after another.
    for (let index = 0; index < names.length; index++) {
      const name = names[(index + round) % names.length];
      (runs[name] ??= []).push(await measure(session, name, config))
    }
  }
  const metrics = {}
  const notes = []
  let received = 0
  let expected = 0
  let duplicates = 0
  for (const name of names) {
    const all = runs[name]
    const ms = all.reduce((sum, run) => sum + run.ms, 0)
    const count = all.reduce((sum, run) => sum + run.count, 0)
    metrics[`http.${name}.perSecond`] = count / (ms / 1000)
    metrics[`http.${name}.p50`] = medianOf(all.map((run) => run.p50))
    metrics[`http.${name}.p99`] = medianOf(all.map((run) => run.p99))
    metrics[`http.${name}.cpuPerPublish`] = all.reduce((sum, run) => sum + run.cpu, 0) / count
    for (const run of all) {
      received += run.received
      expected += run.count
      duplicates += run.duplicates
      if (run.failed > 0 || run.duplicates > 0 || run.unknownSeq > 0 || run.missing > 0) {
        notes.push(`${name}: ${run.failed} publishes failed (HTTP statuses ${JSON.stringify(run.statuses ?? {})}), ${run.missing} events missing, ${run.duplicates} twice, ${run.unknownSeq} not of this run`)
      }
    }
  }
  for (const name of ['single', 'batch']) {
    metrics[`http.${name}.perSecondRatio`] = metrics[`http.${name}.perSecond`] / metrics['http.inProcess.perSecond']
    metrics[`http.${name}.p99Ratio`] = metrics[`http.${name}.p99`] / metrics['http.inProcess.p99']
    metrics[`http.${name}.cpuRatio`] = metrics[`http.${name}.cpuPerPublish`] / metrics['http.inProcess.cpuPerPublish']
  }
  metrics['http.received'] = received
  metrics['http.expected'] = expected
  metrics['http.duplicates'] = duplicates
  return { ...metrics, _notes: notes }
}

/** One run of `count` events the way `name` publishes them: until the clients have all of them (or stop getting any). */
async function measure (session, name, config) {
  // From a collected heap, so a major GC owed by an earlier run does not land in this one.
  await session.mem()
  await session.loadgen.request('record', { count: config.count, distinct: true })
  const cpuBefore = await session.cpu()
  const published = await WAYS[name](session, config)
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const cpu = await session.cpu() - cpuBefore
  return {
    count: config.count,
    ms: published.ms,
    failed: published.failed,
    statuses: published.statuses,
    cpu,
    p50: result.latency.p50,
    p99: result.latency.p99,
    received: result.received,
    duplicates: result.duplicates,
    unknownSeq: result.unknownSeq,
    missing: result.missing
  }
}

/** The server API's publish route on node 0 (the session's URLs are its WebSocket routes). */
function publishUrl (session) {
  return session.urls[0].replace(/^ws:/, 'http:') + '/publish'
}

function medianOf (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
