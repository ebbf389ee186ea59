// Scenarios 7 and 8 (plugin arms only): what history costs a publish, and how
// fast 1,000 phones that were away get what they missed (8b: while events keep coming).
//
// Both get a `lab` rather than a session: `lab.open({ history, redisUrl })`
// starts a session of the arm (closed by the orchestrator after the step),
// `lab.ownRedis()` a redis-server of the step's own (undefined if none can be
// started: the shared one at REDIS_URL is used instead).
import { Redis } from 'ioredis'
import { redisCpuSeconds } from '../lib/redis-server.js'
import { sleep } from '../lib/rpc.js'

const CHANNEL = 'notification.events'

/**
 * 7. Targeted publishes with history off and on, in the same step: one
 * session of each (in cluster mode each with a Redis of its own), the same
 * clients and publishes, the two variants measured alternately so drift on
 * the machine hits both alike:
 * - paced: `rate` publishes per second for `seconds` from a timer (one
 *   publish per tick, as an app publishing as events happen), `rounds`
 *   per variant in ABBA order; costs summed over the rounds;
 * - burst: `burst` publishes back to back in one synchronous loop (no timer:
 *   the publish path's own cost), `bursts` per variant, alternating (AB, BA,
 *   …); the median burst of each variant counts (a burst is short, so one
 *   that a GC or another process hit would sway a sum).
 * Server CPU per publish (all nodes), Redis CPU per publish, and on ÷ off.
 */
export async function historyCost (lab, config) {
  const variants = {}
  for (const history of [false, true]) {
    const redis = lab.arm.cluster ? await lab.ownRedis() : undefined
    const session = await lab.open({ history, redisUrl: redis?.url })
    const connect = await session.connect(config.clients, config.connectConcurrency)
    if (connect.opened < config.clients) throw new Error(`history ${history ? 'on' : 'off'}: ${connect.opened}/${config.clients} clients connected: ${JSON.stringify(connect.failures)}`)
    const { acked } = await session.loadgen.request('subscribe', { channel: CHANNEL }, 40_000)
    if (acked < session.clients) throw new Error(`history ${history ? 'on' : 'off'}: only ${acked}/${session.clients} clients subscribed`)
    await noteWarnings(session, [], '') // what it logs at boot (a configuration hint) is not an anomaly
    const redisCpu = lab.arm.cluster ? cpuMeter(redis?.url ?? lab.redisUrl, redis === undefined) : undefined
    variants[history ? 'on' : 'off'] = { session, redisCpu, paced: [], burst: [] }
  }
  const order = (index) => index % 2 === 0 ? ['off', 'on'] : ['on', 'off']
  try {
    // Unmeasured first: JIT warm-up, and the streams and their meta keys created.
    for (const variant of Object.values(variants)) {
      await paced(variant, { ...config, seconds: Math.min(1, config.seconds) })
      await burst(variant, config)
      variant.paced.length = 0
      variant.burst.length = 0
    }
    for (let round = 0; round < config.rounds; round++) for (const key of order(round)) await paced(variants[key], config)
    for (let index = 0; index < config.bursts; index++) for (const key of order(index)) await burst(variants[key], config)
  } finally {
    for (const variant of Object.values(variants)) variant.redisCpu?.close()
  }
  const { off, on } = variants
  const metrics = {}
  const total = (runs) => runs.reduce((sum, run) => ({ cpu: sum.cpu + run.cpu, redis: sum.redis + run.redis, publishes: sum.publishes + run.publishes }), { cpu: 0, redis: 0, publishes: 0 })
  const perPublish = {
    paced: (variant, field) => { const sum = total(variant.paced); return sum[field] / sum.publishes },
    burst: (variant, field) => medianOf(variant.burst.map((run) => run[field] / run.publishes))
  }
  for (const [mode, prefix] of [['paced', 'history.'], ['burst', 'history.burst.']]) {
    const per = perPublish[mode]
    metrics[`${prefix}cpuOff`] = per(off, 'cpu')
    metrics[`${prefix}cpuOn`] = per(on, 'cpu')
    metrics[`${prefix}cpuRatio`] = per(on, 'cpu') / per(off, 'cpu')
    if (lab.arm.cluster) {
      metrics[`${prefix}redisOff`] = per(off, 'redis')
      metrics[`${prefix}redisOn`] = per(on, 'redis')
      metrics[`${prefix}redisRatio`] = per(on, 'redis') / per(off, 'redis')
    }
  }
  const runs = [...off.paced, ...on.paced, ...off.burst, ...on.burst]
  metrics['history.received'] = runs.reduce((sum, run) => sum + run.received, 0)
  metrics['history.expected'] = runs.reduce((sum, run) => sum + run.expected, 0)
  if (lab.arm.cluster) metrics['history.sharedRedis'] = off.redisCpu.shared ? 1 : 0
  const notes = []
  for (const [key, variant] of Object.entries(variants)) await noteWarnings(variant.session, notes, `history ${key}: `)
  return { ...metrics, _notes: notes }
}

/** `rate` targeted publishes per second for `seconds` on node 0, round-robin over the users. */
async function paced (variant, { rate, seconds, size }) {
  const { session } = variant
  const count = Math.round(rate * seconds)
  variant.paced.push(await measure(variant, count, () => session.publisher.request('paced', { rate, count, size, targeted: true, users: session.clients }, seconds * 1000 + 60_000)))
}

/** `burst` targeted publishes back to back on node 0, round-robin over the users. */
async function burst (variant, { burst: count, size }) {
  const { session } = variant
  variant.burst.push(await measure(variant, count, () => session.publisher.request('burst', { count, size, targeted: true, users: session.clients }, 60_000)))
}

/** Server CPU (µs, all nodes) and Redis CPU (µs) from before `publish()` until the load generator has every event. */
async function measure ({ session, redisCpu }, count, publish) {
  // Each measurement starts from a collected heap, so a major GC owed by an earlier one does not land in it.
  await session.mem()
  await session.loadgen.request('record', { count })
  const cpuBefore = await session.cpu()
  const redisBefore = await redisCpu?.read()
  await publish()
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const cpu = await session.cpu() - cpuBefore
  const redis = redisCpu === undefined ? 0 : (await redisCpu.read() - redisBefore) * 1e6
  return { cpu, redis, publishes: count, received: result.received, expected: count }
}

function medianOf (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** INFO cpu of one Redis; `shared`: the one at REDIS_URL, where other clients add to it. */
function cpuMeter (url, shared) {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  return {
    shared,
    read: () => redisCpuSeconds(client),
    close: () => client.disconnect()
  }
}

/**
 * 8. Recovery at scale, history on: `clients` sockets (one user each)
 * subscribe to notification.events and get one live event each (their last
 * id); all go away; `missed` events are published to each user; then all
 * reconnect at once with `recover=notification.events@<last id>` (in cluster
 * mode to the other node). Time until every socket has all `missed` events,
 * each checked: every seq once, in order, ids consecutive.
 */
export async function recovery (lab, config) {
  const redis = lab.arm.cluster ? await lab.ownRedis() : undefined
  const session = await lab.open({ history: true, redisUrl: redis?.url })
  const notes = []
  const { clients, missed, size } = config
  await noteWarnings(session, [], '') // what it logs at boot (a configuration hint) is not an anomaly
  await session.prepareTokens(clients)
  const connect = await session.loadgen.request('rc.connect', { urls: session.urls, tokens: session.tokens.slice(0, clients), channel: CHANNEL, concurrency: config.connectConcurrency }, 180_000)
  if (connect.opened < clients) throw new Error(`${connect.opened}/${clients} clients connected: ${JSON.stringify(connect.failures)}`)

  // One live event each: the id each client will recover from is one it was sent.
  await session.loadgen.request('rc.expect', { toSeq: 0 })
  await session.publisher.request('publishEach', { users: clients, count: 1, from: 0, size }, 60_000)
  const warm = await session.loadgen.request('rc.wait', { timeoutMs: 30_000 }, 40_000)
  if (warm.complete < clients) notes.push(`warm-up: ${warm.complete}/${clients} clients got their live event cleanly (${JSON.stringify(warm)})`)

  await session.loadgen.request('rc.drop')
  const gone = await untilNoConnections(session, 15_000)
  if (!gone) notes.push('the server still listed connections 15 s after every client dropped')

  const away = await session.publisher.request('publishEach', { users: clients, count: missed, from: 1, size }, 300_000)
  if (away.failed > 0) notes.push(`${away.failed} publishes failed while the clients were away`)

  await session.loadgen.request('rc.expect', { toSeq: missed })
  const statsBefore = await session.each('stats')
  await session.each('eldStart')
  const cpuBefore = await session.cpu()
  const loadgenBefore = (await session.loadgen.request('cpu')).total
  const redisBefore = redis === undefined ? undefined : await redis.cpuSeconds()
  const reconnect = await session.loadgen.request('rc.reconnect', { urls: session.urls, shift: lab.arm.cluster ? 1 : 0 }, 120_000)
  const result = await session.loadgen.request('rc.wait', { timeoutMs: 120_000 }, 130_000)
  const eld = await session.each('eldStop')
  const cpu = await session.cpu() - cpuBefore
  const loadgenCpu = (await session.loadgen.request('cpu')).total - loadgenBefore
  const redisCpu = redis === undefined ? undefined : (await redis.cpuSeconds() - redisBefore) * 1e6
  const statsAfter = await session.each('stats')
  const replayedByServer = statsAfter.reduce((total, stats, node) => total + stats.replayed - statsBefore[node].replayed, 0)

  const summary = await summarize('recovery.', '', { session, clients, reconnect, result, notes })
  if (reconnect.claimed !== result.expected) notes.push(`connected.data.recovery claimed ${reconnect.claimed} replayed events, ${result.expected} expected`)
  if (replayedByServer !== result.received + result.duplicates) notes.push(`the servers' stats count ${replayedByServer} replayed events; the clients got ${result.received} (+${result.duplicates} twice)`)
  const underLoad = config.underLoad === undefined ? {} : await reconnectUnderLoad(session, config, 1 + missed, notes)
  return {
    ...summary,
    'recovery.connectMs': Number(reconnect.connectedNs) / 1e6,
    'recovery.perSecond': result.received / (summary['recovery.ms'] / 1000),
    'recovery.eldP99': Math.max(...eld.map((node) => node.eldP99)),
    'recovery.eldMax': Math.max(...eld.map((node) => node.eldMax)),
    'recovery.cpuPerEvent': cpu / Math.max(1, result.received),
    'recovery.loadgenCpuPerEvent': loadgenCpu / Math.max(1, result.received),
    ...(redisCpu === undefined ? {} : { 'recovery.redisCpuPerClient': redisCpu / clients }),
    'recovery.publishPerSecond': away.published / (away.ms / 1000),
    'recovery.failedConnects': reconnect.failed,
    'recovery.closedByServer': result.closedByServer,
    ...underLoad,
    _notes: notes
  }
}

/**
 * 8b. The same sockets go away again, `missed` more events each are
 * published, and they reconnect at once (2 nodes: back to the first node)
 * while `live` more rounds of one event per user are published, one round
 * every `intervalMs`: the replay and the live events meet on every socket.
 * Each must get every event once, in order.
 */
async function reconnectUnderLoad (session, config, fromSeq, notes) {
  const { clients, size } = config
  const { missed, live, intervalMs } = config.underLoad
  await session.loadgen.request('rc.drop')
  if (!await untilNoConnections(session, 15_000)) notes.push('8b: the server still listed connections 15 s after every client dropped')
  const away = await session.publisher.request('publishEach', { users: clients, count: missed, from: fromSeq, size }, 300_000)
  if (away.failed > 0) notes.push(`8b: ${away.failed} publishes failed while the clients were away`)
  await session.loadgen.request('rc.expect', { toSeq: fromSeq + missed + live - 1 })
  const [reconnect, publishing] = await Promise.all([
    session.loadgen.request('rc.reconnect', { urls: session.urls, shift: 0 }, 120_000),
    session.publisher.request('publishEach', { users: clients, count: live, from: fromSeq + missed, size, intervalMs }, 120_000)
  ])
  const result = await session.loadgen.request('rc.wait', { timeoutMs: 60_000 }, 70_000)
  if (publishing.failed > 0) notes.push(`8b: ${publishing.failed} live publishes failed`)
  return {
    ...await summarize('recoveryLive.', '8b: ', { session, clients, reconnect, result, notes }),
    'recoveryLive.publishMs': publishing.ms
  }
}

/**
 * What 8 and 8b report alike from a reconnect (`rc.reconnect`) and its wait
 * (`rc.wait`): the time, the checks summed over the sockets (keys from
 * `prefix`), and in `notes` (each after `label`) what was odd.
 */
async function summarize (prefix, label, { session, clients, reconnect, result, notes }) {
  notes.push(...result.oddities.map((oddity) => `${label}${oddity}`))
  await noteWarnings(session, notes, label)
  if (reconnect.retried > 0) notes.push(`${label}handshakes refused and tried again: ${reconnect.retried} (${JSON.stringify(reconnect.refused)})`)
  if (reconnect.failed > 0) notes.push(`${label}reconnects that gave up: ${JSON.stringify(reconnect.failures)}`)
  const recovered = reconnect.outcomes.recovered ?? 0
  if (recovered < clients) notes.push(`${label}recovery outcomes: ${JSON.stringify(reconnect.outcomes)}`)
  return {
    [`${prefix}ms`]: result.doneNs === null ? NaN : Number(result.doneNs) / 1e6,
    [`${prefix}duplicates`]: result.duplicates,
    [`${prefix}reordered`]: result.reordered,
    [`${prefix}idJumps`]: result.idJumps + result.extra,
    [`${prefix}notRecovered`]: clients - recovered,
    [`${prefix}retried`]: reconnect.retried,
    [`${prefix}received`]: result.received,
    [`${prefix}expected`]: result.expected
  }
}

/** The plugin's warnings on each node since the last call (a failed history read, a token lookup past its deadline, …). */
async function noteWarnings (session, notes, prefix) {
  const seen = session.warningsSeen ?? []
  const now = await session.each('warnings')
  now.forEach((warnings, node) => {
    for (const [message, count] of Object.entries(warnings)) {
      const more = count - (seen[node]?.[message] ?? 0)
      if (more > 0) notes.push(`${prefix}node ${node} logged ${more}× "${message}"`)
    }
  })
  session.warningsSeen = now
}

/** Waits until no node lists a connection (the drops were seen); false after `timeoutMs`. */
async function untilNoConnections (session, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    const counts = await session.each('connections')
    if (counts.every((count) => count === 0)) return true
    await sleep(50)
  }
  return false
}
