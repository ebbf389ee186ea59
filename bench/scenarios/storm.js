// Scenario 10: a reconnect storm. N sockets subscribed to notification.events
// lose their TCP connections at the same instant (the nodes destroy them all,
// as a deploy behind a load balancer or a network blip would), then come back
// with the client SDK's backoff (full jitter, 0.5 s → 20 s; Retry-After
// honoured) and subscribe again. Three variants in one step, one after the
// other, each on fresh processes: the embedded plugin (1 node), 2 nodes over
// Redis, and 2 nodes over Redis with `limits.handshakesPerSecond` (admission
// control). Gets a lab (see history.js): the step runs on the 2-node arm and
// opens the embedded one beside it.
import { Redis } from 'ioredis'
import { ARMS } from '../arms.js'
import { redisCommandsProcessed } from '../lib/redis-server.js'

const CHANNEL = 'notification.events'
const EMBEDDED = ARMS.find((arm) => arm.id === 'plugin')

export async function reconnectStorm (lab, config) {
  const variants = [
    { key: 'embedded', arm: EMBEDDED, handshakesPerSecond: 0 },
    { key: 'cluster', arm: lab.arm, handshakesPerSecond: 0 },
    { key: 'admission', arm: lab.arm, handshakesPerSecond: config.handshakesPerSecond }
  ]
  const metrics = {}
  const notes = []
  for (const variant of variants) {
    const figures = await stormOnce(lab, variant, config)
    for (const [name, value] of Object.entries(figures)) {
      if (typeof value === 'number') metrics[`storm.${variant.key}.${name}`] = value
    }
    const failures = { ...figures.refusedOther, ...figures.networkErrors }
    if (Object.keys(failures).length > 0) notes.push(`storm, ${variant.key}: connects that failed, by cause: ${JSON.stringify(failures)}`)
    const clientRefused = figures.refused503 + figures.refused429 + Object.values(figures.refusedOther).reduce((total, times) => total + times, 0)
    if (figures.serverRefused !== clientRefused) notes.push(`storm, ${variant.key}: the nodes refused ${JSON.stringify(figures.serverRefusedByStatus)} handshakes, the clients saw ${clientRefused} refusals`)
    if (figures.back < config.clients) notes.push(`storm, ${variant.key}: only ${figures.back}/${config.clients} sockets back and subscribed`)
  }
  metrics['storm.clusterRatio'] = metrics['storm.cluster.ms'] / metrics['storm.embedded.ms']
  metrics['storm.admissionRatio'] = metrics['storm.admission.ms'] / metrics['storm.embedded.ms']
  return { ...metrics, _notes: notes }
}

/** One variant: connect and subscribe N sockets, cut them all, measure until every one is subscribed again. */
async function stormOnce (lab, { key, arm, handshakesPerSecond }, config) {
  const redis = arm.cluster ? await lab.ownRedis() : undefined
  const session = await lab.open({ arm, redisUrl: redis?.url, handshakesPerSecond, droppable: true })
  const counter = arm.cluster ? new Redis(redis?.url ?? lab.redisUrl, { maxRetriesPerRequest: 1 }) : undefined
  try {
    await session.prepareTokens(config.clients)
    const setup = await session.loadgen.request('storm.connect', { urls: session.urls, tokens: session.tokens, channel: CHANNEL, concurrency: config.connectConcurrency }, 200_000)
    if (setup.opened < config.clients) throw new Error(`storm ${key}: ${setup.opened}/${config.clients} clients subscribed before the drop: ${JSON.stringify(setup.failures)}`)
    await session.loadgen.request('storm.arm')
    const commandsBefore = counter === undefined ? 0 : await redisCommandsProcessed(counter)
    const refusedBefore = await refusedByNodes(session)
    await session.each('eldStart')
    const dropped = (await session.each('drop')).reduce((sum, answer) => sum + answer.count, 0)
    const result = await session.loadgen.request('storm.wait', { timeoutMs: config.timeoutMs }, config.timeoutMs + 30_000)
    const eld = await session.each('eldStop')
    const commandsAfter = counter === undefined ? 0 : await redisCommandsProcessed(counter)
    const serverSockets = (await session.each('connections')).reduce((sum, count) => sum + count, 0)
    const refusedAfter = await refusedByNodes(session)
    const serverRefused = {}
    for (const [status, times] of Object.entries(refusedAfter)) if (times > (refusedBefore[status] ?? 0)) serverRefused[status] = times - (refusedBefore[status] ?? 0)
    await session.loadgen.request('storm.close')
    const refusedFine = {}
    const refusedOther = {}
    for (const [status, times] of Object.entries(result.refused)) ((status === '503' || status === '429') ? refusedFine : refusedOther)[status] = times
    const sum = (counts) => Object.values(counts).reduce((total, times) => total + times, 0)
    return {
      ms: result.ms ?? NaN,
      back: result.back,
      expected: config.clients,
      dropped,
      serverSockets,
      attemptsPerSocket: result.attempts / config.clients,
      refused503: refusedFine['503'] ?? 0,
      refused429: refusedFine['429'] ?? 0,
      // The nodes' own count (stats().handshakes_refused, all statuses), to check the clients' against.
      serverRefused: Object.values(serverRefused).reduce((total, times) => total + times, 0),
      serverRefusedByStatus: serverRefused,
      // A refusal other than 503/429 with Retry-After, a connect without an HTTP answer, a socket closed before `subscribed`.
      failures: sum(refusedOther) + sum(result.networkErrors) + result.closedBeforeBack,
      refusedOther,
      networkErrors: result.networkErrors,
      eldP99: Math.max(...eld.map((node) => node.eldP99)),
      eldMax: Math.max(...eld.map((node) => node.eldMax)),
      ...(counter === undefined ? {} : { redisOps: commandsAfter - commandsBefore - 1, sharedRedis: redis === undefined ? 1 : 0 })
    }
  } finally {
    counter?.disconnect()
    // Closed now, not at the end of the step: the next variant gets the cores to itself.
    await session.close()
    await redis?.destroy()
  }
}

/** The handshakes the nodes refused so far, by status, summed over nodes. */
async function refusedByNodes (session) {
  const total = {}
  for (const stats of await session.each('stats')) {
    for (const [status, times] of Object.entries(stats.handshakes_refused)) total[status] = (total[status] ?? 0) + times
  }
  return total
}
