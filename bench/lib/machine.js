// What the report says about where it ran.
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import os from 'node:os'

export function describeMachine () {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown'
  try {
    cpuModel = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpuModel
  } catch {}
  let nproc = String(os.availableParallelism())
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim()
  } catch {}
  return {
    nproc,
    cpuModel,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    memoryGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    versions: {
      ws: version('ws'),
      fastify: version('fastify'),
      'socket.io': version('socket.io'),
      '@socket.io/redis-adapter': version('@socket.io/redis-adapter'),
      'fastify-realtime': version('.')
    }
  }
}

/** The installed version of a package (`.` for this one). */
function version (name) {
  const path = name === '.' ? '../../package.json' : `../../node_modules/${name}/package.json`
  try {
    return JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')).version
  } catch {
    return 'n/a'
  }
}

/** The commit measured, and whether lib/ had uncommitted changes when dist/ was built. */
export function describeCheckout () {
  const git = (...args) => execFileSync('git', args, { encoding: 'utf8', cwd: new URL('../..', import.meta.url) }).trim()
  try {
    const commit = git('rev-parse', '--short', 'HEAD')
    const dirty = git('status', '--porcelain', '--', 'lib').length > 0
    return `${commit}${dirty ? ' + uncommitted changes in lib/' : ''}`
  } catch {
    return 'unknown (not a git checkout)'
  }
}

const TICKS_PER_SECOND = 100 // USER_HZ; 100 on Linux

/**
 * CPU ticks used by the whole machine and by this process tree (itself plus
 * its exited children): the difference between two snapshots is what other
 * work took from the cores while the benchmark ran. null off Linux.
 */
export function cpuSnapshot () {
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    const own = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ').map(Number)
    return { machineBusy: user + nice + system + irq + softirq + steal, machineIdle: idle + iowait, own: own[11] + own[12] + own[13] + own[14] }
  } catch {
    return null
  }
}

/** Share of the machine's CPU time, between two snapshots, used by processes other than this run. */
export function otherWork (start, end) {
  if (start === null || end === null) return null
  const total = (end.machineBusy - start.machineBusy) + (end.machineIdle - start.machineIdle)
  const others = (end.machineBusy - start.machineBusy) - (end.own - start.own)
  return { share: Math.max(0, others) / total, cpuSeconds: Math.max(0, others) / TICKS_PER_SECOND }
}

/** Waits (up to `maxMs`) until the machine has been nearly idle for a second; returns the last busy share. */
export async function waitForQuiet (maxMs, threshold = 0.15) {
  const deadline = Date.now() + maxMs
  let busy = 1
  do {
    const before = cpuSnapshot()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const after = cpuSnapshot()
    if (before === null || after === null) return null
    const total = (after.machineBusy - before.machineBusy) + (after.machineIdle - before.machineIdle)
    busy = (after.machineBusy - before.machineBusy) / Math.max(1, total)
  } while (busy > threshold && Date.now() < deadline)
  return busy
}
