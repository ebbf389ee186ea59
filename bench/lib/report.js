// Turns the collected samples into the markdown report: one column per arm,
// one row per metric, ratios of the plugin against its peers, the targets.
import { spread } from './stats.js'

const PLUGIN = 'plugin'
const PEERS = [['ws-cork', 'plugin ÷ ws cork'], ['socketio', 'plugin ÷ Socket.IO'], ['bun', 'plugin ÷ Bun']]
// The aim against the native anchor (Bun's uWS server), not a target: the plugin's server CPU per delivery within this factor of Bun's.
const BUN_AIM = 1.2

/** Row definitions; `delivered` rows sum received/expected over repetitions. */
function rowsFor (config) {
  const memory = config.memory.steps.flatMap((step) => [
    { key: `mem.heap.${step}`, label: `heap per idle connection, ${step} sockets (KiB)`, digits: 2 },
    { key: `mem.rss.${step}`, label: `RSS per idle connection, ${step} sockets (KiB)`, digits: 2 }
  ])
  const b = config.broadcast
  return [
    { section: '1. Idle memory (server, after GC, ÷ N)' },
    ...memory,
    { section: `2. Burst: ${b.clients} sockets × ${b.burst} messages of ${b.size} B` },
    { key: 'burst.cpuPerDelivery', label: 'server CPU per delivery (µs)', digits: 2 },
    { key: 'burst.systemPerDelivery', label: 'of which in the kernel (system time: the write syscalls; µs)', digits: 2 },
    { key: 'burst.perSecond', label: 'deliveries/s (first publish → last receipt)', digits: 0 },
    { key: 'burst.rssGrowth', label: 'server max RSS growth during the burst (MiB)', digits: 1 },
    { key: 'burst.loadgenCpuPerDelivery', label: 'load generator CPU per delivery (µs; if ≥ the server\'s, the client side is the bottleneck)', digits: 2 },
    { key: 'burst.p50', label: 'latency p50 (ms)', digits: 1 },
    { key: 'burst.p99', label: 'latency p99 (ms)', digits: 1 },
    { key: 'burst.max', label: 'latency max (ms)', digits: 1 },
    { key: 'burst', label: 'delivered / expected', delivered: true },
    { section: `3. Paced: ${b.clients} sockets, ${b.paced.rate} msg/s for ${b.paced.seconds} s` },
    { key: 'paced.p50', label: 'latency p50 (ms)', digits: 2 },
    { key: 'paced.p99', label: 'latency p99 (ms)', digits: 2 },
    { key: 'paced.eldP99', label: 'server event-loop delay p99 (ms)', digits: 2 },
    { key: 'paced.cpuPerDelivery', label: 'server CPU per delivery (µs)', digits: 2 },
    { key: 'paced.systemPerDelivery', label: 'of which in the kernel (system time; µs)', digits: 2 },
    { key: 'paced', label: 'delivered / expected', delivered: true },
    { section: `4. Targeted per-user publishes, 2 nodes over Redis: ${config.targeted.clients} sockets, ${config.targeted.rate} msg/s for ${config.targeted.seconds} s` },
    { key: 'targeted.remoteP99', label: 'cross-node latency p99 (ms)', digits: 2 },
    { key: 'targeted.localP99', label: 'same-node latency p99 (ms)', digits: 2 },
    { key: 'targeted.redisCpuPerMessage', label: 'Redis CPU per publish (µs)', digits: 1 },
    { key: 'targeted', label: 'delivered / expected', delivered: true },
    ...targetedLoadRows(config.targetedLoad),
    { section: `5. Connect rate: ${b.clients} connects, ${b.connectConcurrency} in flight` },
    { key: 'connect.perSecond', label: 'connects/s (until the socket can receive)', digits: 0 },
    { key: 'connect.failed', label: 'failed connects', digits: 0 },
    ...connectRows(config.connects),
    { section: `6. Slow consumers: ${b.slowFraction * 100}% of clients paused during the burst of scenario 2` },
    { key: 'burst.p99', label: 'others\' latency p99 without slow consumers (ms)', digits: 1 },
    { key: 'slow.p99', label: 'others\' latency p99 with slow consumers (ms)', digits: 1 },
    { key: 'slow.rssGrowth', label: 'server max RSS growth during this burst (MiB; the scenario 2 burst already grew the heap once)', digits: 1 },
    { key: 'slow.cuts', label: 'slow consumers cut by the server', digits: 0 },
    { key: 'slow', label: 'delivered / expected (others)', delivered: true },
    { section: `6b. Slow consumers, sustained: ${config.sustained.clients} sockets, ${config.sustained.slowFraction * 100}% paused, ${config.sustained.rate} msg/s × ${config.sustained.seconds} s of ${config.sustained.size} B` },
    { key: 'sustained.bufferedPeak', label: 'peak bytes the server held for clients in user space (MiB)', digits: 1 },
    { key: 'sustained.rssGrowth', label: 'server max RSS growth (MiB)', digits: 1 },
    { key: 'sustained.cuts', label: 'slow consumers cut by the server', digits: 0 },
    { key: 'sustained.p99', label: 'others\' latency p99 (ms)', digits: 1 },
    { key: 'sustained.healthyCloses', label: 'reading clients closed by the server', digits: 0 },
    { key: 'sustained', label: 'delivered / expected (others)', delivered: true },
    { section: `7. History publish cost: targeted publishes to ${config.history.clients} sockets, history off vs on in the same step, alternately` },
    ...historyCostRows('history.', 'paced', `(${config.history.rate}/s × ${config.history.seconds} s, ${config.history.rounds} per variant)`, ', the step\'s own redis-server'),
    ...historyCostRows('history.burst.', 'burst', `(${config.history.burst} back to back, median of ${config.history.bursts} per variant)`, ''),
    { key: 'history', label: 'delivered / expected (both variants, both modes)', delivered: true },
    { section: `8. Recovery: ${config.recovery.clients} sockets away while ${config.recovery.missed} events each are published, then all reconnect at once with recover (2 nodes: to the other node)` },
    { key: 'recovery.connectMs', label: 'time until every socket got connected (ms)', digits: 0, noRatio: true },
    { key: 'recovery.ms', label: 'time until every socket got all its missed events (ms)', digits: 0, noRatio: true },
    { key: 'recovery.perSecond', label: 'replayed events/s (all of them ÷ that time)', digits: 0, noRatio: true },
    { key: 'recovery.eldP99', label: 'server event-loop delay p99 during the reconnect (ms; the highest node)', digits: 1, noRatio: true },
    { key: 'recovery.eldMax', label: 'server event-loop delay max (ms)', digits: 1, noRatio: true },
    { key: 'recovery.cpuPerEvent', label: 'server CPU per replayed event, handshakes included (µs, all nodes)', digits: 2, noRatio: true },
    { key: 'recovery.loadgenCpuPerEvent', label: 'load generator CPU per replayed event (µs)', digits: 2, noRatio: true },
    { key: 'recovery.redisCpuPerClient', label: 'Redis CPU per recovering socket (µs)', digits: 0, noRatio: true },
    { key: 'recovery.publishPerSecond', label: 'publishes/s while the sockets were away (one node, 1000 in flight)', digits: 0, noRatio: true },
    { key: 'recovery', label: 'missed events received / expected', delivered: true },
    ...recoveryCheckRows('recovery.', ' (503 token lookup, 4003 history read, …; see Anomalies)'),
    { key: 'recovery.failedConnects', label: 'sockets that never got back (after 5 retries)', digits: 0, noRatio: true },
    { key: 'recovery.closedByServer', label: 'sockets closed by the server', digits: 0, noRatio: true },
    ...(config.recovery.underLoad === undefined
      ? []
      : [
          { section: `8b. The same sockets away again for ${config.recovery.underLoad.missed} events each, back at once while ${config.recovery.underLoad.live} more each are published (one round every ${config.recovery.underLoad.intervalMs} ms)` },
          { key: 'recoveryLive.ms', label: 'time until every socket got all its events (ms)', digits: 0, noRatio: true },
          { key: 'recoveryLive.publishMs', label: 'time the live publishes took (ms)', digits: 0, noRatio: true },
          { key: 'recoveryLive', label: 'events received / expected (missed + live)', delivered: true },
          ...recoveryCheckRows('recoveryLive.', '')
        ]),
    { section: `9. Publishing over HTTP (POST {prefix}/publish on node 0) vs in-process app.realtime.publish: ${config.http.count} targeted events each to ${config.http.clients} sockets, ${config.http.inFlight} publishes in flight (batch: ${config.http.batch} per request, ${config.http.batchInFlight} in flight)` },
    ...httpPublishRows(config.http),
    { key: 'http.duplicates', label: 'events received twice', digits: 0, noRatio: true },
    { key: 'http', label: 'delivered / expected (all three ways)', delivered: true },
    { section: `10. Reconnect storm: ${config.storm.clients} sockets subscribed to notification.events, every TCP connection cut at once, back with the SDK's backoff (plugin ×2 column; embedded and admission control run in the same step)` },
    ...stormRows(config.storm),
    ...scaleRows(config.scale),
    { section: 'Noise: CPU share other processes took from the machine while each arm was measured (%)' },
    { key: 'noise.memory', label: 'during scenario 1', digits: 0, noRatio: true },
    { key: 'noise.broadcast', label: 'during scenarios 2, 3, 5, 6', digits: 0, noRatio: true },
    { key: 'noise.sustained', label: 'during scenario 6b', digits: 0, noRatio: true },
    { key: 'noise.targeted', label: 'during scenario 4', digits: 0, noRatio: true },
    { key: 'noise.targetedLoad', label: 'during scenario 4b', digits: 0, noRatio: true },
    { key: 'noise.history', label: 'during scenario 7', digits: 0, noRatio: true },
    { key: 'noise.recovery', label: 'during scenario 8', digits: 0, noRatio: true },
    { key: 'noise.http', label: 'during scenario 9', digits: 0, noRatio: true },
    { key: 'noise.storm', label: 'during scenario 10', digits: 0, noRatio: true },
    { key: 'noise.scale', label: 'during scenario 11', digits: 0, noRatio: true }
  ]
}

/** Scenario 4b's rows: per rate, latency, what the node kept up, CPU of the nodes and of the step's own Redis. */
function targetedLoadRows ({ clients, rates, seconds }) {
  return [
    { section: `4b. Targeted publishes at load, 2 nodes over a redis-server of the step's own: ${clients} sockets, ${rates.join(' and ')} publishes/s for ${seconds} s each` },
    ...rates.flatMap((rate) => [
      { key: `targetedLoad.${rate}.remoteP50`, label: `${rate}/s: cross-node latency p50 (ms)`, digits: 2, noRatio: true },
      { key: `targetedLoad.${rate}.remoteP99`, label: `${rate}/s: cross-node latency p99 (ms${rate === 5000 ? '; aim < 5' : ''})`, digits: 2, noRatio: true },
      { key: `targetedLoad.${rate}.localP99`, label: `${rate}/s: same-node latency p99 (ms)`, digits: 2, noRatio: true },
      { key: `targetedLoad.${rate}.publishedPerSecond`, label: `${rate}/s: publishes/s node 0 kept up (its timer; below ${rate}: it fell behind)`, digits: 0, noRatio: true },
      { key: `targetedLoad.${rate}.eldP99`, label: `${rate}/s: event-loop delay p99 of the publishing node (ms)`, digits: 1, noRatio: true },
      { key: `targetedLoad.${rate}.serverCpuPerPublish`, label: `${rate}/s: server CPU per publish (µs, both nodes)`, digits: 1, noRatio: true },
      { key: `targetedLoad.${rate}.redisCpuPerPublish`, label: `${rate}/s: Redis CPU per publish (µs, the step's own redis-server)`, digits: 2, noRatio: true },
      { key: `targetedLoad.${rate}.failedPublishes`, label: `${rate}/s: publishes whose promise rejected (plugin: no answer from Redis within its timeout; see Anomalies)`, digits: 0, noRatio: true },
      { key: `targetedLoad.${rate}`, label: `${rate}/s: delivered / expected`, delivered: true }
    ])
  ]
}

/** Scenario 5b's rows: each number of handshakes in flight, and the two variants that split the 2-node arm's gap. */
function connectRows ({ clients, inFlight }) {
  return inFlight.map((n) => [
    { section: `5b. Connect rate: ${clients} connects, ${n} in flight (fresh processes)` },
    { key: `connect${n}.perSecond`, label: 'connects/s (until the socket can receive)', digits: 0 },
    { key: `connect${n}.failed`, label: 'failed connects', digits: 0 },
    { key: `connect${n}.cpuPerConnect`, label: 'server CPU per connect (µs, every node)', digits: 0 },
    { key: `connect${n}.redisCpuPerConnect`, label: 'Redis CPU per connect (µs; 2-node arms, a redis-server of the measurement\'s own on core 1)', digits: 0 },
    { key: `connect${n}.redisCommandsPerConnect`, label: 'Redis commands per connect (2-node arms; a script\'s own calls included)', digits: 2 },
    { key: `connect${n}.batchedCommandsPerConnect`, label: 'MGET, EVALSHA and SUBSCRIBE calls per connect (4 when no batch holds two connects)', digits: 2 },
    { key: `connect${n}.oneNode.perSecond`, label: 'one node in cluster mode, core 0 alone: connects/s (2-node plugin column)', digits: 0, noRatio: true },
    { key: `connect${n}.oneNode.cpuPerConnect`, label: 'one node in cluster mode: server CPU per connect (µs)', digits: 0, noRatio: true },
    { key: `connect${n}.twoProcesses.perSecond`, label: 'two processes sharing core 0: connects/s (ws cork column)', digits: 0, noRatio: true },
    { key: `connect${n}.twoProcesses.cpuPerConnect`, label: 'two processes sharing core 0: server CPU per connect (µs, both)', digits: 0, noRatio: true }
  ]).flat()
}

/** Scenario 11's rows (embedded plugin column). */
function scaleRows ({ clients, broadcastRate, targetedRate, seconds }) {
  return [
    { section: `11. Scale: ${clients.toLocaleString('en-US')} sockets on one node, settings broadcast at ${broadcastRate} msg/s and targeted publishes at ${targetedRate}/s side by side for ${seconds} s (plugin column; ws cork and Bun: the broadcast alone, what one core delivers at best)` },
    { key: 'scale.connectPerSecond', label: 'connects/s while opening them (200 in flight, from 50 source addresses)', digits: 0, noRatio: true },
    { key: 'scale.heapPerSocket', label: 'heap per socket, subscribed to both channels (KiB)', digits: 2, noRatio: true },
    { key: 'scale.rssPerSocket', label: 'RSS per socket (KiB)', digits: 2, noRatio: true },
    { key: 'scale.broadcastP50', label: 'broadcast latency p50 (ms)', digits: 1, noRatio: true },
    { key: 'scale.broadcastP99', label: 'broadcast latency p99 (ms; aim < 100)', digits: 1, noRatio: true },
    { key: 'scale.broadcastMax', label: 'broadcast latency max (ms)', digits: 1, noRatio: true },
    { key: 'scale.targetedP50', label: 'targeted latency p50 (ms)', digits: 2, noRatio: true },
    { key: 'scale.targetedP99', label: 'targeted latency p99 (ms; aim < 100)', digits: 2, noRatio: true },
    { key: 'scale.targetedMax', label: 'targeted latency max (ms)', digits: 1, noRatio: true },
    { key: 'scale.eldP99', label: 'event-loop delay p99 (ms)', digits: 1, noRatio: true },
    { key: 'scale.eldMax', label: 'event-loop delay max (ms)', digits: 1, noRatio: true },
    { key: 'scale.cpuShare', label: 'server CPU used (share of one core)', digits: 2, noRatio: true },
    { key: 'scale.loadgenCpuShare', label: 'load generator CPU used (share of one core; near 1: it was the bottleneck)', digits: 2, noRatio: true },
    { key: 'scale.broadcast', label: 'broadcast deliveries received / expected', delivered: true },
    { key: 'scale.targeted', label: 'targeted deliveries received / expected', delivered: true }
  ]
}

const STORM_VARIANTS = [['embedded', 'embedded (1 node)'], ['cluster', '2 nodes'], ['admission', '2 nodes, admission control']]

/** Scenario 10's rows: each variant's figures, then the 2-node times ÷ the embedded one. */
function stormRows ({ handshakesPerSecond }) {
  const title = (key, name) => key === 'admission' ? `${name} (${handshakesPerSecond}/s per node)` : name
  return [
    ...STORM_VARIANTS.flatMap(([key, name]) => [
      { key: `storm.${key}.ms`, label: `${title(key, name)}: time until every socket is back and subscribed (ms, first drop → last \`subscribed\`)`, digits: 0, noRatio: true },
      { key: `storm.${key}.back`, label: `${name}: sockets back and subscribed`, digits: 0, noRatio: true },
      { key: `storm.${key}.attemptsPerSocket`, label: `${name}: reconnect attempts per socket`, digits: 2, noRatio: true },
      { key: `storm.${key}.refused503`, label: `${name}: handshakes refused 503 + Retry-After (fine)`, digits: 0, noRatio: true },
      { key: `storm.${key}.refused429`, label: `${name}: handshakes refused 429 + Retry-After (fine)`, digits: 0, noRatio: true },
      { key: `storm.${key}.serverRefused`, label: `${name}: handshakes the nodes refused (stats().handshakes_refused, all statuses)`, digits: 0, noRatio: true },
      { key: `storm.${key}.failures`, label: `${name}: failures (any other status, no HTTP answer, closed before \`subscribed\`; see Anomalies; aim 0)`, digits: 0, noRatio: true },
      { key: `storm.${key}.eldP99`, label: `${name}: server event-loop delay p99 during the storm (ms; the highest node)`, digits: 1, noRatio: true },
      { key: `storm.${key}.eldMax`, label: `${name}: server event-loop delay max (ms)`, digits: 1, noRatio: true },
      ...(key === 'embedded' ? [] : [{ key: `storm.${key}.redisOps`, label: `${name}: Redis commands during the storm (INFO stats, the step's own redis-server)`, digits: 0, noRatio: true }])
    ]),
    { key: 'storm.clusterRatio', label: '2 nodes ÷ embedded: time until all back (aim ≤ 2)', digits: 2, noRatio: true },
    { key: 'storm.admissionRatio', label: '2 nodes with admission control ÷ embedded: time until all back (aim ≤ 2)', digits: 2, noRatio: true }
  ]
}

/** Scenario 9's rows: each way's figures, then single and batch as ratios to in-process. */
function httpPublishRows ({ batch }) {
  const ways = [['inProcess', 'in-process publish'], ['single', 'HTTP single'], ['batch', `HTTP batch of ${batch}`]]
  return [
    ...ways.flatMap(([way, title]) => [
      { key: `http.${way}.perSecond`, label: `${title}: publishes/s (first publish → last answer)`, digits: 0, noRatio: true },
      { key: `http.${way}.p50`, label: `${title}: latency publish call → socket, p50 (ms)`, digits: 2, noRatio: true },
      { key: `http.${way}.p99`, label: `${title}: latency p99 (ms)`, digits: 2, noRatio: true },
      { key: `http.${way}.cpuPerPublish`, label: `${title}: server CPU per publish (µs, all nodes)`, digits: 1, noRatio: true }
    ]),
    ...ways.slice(1).flatMap(([way, title]) => [
      { key: `http.${way}.perSecondRatio`, label: `${title} ÷ in-process: publishes/s`, digits: 2, noRatio: true },
      { key: `http.${way}.p99Ratio`, label: `${title} ÷ in-process: latency p99`, digits: 2, noRatio: true },
      { key: `http.${way}.cpuRatio`, label: `${title} ÷ in-process: server CPU per publish`, digits: 2, noRatio: true }
    ])
  ]
}

/** Scenario 7's rows of one mode (paced or burst): server and Redis CPU per publish, history off and on, and on ÷ off. */
function historyCostRows (prefix, mode, how, redisNote) {
  return [
    { key: `${prefix}cpuOff`, label: `${mode} ${how}: server CPU per publish, history off (µs, all nodes)`, digits: 1, noRatio: true },
    { key: `${prefix}cpuOn`, label: `${mode}: server CPU per publish, history on (µs, all nodes)`, digits: 1, noRatio: true },
    { key: `${prefix}cpuRatio`, label: `${mode}: server CPU, on ÷ off (aim ≤ 1.3)`, digits: 2, noRatio: true },
    { key: `${prefix}redisOff`, label: `${mode}: Redis CPU per publish, history off (µs${redisNote})`, digits: 1, noRatio: true },
    { key: `${prefix}redisOn`, label: `${mode}: Redis CPU per publish, history on (µs)`, digits: 1, noRatio: true },
    { key: `${prefix}redisRatio`, label: `${mode}: Redis CPU, on ÷ off (aim ≤ 1.3)`, digits: 2, noRatio: true }
  ]
}

/** The checks scenarios 8 and 8b count alike, summed over the sockets. */
function recoveryCheckRows (prefix, retriedNote) {
  return [
    { key: `${prefix}duplicates`, label: 'events received twice', digits: 0, noRatio: true },
    { key: `${prefix}reordered`, label: 'events out of order', digits: 0, noRatio: true },
    { key: `${prefix}idJumps`, label: 'ids not following the previous one (+ events not expected)', digits: 0, noRatio: true },
    { key: `${prefix}notRecovered`, label: 'sockets told recovered: false (or not told)', digits: 0, noRatio: true },
    { key: `${prefix}retried`, label: `handshakes refused and tried again${retriedNote}`, digits: 0, noRatio: true }
  ]
}

const DELIVERY_KEYS = ['burst', 'paced', 'targeted', 'slow', 'sustained', 'history', 'recovery', 'recoveryLive', 'http', 'scale']

function format (value, digits) {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function cell (values, digits) {
  const s = spread(values ?? [])
  if (s === null) return '–'
  if (s.n === 1) return format(s.median, digits)
  return `${format(s.median, digits)} (${format(s.min, digits)}–${format(s.max, digits)})`
}

function deliveredCell (samples, key) {
  const received = (samples[`${key}.received`] ?? []).reduce((a, b) => a + b, 0)
  const expected = (samples[`${key}.expected`] ?? []).reduce((a, b) => a + b, 0)
  if (expected === 0) return '–'
  const lost = expected - received
  return `${format(received, 0)} / ${format(expected, 0)}${lost === 0 ? '' : ` (**${format(lost, 0)} lost**)`}`
}

/** Messages expected minus received, over every scenario and repetition. */
export function lostMessages (samples) {
  let lost = 0
  let expected = 0
  const where = []
  for (const key of DELIVERY_KEYS) {
    const e = (samples[`${key}.expected`] ?? []).reduce((a, b) => a + b, 0)
    const l = e - (samples[`${key}.received`] ?? []).reduce((a, b) => a + b, 0)
    expected += e
    lost += l
    if (l !== 0) where.push(`${key}: ${format(l, 0)}`)
  }
  return { lost, expected, where }
}

const median = (samples, key) => spread(samples?.[key] ?? [])?.median

function ratio (a, b) {
  if (a === undefined || b === undefined || b === 0) return undefined
  return a / b
}

/** The issue's targets, each with the two numbers it compares. */
export function evaluateTargets (samples, config) {
  const plugin = samples[PLUGIN]
  const bareWs = (key) => {
    const values = ['ws-naive', 'ws-cork'].map((id) => median(samples[id], key)).filter((v) => v !== undefined)
    return values.length === 0 ? undefined : Math.min(...values)
  }
  const step = config.memory.steps.at(-1)
  const heap = `mem.heap.${step}`
  const checks = [
    { name: 'burst CPU per delivery ≤ 1.2 × ws cork', value: median(plugin, 'burst.cpuPerDelivery'), peer: median(samples['ws-cork'], 'burst.cpuPerDelivery'), limit: 1.2 },
    { name: 'burst CPU per delivery ≤ 1/3 × Socket.IO', value: median(plugin, 'burst.cpuPerDelivery'), peer: median(samples.socketio, 'burst.cpuPerDelivery'), limit: 1 / 3 },
    { name: `heap per idle connection (${step}) ≤ 1.5 × bare ws (the lower of naive and cork)`, value: median(plugin, heap), peer: bareWs(heap), limit: 1.5 },
    { name: `heap per idle connection (${step}) ≤ 1/2 × Socket.IO`, value: median(plugin, heap), peer: median(samples.socketio, heap), limit: 0.5 },
    { name: 'paced p99 ≤ 1.2 × bare ws (the lower of naive and cork)', value: median(plugin, 'paced.p99'), peer: bareWs('paced.p99'), limit: 1.2 }
  ]
  for (const check of checks) {
    check.ratio = ratio(check.value, check.peer)
    check.met = check.ratio === undefined ? undefined : check.ratio <= check.limit
  }
  const { lost, expected, where } = plugin === undefined ? { lost: undefined, expected: 0, where: [] } : lostMessages(plugin)
  checks.push({ name: 'zero lost messages (plugin, all scenarios)', value: lost, expected, where, met: lost === undefined || expected === 0 ? undefined : lost === 0 })
  return checks
}

/** Scenario 7's ratios against the 1.3× aim, per plugin arm that ran it. */
function historyAims (samples) {
  const arms = [['plugin', 'plugin (embedded)'], ['plugin-redis', 'plugin ×2 (Redis)']]
  const show = (value) => value === undefined ? '–' : `${format(value, 2)}× ${value <= 1.3 ? '(within)' : '(**above**)'}`
  return arms
    .filter(([id]) => median(samples[id], 'history.cpuRatio') !== undefined)
    .flatMap(([id, title]) => [['paced', 'history.'], ['burst', 'history.burst.']].map(([mode, prefix]) => ({
      title,
      mode,
      cpu: show(median(samples[id], `${prefix}cpuRatio`)),
      redis: show(median(samples[id], `${prefix}redisRatio`))
    })))
}

export function buildReport ({ arms, skipped, samples, config, machine, git, command, errors, notes = [], seconds, pinned, load }) {
  const lines = []
  const columns = arms.map((arm) => arm.title)
  const ratioColumns = PEERS.filter(([id]) => arms.some((arm) => arm.id === id) && arms.some((arm) => arm.id === PLUGIN))
  lines.push('# fastify-realtime benchmark results', '')
  lines.push(`- Command: \`${command}\``)
  lines.push(`- Machine: ${machine.nproc} CPUs (\`nproc\`), ${machine.cpuModel}, ${machine.memoryGiB} GiB RAM, ${machine.kernel}; Node.js ${machine.node}`)
  lines.push(`- Code: ${git}; the plugin arms load dist/, which \`npm run bench\` builds first`)
  lines.push(`- Packages: ${Object.entries(machine.versions).map(([name, v]) => `${name} ${v}`).join(', ')}`)
  lines.push(`- Pinning: ${pinned ? 'server node(s) on core 0, load generator on core 1 (taskset)' : '**none** (taskset unavailable): server and load generator share the cores'}`)
  const percent = (share) => `${Math.round(share * 100)}%`
  const other = load.other === null ? 'unknown' : `${percent(load.other.share)} of the machine's CPU time (${Math.round(load.other.cpuSeconds)} CPU-s)`
  lines.push(`- Other work on the machine during the run: ${other}; busy ${load.busyAtStart === null ? '?' : percent(load.busyAtStart)} just before it; load average ${load.start} → ${load.end}`)
  lines.push(`- Measurements repeated because other processes took more than ${load.maxNoise}% of the machine meanwhile (quietest attempt kept): ${load.retried}`)
  lines.push(`- Repetitions: ${config.reps}; cells are median (min–max) over repetitions; the run took ${Math.round(seconds)} s`, '')
  for (const line of skipped) lines.push(`- ${line}`)
  if (skipped.length > 0) lines.push('')

  lines.push(`| metric | ${[...columns, ...ratioColumns.map(([, title]) => title)].join(' | ')} |`)
  lines.push(`|---|${[...columns, ...ratioColumns].map(() => '---:').join('|')}|`)
  for (const row of rowsFor(config)) {
    if (row.section !== undefined) {
      lines.push(`| **${row.section}** |${' |'.repeat(columns.length + ratioColumns.length)}`)
      continue
    }
    const cells = arms.map((arm) => row.delivered ? deliveredCell(samples[arm.id] ?? {}, row.key) : cell(samples[arm.id]?.[row.key], row.digits))
    const ratios = ratioColumns.map(([peer]) => {
      if (row.delivered || row.noRatio) return ''
      const r = ratio(median(samples[PLUGIN], row.key), median(samples[peer], row.key))
      return r === undefined ? '–' : `${format(r, 2)}×`
    })
    lines.push(`| ${row.label} | ${[...cells, ...ratios].join(' | ')} |`)
  }
  lines.push('')

  lines.push('## Targets (issue #4), from the medians above', '')
  lines.push('| target | plugin | peer | ratio | met |', '|---|---:|---:|---:|:---:|')
  for (const check of evaluateTargets(samples, config)) {
    const mark = check.met === undefined ? 'n/a' : check.met ? 'yes' : '**no**'
    if (check.ratio === undefined && check.peer === undefined && check.expected !== undefined) {
      const detail = check.where.length === 0 ? '' : ` (${check.where.join(', ')})`
      lines.push(`| ${check.name} | ${check.value === undefined ? '–' : `${format(check.value, 0)} lost of ${format(check.expected, 0)}${detail}`} | | | ${mark} |`)
    } else {
      const show = (v) => v === undefined ? '–' : format(v, 2)
      lines.push(`| ${check.name} | ${show(check.value)} | ${show(check.peer)} | ${check.ratio === undefined ? '–' : `${format(check.ratio, 2)}× (limit ${format(check.limit, 2)}×)`} | ${mark} |`)
    }
  }
  lines.push('')

  const aims = historyAims(samples)
  if (aims.length > 0) {
    lines.push('## Aim (issue #11): history on ≤ 1.3 × off, from the medians above (not a test)', '')
    lines.push('| arm | mode | server CPU on ÷ off | Redis CPU on ÷ off |', '|---|---|---:|---:|')
    for (const aim of aims) lines.push(`| ${aim.title} | ${aim.mode} | ${aim.cpu} | ${aim.redis} |`)
    lines.push('')
  }

  if (median(samples.bun, 'burst.cpuPerDelivery') !== undefined) {
    lines.push(`## Aim: server CPU per delivery within ${format(BUN_AIM, 1)} × Bun's (uWS), from the medians above (not a test)`, '')
    lines.push('| scenario | plugin (µs) | Bun (µs) | plugin ÷ Bun |', '|---|---:|---:|---:|')
    for (const [title, key] of [['2. burst', 'burst.cpuPerDelivery'], ['3. paced', 'paced.cpuPerDelivery']]) {
      const r = ratio(median(samples[PLUGIN], key), median(samples.bun, key))
      const show = (value) => value === undefined ? '–' : format(value, 2)
      lines.push(`| ${title} | ${show(median(samples[PLUGIN], key))} | ${show(median(samples.bun, key))} | ${r === undefined ? '–' : `${format(r, 2)}× ${r <= BUN_AIM ? '(within)' : '(**above**)'}`} |`)
    }
    lines.push('')
  }

  const embedded = samples[PLUGIN]
  const cluster = samples['plugin-redis']
  const cork = samples['ws-cork']
  const connectRatios = config.connects.inFlight
    .map((n) => ({ n, clustered: median(cluster, `connect${n}.perSecond`), alone: median(embedded, `connect${n}.perSecond`), oneNode: median(cluster, `connect${n}.oneNode.perSecond`), corkOne: median(cork, `connect${n}.perSecond`), corkTwo: median(cork, `connect${n}.twoProcesses.perSecond`) }))
    .filter(({ clustered, alone }) => clustered !== undefined && alone !== undefined)
  if (connectRatios.length > 0) {
    const show = (value, base) => value === undefined || base === undefined ? '–' : `${format(value / base, 2)}×`
    lines.push('## Aim (issue #15): cluster connects ≥ 0.8 × embedded connects per second (scenario 5b; not a test)', '')
    lines.push('| handshakes in flight | plugin ×2 (Redis) | plugin (embedded) | ratio | one node in cluster mode ÷ embedded | bare ws: two processes on core 0 ÷ one |', '|---:|---:|---:|---:|---:|---:|')
    for (const { n, clustered, alone, oneNode, corkOne, corkTwo } of connectRatios) {
      const ratio = clustered / alone
      lines.push(`| ${n} | ${format(clustered, 0)} | ${format(alone, 0)} | ${format(ratio, 2)}× ${ratio >= 0.8 ? '(within)' : '(**below**)'} | ${show(oneNode, alone)} | ${show(corkTwo, corkOne)} |`)
    }
    lines.push('')
  }

  const storm = samples['plugin-redis']
  if (median(storm, 'storm.clusterRatio') !== undefined) {
    lines.push('## Aim (issue #15): a reconnect storm on 2 nodes back within 2 × the embedded time, zero failures (not a test)', '')
    lines.push('| variant | time until all back ÷ embedded | failures |', '|---|---:|---:|')
    const show = (value) => value === undefined ? '–' : `${format(value, 2)}× ${value <= 2 ? '(within)' : '(**above**)'}`
    const failures = (key) => { const value = median(storm, `storm.${key}.failures`); return value === undefined ? '–' : value === 0 ? '0' : `**${format(value, 0)}**` }
    lines.push(`| embedded (1 node) | 1.00× | ${failures('embedded')} |`)
    lines.push(`| 2 nodes | ${show(median(storm, 'storm.clusterRatio'))} | ${failures('cluster')} |`)
    lines.push(`| 2 nodes, admission control (${config.storm.handshakesPerSecond}/s per node) | ${show(median(storm, 'storm.admissionRatio'))} | ${failures('admission')} |`)
    lines.push('')
  }

  if (notes.length > 0) {
    lines.push('## Anomalies seen (missing, duplicated or unexpected events, failed recoveries)', '')
    for (const note of notes) lines.push(`- ${note}`)
    lines.push('')
  }

  if (errors.length > 0) {
    lines.push('## Errors during the run', '')
    for (const error of errors) lines.push(`- ${error}`)
    lines.push('')
  }
  lines.push('See bench/README.md for the method and what each number means.', '')
  return lines.join('\n')
}
