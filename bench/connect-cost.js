// What one connect costs the server, in units that the machine's other work
// does not move:
//
//   npm run build && node bench/connect-cost.js --instructions [--cluster] [--clients 2000] [--in-flight 50] [--runs 2] [--warmup 4000] [--keep DIR]
//   npm run build && node bench/connect-cost.js --allocations [--cluster] [--clients 8000] [--in-flight 500] [--runs 1] [--warmup 4000] [--keep DIR]
//
// One node of the bench's plugin arm (servers/plugin.js; embedded, or with
// --cluster in cluster mode on a redis-server of its own), pinned to core 0,
// the load generator and Redis on core 1, tokens issued first. `--warmup`
// connects go first, uncounted, so that the connect path is compiled; then
// only the connects are counted, and the 300 ms after them in which cluster
// mode finishes a connect's work (presence writes, the takeover re-read).
//
// --instructions: the node runs under valgrind's callgrind, instrumentation
// off until the counted connects start and off again after them; prints the
// instructions per connect (user space only). Runs of one build agree within
// about 3 % where CPU time per connect on a shared 2-core host moves by 15 %,
// so a change of a few per cent shows (bench/README.md, Profiling, has the
// spread). Compare counts of this tool with each other only. Needs valgrind.
//
// --allocations: V8's sampling heap profiler (bench/lib/allocation-sampler.js)
// over the same window, objects collected again included: bytes allocated
// per connect, and the functions that allocate the most.
//
// --keep DIR: the callgrind outputs (for callgrind_annotate) or allocation
// profiles stay in DIR. Loopback only; each run bounded by the session's timeouts.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ARMS } from './arms.js'
import { OwnRedis } from './lib/redis-server.js'
import { sleep } from './lib/rpc.js'
import { Session } from './lib/session.js'

const SETTLE_MS = 300
const TOP_FUNCTIONS = 15

const { values } = parseArgs({
  options: {
    instructions: { type: 'boolean', default: false },
    allocations: { type: 'boolean', default: false },
    cluster: { type: 'boolean', default: false },
    clients: { type: 'string' },
    'in-flight': { type: 'string' },
    runs: { type: 'string' },
    warmup: { type: 'string' },
    keep: { type: 'string' }
  }
})
if (values.instructions === values.allocations) {
  console.error('usage: node bench/connect-cost.js (--instructions | --allocations) [--cluster] [--clients N] [--in-flight N] [--runs N]')
  process.exit(1)
}
const clients = Number(values.clients ?? (values.instructions ? 2000 : 8000))
const inFlight = Number(values['in-flight'] ?? (values.instructions ? 50 : 500))
const runs = Number(values.runs ?? (values.instructions ? 2 : 1))
// Uncounted connects first: after 600 a third of the count was still TurboFan compiling the connect path, after 4,000 about 4 %.
const warmup = Number(values.warmup ?? 4000)
const arm = { ...ARMS.find((candidate) => candidate.id === (values.cluster ? 'plugin-redis' : 'plugin')), nodes: 1 }
const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'connect-cost-'))
if (values.keep !== undefined) mkdirSync(dir, { recursive: true })

try {
  for (let run = 1; run <= runs; run++) {
    const perConnect = values.instructions ? await instructionsPerConnect(run) : await allocationsPerConnect(run)
    console.log(`${arm.cluster ? 'cluster' : 'embedded'}, ${clients} connects, ${inFlight} in flight, run ${run}: ${perConnect}`)
  }
} finally {
  if (values.keep === undefined) rmSync(dir, { recursive: true, force: true })
}

/** Runs `before(pid)` and `after(pid)` around `clients` connects to a fresh node, after the warm-up; `extra.arm` overrides the arm, `extra.nodeArgs` adds server flags. */
async function connects (extra, { before, after }) {
  const redis = arm.cluster ? await OwnRedis.start({ core: 1 }) : undefined
  try {
    const session = await Session.open({ ...arm, ...extra.arm }, { redisUrl: redis?.url, runId: `cost${process.pid}`, label: 'connect-cost', nodeArgs: extra.nodeArgs })
    try {
      await session.prepareTokens(warmup + clients)
      // Uncounted first: the connect path's code compiled and its pools and maps grown, as on a node that has run a while.
      if (warmup > 0) await session.connect(warmup, inFlight)
      const pid = session.servers[0].process.pid
      await before(pid)
      const connect = await session.connect(clients, inFlight)
      await sleep(SETTLE_MS)
      await after(pid)
      if (connect.failed > 0) throw new Error(`${connect.failed} connects failed: ${JSON.stringify(connect.failures)}`)
      return connect.opened
    } finally {
      await session.close()
    }
  } finally {
    await redis?.kill()
  }
}

async function instructionsPerConnect (run) {
  const out = join(dir, `callgrind-${run}.out`)
  // The node's executable, under callgrind; taskset and the shell exec it, so the pid is valgrind's.
  const runtime = join(dir, 'node-under-callgrind')
  writeFileSync(runtime, `#!/bin/sh\nexec valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file=${out} ${process.execPath} --expose-gc "$@"\n`)
  chmodSync(runtime, 0o755)
  const opened = await connects({ arm: { runtime } }, {
    before: async (pid) => { execFileSync('callgrind_control', ['-i', 'on', String(pid)], { stdio: 'ignore' }) },
    after: async (pid) => { execFileSync('callgrind_control', ['-i', 'off', String(pid)], { stdio: 'ignore' }) }
  })
  // `summary` counts from the start; `totals` what was collected while instrumentation was on.
  const total = Number(readFileSync(out, 'utf8').match(/^totals: (\d+)/m)?.[1] ?? NaN)
  return `${Math.round(total / opened).toLocaleString('en-US')} instructions per connect`
}

async function allocationsPerConnect (run) {
  const out = join(dir, `allocations-${run}.json`)
  const sampler = fileURLToPath(new URL('lib/allocation-sampler.js', import.meta.url))
  // Read by the sampler in the server, which inherits this process's environment.
  process.env.ALLOCATION_PROFILE = out
  // The second SIGUSR2 writes the profile; the node is stopped only once it is there.
  const opened = await connects({ nodeArgs: [`--import=${sampler}`] }, {
    before: async (pid) => { process.kill(pid, 'SIGUSR2'); await sleep(SETTLE_MS) },
    after: async (pid) => { process.kill(pid, 'SIGUSR2'); await waitForFile(out) }
  })
  const { total, byFunction } = allocationsByFunction(JSON.parse(readFileSync(out, 'utf8')))
  const top = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP_FUNCTIONS)
  return [
    `${Math.round(total / opened).toLocaleString('en-US')} bytes allocated per connect; the functions allocating most (bytes per connect):`,
    ...top.map(([name, bytes]) => `  ${String(Math.round(bytes / opened)).padStart(7)}  ${name}`)
  ].join('\n')
}

/** Self bytes of a sampling heap profile, in all and by function (name, file past node_modules/ or dist/, line). */
function allocationsByFunction (profile) {
  const byFunction = new Map()
  let total = 0
  const visit = (node) => {
    const { functionName, url, lineNumber } = node.callFrame
    const name = `${functionName || '(anonymous)'} ${url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/')}:${lineNumber + 1}`
    total += node.selfSize
    byFunction.set(name, (byFunction.get(name) ?? 0) + node.selfSize)
    for (const child of node.children) visit(child)
  }
  visit(profile.head)
  return { total, byFunction }
}

async function waitForFile (path) {
  for (let waited = 0; waited < 10_000; waited += 100) {
    try {
      readFileSync(path)
      return
    } catch {
      await sleep(100)
    }
  }
  throw new Error(`no allocation profile at ${path}`)
}
