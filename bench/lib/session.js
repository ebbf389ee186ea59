// One arm's processes for one measurement: its server node(s) pinned to
// core 0, a fresh load generator pinned to core 1, and sums over nodes.
import { fileURLToPath } from 'node:url'
import { Child } from './children.js'

const benchDir = fileURLToPath(new URL('..', import.meta.url))
let sessions = 0
// The load generator is measuring apparatus: its own pauses show up as the measured server's latency. With V8's
// allocation-site pretenuring on, whether it moves the WebSocket receive path's short-lived buffers straight to the
// old generation depends on what the arm's earlier steps did; when it does, the old generation fills every ~2 s and
// each full collection stalls all 2,000 clients for 75-110 ms, which alone set the paced p99 (bench/README.md, Profiling).
const LOADGEN_NODE_ARGS = ['--no-allocation-site-pretenuring']

export class Session {
  /**
   * Starts the arm's nodes and a load generator; resolves once all are
   * listening. `history`: plugin arms run with the `history` option on;
   * `handshakesPerSecond`: with `limits.handshakesPerSecond` (0: none);
   * `droppable`: the nodes track their TCP connections, so that `drop` can
   * destroy them all (the reconnect storm; elsewhere the tracking would add
   * its bytes to the idle heap the memory scenario measures);
   * `fileLimit`: every process's open-file limit raised to it (the scale
   * scenario's 15,000 sockets); `nodeArgs`: more flags for the Node servers
   * (bench/connect-cost.js loads its allocation sampler so). An arm with
   * `runtime` (Bun) runs its server script under that executable.
   */
  static async open (arm, { redisUrl, runId, profileDir, label, history = false, handshakesPerSecond = 0, droppable = false, fileLimit, nodeArgs: extraNodeArgs = [] }) {
    const keyPrefix = `bench:${runId}:${++sessions}:`
    const servers = []
    for (let node = 0; node < arm.nodes; node++) {
      const args = arm.cluster ? ['--redis', redisUrl, '--nodes', String(arm.nodes), '--node', String(node), '--key-prefix', keyPrefix] : []
      if (history) args.push('--history')
      if (handshakesPerSecond > 0) args.push('--handshakes-per-second', String(handshakesPerSecond))
      if (droppable) args.push('--droppable')
      // --cpu-prof writes the profile when the server exits (it exits on `shutdown`).
      const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${label}-node${node}.cpuprofile`]
      nodeArgs.push(...flagsFromEnv('BENCH_SERVER_NODE_ARGS'), ...extraNodeArgs)
      servers.push(new Child(benchDir + arm.script, args, { core: 0, name: `${arm.id}#${node}`, nodeArgs: arm.runtime === undefined ? nodeArgs : [], runtime: arm.runtime, fileLimit }))
    }
    const loadgenArgs = [...LOADGEN_NODE_ARGS, ...flagsFromEnv('BENCH_LOADGEN_NODE_ARGS')]
    const loadgen = new Child(benchDir + 'loadgen.js', [], { nodeArgs: loadgenArgs, core: 1, name: `loadgen(${arm.id}${history ? ', history' : ''})`, fileLimit })
    const session = new Session(arm, servers, loadgen)
    try {
      const infos = await Promise.all(servers.map((server) => server.ready()))
      await loadgen.ready()
      session.urls = infos.map((info) => `ws://127.0.0.1:${info.port}${info.path}`)
    } catch (error) {
      await session.close()
      throw error
    }
    return session
  }

  constructor (arm, servers, loadgen) {
    this.arm = arm
    this.servers = servers
    this.publisher = servers[0]
    this.loadgen = loadgen
    this.urls = []
    this.tokens = []
    this.clients = 0
  }

  /** Plugin arms: issues tokens for users 0..count-1 ahead of time (not part of any measurement). */
  async prepareTokens (count) {
    if (!this.arm.tokens || this.tokens.length >= count) return
    const more = await this.publisher.request('tokens', { from: this.tokens.length, count: count - this.tokens.length }, 120_000)
    this.tokens.push(...more)
  }

  /** Opens `count` more clients, spread over the nodes, `concurrency` handshakes at a time (`sourceAddresses`: see the load generator's `connect`). */
  async connect (count, concurrency, { sourceAddresses = 0 } = {}) {
    await this.prepareTokens(this.clients + count)
    const tokens = this.arm.tokens ? this.tokens.slice(this.clients, this.clients + count) : undefined
    const result = await this.loadgen.request('connect', { urls: this.urls, count, concurrency, kind: this.arm.client, tokens, sourceAddresses }, 180_000)
    this.clients += result.opened
    return result
  }

  /** heapUsed/rss/… after GC, summed over nodes. */
  async mem () {
    return sum(await Promise.all(this.servers.map((server) => server.request('mem'))))
  }

  /** CPU µs used so far, summed over nodes. */
  async cpu () {
    return (await this.cpuSplit()).total
  }

  /** `{ user, system, total }` CPU µs used so far, summed over nodes (system: the kernel's time for the process, its syscalls). */
  async cpuSplit () {
    return sum(await Promise.all(this.servers.map((server) => server.request('cpu'))))
  }

  async each (cmd, args) {
    return await Promise.all(this.servers.map((server) => server.request(cmd, args)))
  }

  async close () {
    await Promise.all([...this.servers.map((server) => server.stop()), this.loadgen.stop()])
  }
}

function sum (objects) {
  const total = {}
  for (const object of objects) {
    for (const [key, value] of Object.entries(object)) total[key] = (total[key] ?? 0) + value
  }
  return total
}

/**
 * V8 flags from an environment variable (an experiment, see bench/README.md,
 * Profiling): BENCH_SERVER_NODE_ARGS for the Node servers, BENCH_LOADGEN_NODE_ARGS
 * for the load generator; for flags such as --trace-gc, which NODE_OPTIONS
 * does not accept (and would hand to every process).
 */
function flagsFromEnv (name) {
  return (process.env[name] ?? '').split(' ').filter((arg) => arg !== '')
}
