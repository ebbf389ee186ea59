// One gateway node of a stress run, in a process of its own so the
// orchestrator can SIGKILL it (a crash, no cleanup). Options as JSON in argv[2]:
// { redis | redisClient, keyPrefix, nodeId, heartbeatMs, cluster?, tokens?, history?, limits? }. Driven over IPC
// (bench/lib/rpc.js); exits when the orchestrator goes away.
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import realtime from 'fastify-realtime'
import { serve, announce, sleep } from '../bench/lib/rpc.js'
import { CLUSTER_CLIENT_OPTIONS, sentinelClientOptions } from '../test/helpers/recommended-clients.js'

const config = JSON.parse(process.argv[2])
// Before anything that waits on Redis: a node still starting when the orchestrator dies (its Redis killed with it) must not wait forever.
process.on('disconnect', () => process.exit(0))
// Anything logged at error level or above, and anything uncaught: the scenarios assert there is none.
const errors = []
const record = (what) => { if (errors.length < 20) errors.push(String(what).slice(0, 500)) }
// Warnings by message, counted (a failover logs many): figures, not failures.
const warnings = {}
process.on('uncaughtException', (error) => record(`uncaughtException: ${error?.stack ?? error}`))
process.on('unhandledRejection', (error) => record(`unhandledRejection: ${error?.stack ?? error}`))
const logStream = new Writable({
  write (chunk, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue
      try {
        const entry = JSON.parse(line)
        if (entry.level >= 50) record(line)
        else if (entry.level === 40) warnings[entry.msg] = (warnings[entry.msg] ?? 0) + 1
      } catch {}
    }
    done()
  }
})

/**
 * `redisClient`: a client the node borrows, as README's Scaling out section
 * configures one for Sentinel (`{ sentinels, name }`) or Redis Cluster
 * (`{ cluster: startupNodes }`); else the plugin makes its own from `redis`.
 */
function borrowedClient (spec) {
  if (spec === undefined) return undefined
  const client = spec.cluster !== undefined
    ? new Cluster(spec.cluster, { ...CLUSTER_CLIENT_OPTIONS })
    : new Redis(sentinelClientOptions(spec))
  // Its errors during a failover are expected; the plugin reports what matters through its own logger.
  client.on('error', () => {})
  return client
}
const borrowed = borrowedClient(config.redisClient)
if (borrowed !== undefined) await new Promise((resolve) => borrowed.once('ready', resolve))

const app = Fastify({ logger: { level: 'warn', stream: logStream } })
await app.register(realtime, {
  redis: borrowed ?? config.redis,
  keyPrefix: config.keyPrefix,
  cluster: { nodeId: config.nodeId, ...config.cluster },
  heartbeat: { intervalMs: config.heartbeatMs },
  // Every client comes from 127.0.0.1: the per-address cap would measure nothing but itself.
  limits: { maxConnectionsPerIp: 0, ...config.limits },
  ...(config.tokens === undefined ? {} : { tokens: config.tokens }),
  ...(config.history === undefined ? {} : { history: config.history })
})
// Every TCP connection, so `drop` can cut them all as a network failure would.
const tcp = new Set()
app.server.on('connection', (socket) => {
  tcp.add(socket)
  socket.once('close', () => tcp.delete(socket))
})
await app.listen({ host: '127.0.0.1', port: 0 })

serve({
  async tokens ({ users, ttlSeconds = 3600 }) {
    const tokens = []
    for (let start = 0; start < users.length; start += 200) {
      tokens.push(...await Promise.all(users.slice(start, start + 200).map((user) => app.realtime.tokens.issue(user, { ttlSeconds }))))
    }
    return tokens
  },
  /** One publish; resolves `{ id }` or `{ error: code }` (a refusal is an answer, not a failure). */
  async publish ({ channel, event = 'stress', data, userId }) {
    try {
      const result = await app.realtime.publish(channel, event, data, userId === undefined ? {} : { userId })
      return { id: result?.id ?? null }
    } catch (error) {
      return { error: error.code ?? error.message }
    }
  },
  /**
   * Publishes `{ seq }` (from `from` on) to `users` round-robin at `rate` per second for
   * `seconds`, and answers which seqs each user's publish was accepted for and
   * which were refused (by error code).
   */
  async flow ({ channel, users, rate, seconds, from = 0 }) {
    const accepted = {}
    const refused = {}
    const pending = []
    const total = Math.round(rate * seconds)
    const start = performance.now()
    for (let seq = from; seq < from + total; seq++) {
      const due = start + ((seq - from) * 1000) / rate
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      const userId = users[seq % users.length]
      pending.push(app.realtime.publish(channel, 'stress', { seq }, { userId }).then(
        (result) => { (accepted[userId] ??= []).push([seq, result?.id ?? null]) },
        (error) => { const code = error.code ?? 'ERROR'; (refused[code] ??= []).push([userId, seq]) }
      ))
    }
    await Promise.all(pending)
    return { accepted, refused, total }
  },
  /** Destroys every TCP connection at once (what a network blip does to all of them): no close frame, the clients see 1006. */
  drop () {
    const count = tcp.size
    for (const socket of tcp) socket.destroy()
    return { count }
  },
  async mem () {
    // Twice, with a turn in between, so weak callbacks and finalizers settle.
    global.gc()
    await sleep(20)
    global.gc()
    return process.memoryUsage()
  },
  resources: () => process.getActiveResourcesInfo(),
  sockets: () => app.realtime.connections().length,
  connections: () => app.realtime.connections().map((connection) => ({ user: connection.user_id, subscriptions: connection.subscriptions })),
  stats: () => app.realtime.stats(),
  errors: () => errors,
  warnings: () => warnings,
  /** The borrowed client's view of Redis: the port of the server it talks to (Sentinel), or the masters it knows (Cluster). */
  async redisServer () {
    if (borrowed instanceof Cluster) return { masters: borrowed.nodes('master').map((node) => node.options.port).sort() }
    // Reconnecting (the failover): no server to name yet.
    const info = await borrowed.info('server').catch(() => '')
    return { port: Number(/tcp_port:(\d+)/.exec(info)?.[1] ?? NaN) || null }
  },
  async shutdown () {
    for (const socket of tcp) socket.destroy()
    await app.close()
    borrowed?.disconnect()
    setImmediate(() => process.exit(0))
  }
})
announce({ port: app.server.address().port })
