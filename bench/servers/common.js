// What every benchmark server does the same way: command-line options, the
// IPC commands the orchestrator drives it with, and the measurements taken
// inside the server process (CPU, memory after GC, event-loop delay, RSS peak).
import { parseArgs } from 'node:util'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { serve, announce, sleep } from '../lib/rpc.js'
import { monotonicNs } from '../lib/payload.js'

/**
 * Server options: `--redis URL --nodes 2 --node 0 --key-prefix bench:…:`,
 * `--history` (plugin arms: the `history` option on, with its defaults),
 * `--handshakes-per-second N` (plugin arms: `limits.handshakesPerSecond`, the
 * reconnect storm's admission control) and `--droppable` (plugin arms: every
 * TCP connection tracked for `drop`, which only the reconnect storm uses).
 * Without `--redis` the arm runs as a single node.
 */
export function serverOptions () {
  const { values } = parseArgs({
    options: {
      redis: { type: 'string' },
      nodes: { type: 'string', default: '1' },
      node: { type: 'string', default: '0' },
      'key-prefix': { type: 'string', default: 'bench:' },
      history: { type: 'boolean', default: false },
      'handshakes-per-second': { type: 'string', default: '0' },
      droppable: { type: 'boolean', default: false }
    }
  })
  return { redis: values.redis, nodes: Number(values.nodes), node: Number(values.node), keyPrefix: values['key-prefix'], history: values.history, handshakesPerSecond: Number(values['handshakes-per-second']), droppable: values.droppable }
}

/**
 * Runs one arm. `arm` is what the arm's `start()` returned:
 * `{ port, path, publish(seq, size), publishTo?(user, seq, size) (may return a promise of whether it was published),
 * issueTokens?(from, count), buffered() (bytes accepted for clients but not yet handed to the kernel),
 * stats?(), connectionCount?(), warnings?(), dropAll?() (destroys every TCP connection, returns how many), close() }`.
 */
export function runServer (arm) {
  const eld = monitorEventLoopDelay({ resolution: 1 })
  let rssPeak = 0
  let bufferedPeak = 0
  let rssTimer
  let bufferedTimer

  serve({
    async mem () {
      // Twice, with a turn in between, so weak callbacks and finalizers settle.
      fullGc()
      await sleep(20)
      fullGc()
      const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage()
      return { heapUsed, rss, external, arrayBuffers }
    },
    cpu () {
      const { user, system } = process.cpuUsage()
      return { user, system, total: user + system }
    },
    tokens: async ({ from, count }) => await arm.issueTokens(from, count),
    burst ({ count, size, targeted = false, users = 0 }) {
      const startNs = monotonicNs()
      if (targeted) for (let seq = 0; seq < count; seq++) arm.publishTo(seq % users, seq, size)
      else for (let seq = 0; seq < count; seq++) arm.publish(seq, size)
      return { startNs: String(startNs), loopMs: Number(monotonicNs() - startNs) / 1e6 }
    },
    async paced ({ rate, count, size, targeted = false, users = 0 }) {
      eld.reset()
      eld.enable()
      const startNs = monotonicNs()
      await pace(rate, count, (seq) => {
        if (targeted) arm.publishTo(seq % users, seq, size)
        else arm.publish(seq, size)
      })
      const publishMs = Number(monotonicNs() - startNs) / 1e6
      // Let the last fan-out's writes leave before reading the delay histogram.
      await sleep(100)
      eld.disable()
      return { startNs: String(startNs), publishMs, eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6 }
    },
    /**
     * The scale scenario: a broadcast at `broadcastRate`/s and targeted
     * publishes (seq i to user i % users) at `targetedRate`/s, both for
     * `seconds`, from their own timers side by side, with the event-loop delay.
     */
    async mixed ({ broadcastRate, targetedRate, seconds, size, users }) {
      eld.reset()
      eld.enable()
      const startNs = monotonicNs()
      await Promise.all([
        pace(broadcastRate, Math.round(broadcastRate * seconds), (seq) => arm.publish(seq, size)),
        targetedRate > 0 ? pace(targetedRate, Math.round(targetedRate * seconds), (seq) => arm.publishTo(seq % users, seq, size)) : undefined
      ])
      await sleep(100)
      eld.disable()
      return { startNs: String(startNs), eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6 }
    },
    /**
     * `count` rounds of one publish to each of users 0..users-1 (round r
     * carries seq `from + r`), at most `inFlight` publishes unanswered: each
     * user gets its events in seq order; `intervalMs` apart, round after
     * round (0: as fast as they are answered). For the recovery scenario.
     */
    async publishEach ({ users, count, from = 0, size, inFlight = 1000, intervalMs = 0 }) {
      const started = performance.now()
      let failed = 0
      let pending = []
      const settle = async () => {
        for (const published of await Promise.all(pending)) if (published === false) failed++
        pending = []
      }
      for (let round = 0; round < count; round++) {
        if (intervalMs > 0 && round > 0) await sleep(Math.max(0, started + round * intervalMs - performance.now()))
        for (let user = 0; user < users; user++) {
          pending.push(arm.publishTo(user, from + round, size))
          if (pending.length >= inFlight) await settle()
        }
      }
      await settle()
      return { ms: performance.now() - started, published: users * count - failed, failed }
    },
    /**
     * Publishes seq 0..count-1, seq i to user i % users, with at most
     * `inFlight` publishes unanswered (a sliding window: each of `inFlight`
     * lanes publishes its next one as soon as its last was answered). Scenario
     * 9's in-process arm, the same window as the load generator's HTTP one.
     */
    async publishSeries ({ users, count, size, inFlight }) {
      const started = performance.now()
      let next = 0
      let failed = 0
      const lane = async () => {
        while (next < count) {
          const seq = next++
          if (await arm.publishTo(seq % users, seq, size) === false) failed++
        }
      }
      await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane))
      return { ms: performance.now() - started, published: count - failed, failed }
    },
    /** Event-loop delay between `eldStart` and `eldStop` (1 ms resolution). */
    eldStart () {
      eld.reset()
      eld.enable()
    },
    eldStop () {
      eld.disable()
      return { eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6 }
    },
    connections: () => arm.connectionCount?.() ?? null,
    /** The reconnect storm: every TCP connection destroyed at once, as a network failure or a load balancer restart would. */
    drop: () => ({ count: arm.dropAll?.() ?? null }),
    /** The plugin's warnings so far, counted by message ({} for arms that keep none). */
    warnings: () => arm.warnings?.() ?? {},
    /** Starts sampling the RSS peak (and, with `buffered`, the peak of bytes held for clients). */
    watch ({ buffered = false }) {
      clearInterval(rssTimer)
      clearInterval(bufferedTimer)
      rssPeak = process.memoryUsage.rss()
      bufferedPeak = 0
      rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()) }, 5)
      if (buffered && arm.buffered !== undefined) {
        bufferedTimer = setInterval(() => { bufferedPeak = Math.max(bufferedPeak, arm.buffered()) }, 50)
      }
      return { rss: rssPeak }
    },
    peaks () {
      clearInterval(rssTimer)
      clearInterval(bufferedTimer)
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss())
      return { rssPeak, bufferedPeak: arm.buffered === undefined ? null : bufferedPeak }
    },
    stats: () => arm.stats?.() ?? null,
    /** Failed publishes so far, by message (reportError). */
    publishFailures: () => Object.fromEntries(publishFailures),
    async shutdown () {
      clearInterval(rssTimer)
      clearInterval(bufferedTimer)
      await arm.close()
      setImmediate(() => process.exit(0))
    }
  })
  announce({ port: arm.port, path: arm.path })
}

/** A full, synchronous collection: Node's `global.gc` (--expose-gc), or Bun's own. */
function fullGc () {
  if (globalThis.Bun !== undefined) globalThis.Bun.gc(true)
  else global.gc()
}

/** Calls `publish(seq)` `count` times at `rate` per second; catches up after a late timer. */
function pace (rate, count, publish) {
  return new Promise((resolve) => {
    const intervalMs = Math.max(1, Math.floor(1000 / rate))
    const start = performance.now()
    let sent = 0
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate) + 1)
      while (sent < due) publish(sent++)
      if (sent >= count) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(tick, intervalMs)
    tick()
  })
}

// Failed publishes by message, for the `publishFailures` command; only the first few of each are printed
// (at 20,000 publishes/s a Redis that falls behind fails thousands, and the lines would bury everything else).
const publishFailures = new Map()
const PRINTED_PER_MESSAGE = 3

/** Reports a failed publish without stopping the run (the loss shows in the counts). */
export function reportError (error) {
  const message = String(error?.message ?? error)
  const times = (publishFailures.get(message) ?? 0) + 1
  publishFailures.set(message, times)
  if (times <= PRINTED_PER_MESSAGE) process.stderr.write(`publish failed: ${message}${times === PRINTED_PER_MESSAGE ? ' (further ones of this message are only counted)' : ''}\n`)
}
