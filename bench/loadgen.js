// The load generator: `ws` clients kept as cheap as possible
// (skipUTF8Validation, no compression, no JSON.parse: only the timestamp is
// read out of each message). Driven by the orchestrator over IPC.
import WebSocket from 'ws'
import { serve, announce, sleep } from './lib/rpc.js'
import { latencySummary } from './lib/stats.js'
import { STAMP_MARK } from './lib/payload.js'
import { recoveringClients } from './lib/recovering-clients.js'
import { stormClients } from './lib/storm-clients.js'
import { pool, waitForProgress } from './lib/pool.js'
import { httpPublish } from './lib/http-publisher.js'

const MARK = Buffer.from(STAMP_MARK)
// Where the stamp sits in a plugin message on `settings` (the broadcast); a targeted one on `notification.events` has it further on.
const SETTINGS_MARK_AT = '{"event":"bench","channel":"settings","data":{'.length
// `,"seq":` between the stamp's closing quote and the seq digits.
const SEQ_OFFSET = ',"seq":'.length + 1
const clients = []
const failures = {}
let unexpectedCloses = 0

// The current measurement: counts and latencies (ns) of bench messages.
let received = 0
let expected = 0
let local = new Float64Array(0)
let remote = new Float64Array(0)
let localCount = 0
let remoteCount = 0
let lastNs = 0
// With `record({ distinct: true })` (scenario 9): how often each seq arrived, to count events received twice.
let seen = null
let duplicates = 0
let unknownSeq = 0
// With `record({ channels: true })` (the scale scenario): the two latency sets are broadcast and targeted, not node 0 and the others.
let byChannel = false

function onBenchMessage (data, at, node) {
  const now = Number(process.hrtime.bigint())
  let stamp = 0
  let index = at + MARK.length
  for (; ; index++) {
    const digit = data[index]
    if (digit === 34) break
    stamp = stamp * 10 + (digit - 48)
  }
  if (seen !== null) countSeq(data, index + SEQ_OFFSET)
  received++
  lastNs = now
  if (byChannel ? at === SETTINGS_MARK_AT : node === 0) {
    if (localCount < local.length) local[localCount++] = now - stamp
  } else if (remoteCount < remote.length) {
    remote[remoteCount++] = now - stamp
  }
}

/** Scenario 9: each seq once (the publishers number every event of a measurement 0..count-1). */
function countSeq (data, from) {
  let seq = 0
  for (let index = from; data[index] >= 48 && data[index] <= 57; index++) seq = seq * 10 + (data[index] - 48)
  if (seq >= seen.length) unknownSeq++
  else if (seen[seq]++ > 0) duplicates++
}

/**
 * Opens client `index` and resolves once it can receive: on `open` for bare
 * ws, on the `connected` event for the plugin, on the CONNECT ack for Socket.IO.
 */
function open (url, kind, node, user, localAddress) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 15_000, localAddress })
    const client = { ws, node, paused: false, ready: false, onControl: null }
    const settle = (error) => {
      if (client.ready) return
      if (error === undefined) {
        client.ready = true
        clients.push(client)
        resolve()
      } else {
        ws.terminate()
        reject(error)
      }
    }
    ws.on('message', (data) => {
      const at = data.indexOf(MARK)
      if (at !== -1 && at < 64) return onBenchMessage(data, at, node)
      if (kind === 'sio') {
        if (data[0] === 48) ws.send(`40{"user":"${user}"}`) // engine.io OPEN: join namespace "/"
        else if (data[0] === 52 && data[1] === 48) settle() // "40{…}": namespace joined
        else if (data.length === 1 && data[0] === 50) ws.send('3') // engine.io PING
        return
      }
      if (!client.ready && kind === 'plugin') {
        if (data.includes('"event":"connected"')) settle()
        else settle(new Error(`unexpected first message ${String(data).slice(0, 80)}`))
        return
      }
      client.onControl?.(data)
    })
    ws.on('open', () => { if (kind === 'ws') settle() })
    ws.on('unexpected-response', (request, response) => {
      settle(new Error(`HTTP ${response.statusCode}`))
      response.resume()
    })
    ws.on('error', (error) => settle(error))
    ws.on('close', () => {
      if (client.ready && !client.closing) unexpectedCloses++
      settle(new Error('closed before ready'))
    })
  })
}

serve({
  // The recovery scenario's clients (rc.connect, rc.expect, rc.drop, rc.reconnect, rc.wait): a set of their own.
  ...recoveringClients,
  // The reconnect storm's clients (storm.connect, storm.arm, storm.wait, storm.close): a set of their own too.
  ...stormClients,

  /**
   * Opens `count` more clients with at most `concurrency` handshakes in
   * flight; client i uses urls[i % urls.length]. `sourceAddresses` > 0:
   * client i connects from 127.0.0.(2 + i % sourceAddresses), so that many
   * sockets do not exhaust the ephemeral ports of one source address.
   */
  async connect ({ urls, count, concurrency, kind, tokens, timeoutMs = 120_000, sourceAddresses = 0 }) {
    const first = clients.length
    const started = performance.now()
    const offsets = Array.from({ length: count }, (_, offset) => offset)
    const result = await pool(offsets, concurrency, async (offset) => {
      const index = first + offset
      const node = index % urls.length
      let url = urls[node]
      if (tokens !== undefined) url += `?token=${tokens[offset]}`
      const localAddress = sourceAddresses > 0 ? `127.0.0.${2 + (index % sourceAddresses)}` : undefined
      await open(url, kind, node, `user-${index}`, localAddress)
    }, started + timeoutMs)
    // `failures` counts over every connect of the run.
    for (const [message, times] of Object.entries(result.failures)) failures[message] = (failures[message] ?? 0) + times
    const failed = result.failed
    const ms = performance.now() - started
    return { opened: clients.length - first, failed, ms, perSecond: (clients.length - first) / (ms / 1000), failures }
  },

  /** Plugin clients subscribe to `channel` and wait for every `subscribed`. */
  async subscribe ({ channel, timeoutMs = 30_000 }) {
    const message = JSON.stringify({ event: 'subscribe', channel })
    let acked = 0
    await Promise.race([
      Promise.all(clients.map((client) => new Promise((resolve) => {
        client.onControl = (data) => {
          if (data.includes('"event":"subscribed"')) {
            client.onControl = null
            acked++
            resolve()
          }
        }
        client.ws.send(message)
      }))),
      sleep(timeoutMs)
    ])
    return { acked, clients: clients.length }
  },

  /** Stops reading on the first `count` clients: their bytes pile up in the kernel, then in the server. */
  pause ({ count }) {
    for (const client of clients.slice(0, count)) {
      client.paused = true
      client.ws._socket.pause()
    }
    return { paused: Math.min(count, clients.length) }
  },

  /** Scenario 9: publishes over the server API from this process (bench/lib/http-publisher.js). */
  httpPublish: async (args) => await httpPublish(args),

  /**
   * Starts a measurement that expects `count` bench messages; `distinct`: each
   * seq 0..count-1 is expected once; `channels`: `wait` answers `local` for
   * the messages on `settings` and `remote` for the others (the scale scenario).
   */
  record ({ count, distinct = false, channels = false }) {
    seen = distinct ? new Uint8Array(count) : null
    byChannel = channels
    duplicates = 0
    unknownSeq = 0
    received = 0
    expected = count
    local = new Float64Array(count)
    remote = new Float64Array(count)
    localCount = 0
    remoteCount = 0
    lastNs = 0
    unexpectedCloses = 0
    return { clients: clients.length }
  },

  /**
   * Waits until every expected message arrived, or nothing arrived for
   * `idleMs`, or `timeoutMs` passed; then summarizes what arrived.
   */
  async wait ({ timeoutMs = 60_000, idleMs = 3000 }) {
    await waitForProgress({ done: () => received >= expected, progress: () => received, timeoutMs, idleMs, pollMs: 20 })
    const all = new Float64Array(localCount + remoteCount)
    all.set(local.subarray(0, localCount))
    all.set(remote.subarray(0, remoteCount), localCount)
    return {
      received,
      expected,
      lastNs: String(lastNs),
      latency: latencySummary(all),
      local: latencySummary(local.subarray(0, localCount)),
      remote: latencySummary(remote.subarray(0, remoteCount)),
      // With `distinct`: events received twice, seqs outside 0..count-1, and seqs never received.
      ...(seen === null ? {} : { duplicates, unknownSeq, missing: seen.reduce((sum, times) => sum + (times === 0 ? 1 : 0), 0) }),
      unexpectedCloses
    }
  },

  cpu () {
    const { user, system } = process.cpuUsage()
    return { total: user + system }
  },

  /** Closes every client (terminate: no close handshake to wait for). */
  async close () {
    for (const client of clients) {
      client.closing = true
      client.ws.terminate()
    }
    clients.length = 0
    return null
  },

  shutdown () {
    setImmediate(() => process.exit(0))
  }
})
announce({})
