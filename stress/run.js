// npm run stress [-- --quick] [--only churn,storm,death,chaos,failover,malformed]
//
// The reliability proof: each scenario runs a real deployment (2 gateway
// processes, stress/node.js, on a redis-server of the run's own on a free
// loopback port; failover: on a Sentinel pair and a Redis Cluster of its own;
// malformed: one gateway), drives it with real clients, and checks exact counts. Prints
// the table and writes it to stress/results/latest.md (+ latest.json; --quick
// and --only write quick.* / partial.*). Exit code 1 if any check failed.
// Bounded: every wait has a timeout, the whole run a hard limit, and every
// child (gateways, redis-server) dies with the orchestrator.
import { parseArgs } from 'node:util'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { killAll, withTimeout } from '../bench/lib/children.js'
import { OwnRedis } from '../bench/lib/redis-server.js'
import { describeMachine, describeCheckout } from '../bench/lib/machine.js'
import { churn } from './scenarios/churn.js'
import { storm } from './scenarios/storm.js'
import { nodeDeath } from './scenarios/node-death.js'
import { chaos } from './scenarios/chaos.js'
import { failover } from './scenarios/failover.js'
import { malformed } from './scenarios/malformed.js'
import { buildReport } from './lib/report.js'

const FULL = {
  limitMs: 10 * 60_000,
  churn: { cycles: 10_000, concurrency: 50, warmup: 500 },
  storm: { sockets: 5000 },
  death: { sockets: 1000, rate: 400, seconds: 6, killAfterMs: 2000, heartbeatMs: 1000 },
  chaos: { sockets: 400, rate: 200, faultMs: 5000, leadMs: 1500, tailMs: 4000, handshakeLimitMs: 1500 },
  failover: { sockets: 400, rate: 200, leadMs: 2000, tailMs: 3000 },
  malformed: { rounds: 20 }
}
const QUICK = {
  limitMs: 5 * 60_000,
  churn: { cycles: 1000, concurrency: 20, warmup: 200 },
  storm: { sockets: 500 },
  death: { sockets: 200, rate: 200, seconds: 3, killAfterMs: 1000, heartbeatMs: 1000 },
  chaos: { sockets: 100, rate: 100, faultMs: 3000, leadMs: 1000, tailMs: 3000, handshakeLimitMs: 1500 },
  failover: { sockets: 100, rate: 100, leadMs: 1000, tailMs: 2000 },
  malformed: { rounds: 5 }
}
// `persist`: the scenario's Redis keeps its data across a SIGKILL (an fsynced append-only file).
// `ownRedis: false`: the scenario starts the Redis deployments it needs itself.
const SCENARIOS = {
  churn: { run: (config, context) => churn({ ...context, ...config.churn }) },
  storm: { run: (config, context) => storm({ ...context, ...config.storm }) },
  death: { run: (config, context) => nodeDeath({ ...context, ...config.death }) },
  chaos: { run: (config, context) => chaos({ ...context, ...config.chaos }), persist: true },
  failover: { run: (config, context) => failover({ ...context, ...config.failover }), ownRedis: false },
  malformed: { run: (config, context) => malformed({ ...context, ...config.malformed }) }
}
const STEP_TIMEOUT_MS = 4 * 60_000

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } } })
const config = args.quick ? QUICK : FULL
const only = args.only?.split(',') ?? Object.keys(SCENARIOS)
const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`

// killAll ends the redis-servers too (bench/lib/redis-server.js starts them as tracked children).
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { killAll(); process.exit(130) })
setTimeout(() => {
  console.error(`stress: hard time limit (${config.limitMs / 60_000} min) reached, stopping`)
  killAll()
  process.exit(2)
}, config.limitMs).unref()

if (!existsSync(new URL('../dist/index.js', import.meta.url))) {
  console.error('stress: dist/ is missing; run `npm run stress` (it builds first) or `npm run build`')
  process.exit(1)
}

const results = []
const started = performance.now()
const loadAtStart = loadavg()[0].toFixed(2)
for (const name of only) {
  const scenario = SCENARIOS[name]
  if (scenario === undefined) throw new Error(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(', ')})`)
  const stepStarted = performance.now()
  // A fresh Redis per scenario: what one leaves behind cannot hide in another's baseline.
  const redis = scenario.ownRedis === false ? undefined : await OwnRedis.start({ persist: scenario.persist })
  // What a scenario must stop if it times out (its SDK clients and Redis readers live in this process): it registers them with `onCleanup`.
  const cleanups = []
  const context = { redis, keyPrefix: `stress:${runId}:${name}:`, onCleanup: (cleanup) => { cleanups.push(cleanup) } }
  try {
    const { checks, figures } = await withTimeout(scenario.run(config, context), STEP_TIMEOUT_MS, `${name} timed out`)
    results.push({ name, ok: checks.ok, rows: checks.rows, figures, seconds: (performance.now() - stepStarted) / 1000 })
  } catch (error) {
    // A scenario that timed out still has its clients and gateways running: they must not load the next one.
    for (const cleanup of cleanups) {
      try {
        cleanup()
      } catch {}
    }
    killAll()
    console.error(`${name}: FAILED ${error.stack}`)
    results.push({ name, ok: false, rows: [{ what: 'scenario ran to the end', expected: 'yes', actual: error.message.split('\n')[0], ok: false }], figures: {}, seconds: (performance.now() - stepStarted) / 1000 })
  } finally {
    await redis?.destroy()
  }
  const last = results.at(-1)
  console.log(`${name}: ${last.ok ? 'PASS' : 'FAIL'} (${last.seconds.toFixed(1)} s)`)
}

const report = buildReport({
  results,
  machine: describeMachine(),
  git: describeCheckout(),
  command: `npm run stress${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  seconds: (performance.now() - started) / 1000,
  load: { start: loadAtStart, end: loadavg()[0].toFixed(2) }
})
console.log(`\n${report}`)
const name = args.only !== undefined ? 'partial' : args.quick ? 'quick' : 'latest'
const resultsDir = new URL('./results/', import.meta.url)
mkdirSync(resultsDir, { recursive: true })
writeFileSync(new URL(`${name}.md`, resultsDir), report)
writeFileSync(new URL(`${name}.json`, resultsDir), JSON.stringify({ config, results }, null, 2) + '\n')
console.log(`Written to stress/results/${name}.md (and ${name}.json)`)
process.exit(results.every((result) => result.ok) ? 0 : 1)
