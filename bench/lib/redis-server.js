// A redis-server of the run's own on a free loopback port (the machine's
// shared Redis is never stopped or flushed), for the bench's history
// scenarios (pinned to the load generator's core, core 1, so its INFO cpu
// counts only this measurement's commands and the server nodes keep core 0 to
// themselves) and for every stress scenario (killed, restarted and frozen by
// the scenarios). Tracked like the other children: killAll ends it.
import { createServer } from 'node:net'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { spawnPinned } from './children.js'
import { sleep } from './rpc.js'

let available
let deathSignal

/** `setpriv --pdeathsig KILL` where it exists: the kernel kills redis-server if the orchestrator dies, even by SIGKILL. */
function withDeathSignal (command, args) {
  if (deathSignal === undefined) {
    try {
      execFileSync('setpriv', ['--version'], { stdio: 'ignore' })
      deathSignal = true
    } catch {
      deathSignal = false
    }
  }
  return deathSignal ? ['setpriv', ['--pdeathsig', 'KILL', command, ...args]] : [command, args]
}

/**
 * Where there is no setpriv: a shell whose stdin is a pipe from this process;
 * if the orchestrator dies without its exit handlers (SIGKILL), the pipe
 * closes and the shell kills `server`. Ends with the server.
 */
function watchdog (server) {
  const guard = spawn('sh', ['-c', 'cat > /dev/null; kill -CONT "$1"; kill -9 "$1"', 'sh', String(server.pid)], { stdio: ['pipe', 'ignore', 'ignore'] })
  guard.on('error', () => {})
  guard.stdin.on('error', () => {})
  server.once('exit', () => guard.kill('SIGKILL'))
}

/**
 * Starts `redis-server <args>` (or `redis-server <config> --sentinel`) as a
 * tracked child (killAll ends it) that dies with the orchestrator even after a
 * SIGKILL: under setpriv --pdeathsig, or else with a watchdog.
 */
export function spawnRedis (args, { core } = {}) {
  const server = spawnPinned(...withDeathSignal('redis-server', args), { core })
  if (!deathSignal) watchdog(server)
  return server
}

/** Whether `redis-server` can be started here (checked once). */
export function canStartRedis () {
  if (available === undefined) {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
      available = true
    } catch {
      available = false
    }
  }
  return available
}

export class OwnRedis {
  /**
   * Starts one and resolves once it answers PING (a port taken meanwhile:
   * tries another). `core`: pinned there (when taskset works). Without
   * `persist`, nothing is kept on disk (every restart comes back empty);
   * with it, every write is fsynced to an append-only file in a temporary
   * directory, so a SIGKILLed server comes back with its data.
   */
  static async start ({ core, persist = false } = {}) {
    let lastError
    for (let attempt = 0; attempt < 3; attempt++) {
      const redis = new OwnRedis(await freePort(), { core, dir: persist ? mkdtempSync(join(tmpdir(), 'own-redis-')) : undefined })
      try {
        await redis.restart()
        return redis
      } catch (error) {
        lastError = error
        await redis.destroy()
      }
    }
    throw lastError
  }

  #process
  #exited
  #stderr = ''
  #core

  constructor (port, { core, dir }) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.dir = dir
    this.#core = core
  }

  /** (Re)starts on the same port, with its data unless `empty`, and resolves once it answers PING. */
  async restart ({ empty = false } = {}) {
    if (empty && this.dir !== undefined) rmSync(join(this.dir, 'appendonlydir'), { recursive: true, force: true })
    const persistence = this.dir === undefined
      ? ['--appendonly', 'no']
      : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir]
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--loglevel', 'warning']
    const server = spawnRedis(args, { core: this.#core })
    this.#process = server
    this.#stderr = ''
    server.stderr.on('data', (chunk) => { this.#stderr = (this.#stderr + chunk).slice(-2000) })
    // 'error' without 'exit' when it could not be spawned at all.
    this.#exited = new Promise((resolve) => {
      server.once('exit', resolve)
      server.once('error', (error) => {
        this.#stderr += String(error)
        resolve()
      })
    })
    await this.#ready()
  }

  async #ready (timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.#process.exitCode !== null || this.#process.pid === undefined) throw new Error(`redis-server exited (${this.#process.exitCode}): ${this.#stderr.trim()}`)
      const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null })
      client.on('error', () => {}) // refused until it listens (LOADING while it reads its file): the loop tries again
      try {
        await client.connect()
        if (await client.ping() === 'PONG') return
      } catch {
      } finally {
        client.disconnect()
      }
      await sleep(50)
    }
    throw new Error(`redis-server on port ${this.port} did not answer within ${timeoutMs} ms`)
  }

  /** SIGSTOP: it keeps its connections and answers nothing. */
  freeze () { this.#process?.kill('SIGSTOP') }
  thaw () { this.#process?.kill('SIGCONT') }

  /** SIGKILL (frozen or not); resolves once it exited. */
  async kill () {
    const server = this.#process
    if (server === undefined) return
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGCONT')
      server.kill('SIGKILL')
    }
    await this.#exited
  }

  /** Kills it and removes its files. */
  async destroy () {
    await this.kill()
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
  }

  /**
   * used_cpu_sys + used_cpu_user so far, in seconds; the commands it has
   * processed (a script's own calls included); and the calls of the commands
   * a connect's batched requests go out as (MGET, EVALSHA, EVAL, SUBSCRIBE).
   */
  async usage () {
    return await this.#ask(async (client) => ({
      cpuSeconds: await redisCpuSeconds(client),
      commands: await redisCommandsProcessed(client),
      batched: await commandCalls(client, BATCHED_COMMANDS)
    }))
  }

  /** used_cpu_sys + used_cpu_user so far, in seconds (one INFO, as the measured figures have always cost). */
  async cpuSeconds () {
    return await this.#ask(redisCpuSeconds)
  }

  async #ask (question) {
    const client = new Redis(this.url, { maxRetriesPerRequest: 1 })
    try {
      return await question(client)
    } finally {
      client.disconnect()
    }
  }
}

const BATCHED_COMMANDS = ['mget', 'evalsha', 'eval', 'subscribe']

/** How many times the Redis server `client` talks to ran these commands so far (`INFO commandstats`). */
async function commandCalls (client, names) {
  const info = await client.info('commandstats')
  let calls = 0
  for (const [, name, count] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (names.includes(name)) calls += Number(count)
  return calls
}

/** total_commands_processed of the Redis server `client` talks to (a script's own calls included). */
export async function redisCommandsProcessed (client) {
  const info = await client.info('stats')
  return Number(info.match(/^total_commands_processed:(\d+)/m)?.[1] ?? NaN)
}

/** used_cpu_sys + used_cpu_user of the Redis server `client` talks to. */
export async function redisCpuSeconds (client) {
  const info = await client.info('cpu')
  const field = (name) => Number(info.match(new RegExp(`^${name}:([\\d.]+)`, 'm'))?.[1] ?? NaN)
  return field('used_cpu_sys') + field('used_cpu_user')
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}
