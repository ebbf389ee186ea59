// One gateway node of a stress run, in a process of its own so the
// orchestrator can SIGKILL it (a crash, no cleanup). Options as JSON in argv[2]:
// { redis, keyPrefix, nodeId, heartbeatMs, cluster?, tokens?, history?, limits? }. Driven over IPC
// (bench/lib/rpc.js); exits when the orchestrator goes away.
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import realtime from 'fastify-realtime'
import { serve, announce, sleep } from '../bench/lib/rpc.js'

const config = JSON.parse(process.argv[2])
// Anything logged at error level or above, and anything uncaught: the scenarios assert there is none.
const errors = []
const record = (what) => { if (errors.length < 20) errors.push(String(what).slice(0, 500)) }
process.on('uncaughtException', (error) => record(`uncaughtException: ${error?.stack ?? error}`))
process.on('unhandledRejection', (error) => record(`unhandledRejection: ${error?.stack ?? error}`))
const logStream = new Writable({
  write (chunk, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue
      try {
        if (JSON.parse(line).level >= 50) record(line)
      } catch {}
    }
    done()
  }
})

const app = Fastify({ logger: { level: 'error', stream: logStream } })
await app.register(realtime, {
  redis: config.redis,
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
  async shutdown () {
    for (const socket of tcp) socket.destroy()
    await app.close()
    setImmediate(() => process.exit(0))
  }
})
announce({ port: app.server.address().port })
