// The reconnect storm's clients in the load generator (scenario 10): plain `ws`
// sockets that, once their TCP connection is cut, come back the way the client
// SDK does (fastify-realtime/client: its own backoffDelay, BACKOFF and
// SLOW_BACKOFF, imported from the built package, so the bench follows the SDK
// if it changes), then subscribe to the channel again. A set of their own,
// apart from loadgen.js's clients, like recovering-clients.js.
import WebSocket from 'ws'
import { BACKOFF, SLOW_BACKOFF, backoffDelay } from 'fastify-realtime/client'
import { pool, waitForProgress } from './pool.js'
import { sleep } from './rpc.js'

// The SDK's default connectTimeoutMs: a handshake not answered by then is given up and retried.
const CONNECT_TIMEOUT_MS = 10_000
// Before the storm: a connect refused 503/429 (the admission-control variant's rate) is tried again this often at most.
const SETUP_ATTEMPTS = 20
let clients = []
let channel = ''
// The storm being measured: counts since `storm.arm`, and the first drop / last resubscribe (performance.now()).
let storm = null

function freshStorm () {
  return {
    droppedAt: null,
    lastBackAt: 0,
    back: 0,
    attempts: 0,
    // Refused handshakes by HTTP status (with or without Retry-After), e.g. { '503': 120, '503 without Retry-After': 0 }.
    refused: {},
    // Connects that failed without an HTTP answer (reset, timeout), by message.
    networkErrors: {},
    // Sockets that closed after `connected` but before `subscribed`, or that the server closed with a code.
    closedBeforeBack: 0,
    timers: new Set()
  }
}

/**
 * Opens client `client` and, once `connected` arrived, subscribes; resolves
 * on `subscribed`, rejects when the handshake or the socket fails first.
 * `onRefused(status, retryAfterMs)` / `onFailed(message)` / `onClosed()` say what happened.
 */
function open (client) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(client.url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: CONNECT_TIMEOUT_MS })
    client.ws = ws
    client.subscribed = false
    let settled = false
    const fail = (error) => {
      if (settled) return
      settled = true
      reject(error)
    }
    ws.on('message', (data) => {
      if (client.subscribed) return
      if (data.includes('"event":"connected"')) ws.send(JSON.stringify({ event: 'subscribe', channel }))
      else if (data.includes('"event":"subscribed"')) {
        client.subscribed = true
        settled = true
        resolve()
      }
    })
    ws.on('unexpected-response', (request, response) => {
      // The SDK learns the status from a GET of the same URL (a browser cannot see it); `ws` hands it over directly.
      const header = response.headers['retry-after']
      const error = new Error(`HTTP ${response.statusCode}`)
      error.status = response.statusCode
      error.retryAfterMs = header === undefined ? null : Number(header) * 1000
      response.resume()
      request.destroy()
      fail(error)
    })
    ws.on('error', (error) => fail(error))
    ws.on('close', (code) => {
      if (!settled) return fail(new Error(`closed before subscribed (${code})`))
      // Only a socket that was back ends in a drop; a refused or failed connect is retried by reconnect().
      if (client.subscribed && client.ws === ws) onDropped(client, code)
    })
  })
}

/** An open socket ended: in a storm, reconnect with the SDK's normal backoff, its attempt count reset by the last `connected`. */
function onDropped (client, code) {
  if (storm === null || client.closing) return
  storm.droppedAt ??= performance.now()
  client.subscribed = false
  client.attempt = 0
  if (code !== 1006) storm.closedBeforeBack++
  schedule(client, backoffDelay(client.attempt++, BACKOFF, Math.random))
}

function schedule (client, delayMs) {
  const timer = setTimeout(() => {
    storm?.timers.delete(timer)
    reconnect(client)
  }, delayMs)
  storm.timers.add(timer)
}

async function reconnect (client) {
  if (storm === null || client.closing) return
  const current = storm
  current.attempts++
  try {
    await open(client)
    if (storm !== current) return
    current.back++
    current.lastBackAt = performance.now()
  } catch (error) {
    if (storm !== current || client.closing) return
    let backoff = BACKOFF
    let retryAfterMs = 0
    if (error.status !== undefined) {
      const fine = (error.status === 503 || error.status === 429) && error.retryAfterMs !== null
      const key = fine ? String(error.status) : error.retryAfterMs === null ? `${error.status} without Retry-After` : String(error.status)
      current.refused[key] = (current.refused[key] ?? 0) + 1
      // As the SDK: 429 asks for the slow backoff; the delay is never shorter than Retry-After.
      if (error.status === 429) backoff = SLOW_BACKOFF
      retryAfterMs = error.retryAfterMs ?? 0
    } else if (error.message.startsWith('closed before subscribed')) {
      current.closedBeforeBack++
    } else {
      current.networkErrors[error.message] = (current.networkErrors[error.message] ?? 0) + 1
    }
    // Anything the SDK would stop on (403, 400) is still retried here, so the wait stays bounded; it is counted as a failure.
    schedule(client, Math.max(retryAfterMs, backoffDelay(client.attempt++, backoff, Math.random)))
  }
}

export const stormClients = {
  /** Opens one client per token (client i to urls[i % urls.length]), `concurrency` at a time, each subscribed to `channel`. */
  async 'storm.connect' ({ urls, tokens, channel: name, concurrency, timeoutMs = 180_000 }) {
    channel = name
    const started = performance.now()
    const fresh = tokens.map((token, index) => ({ url: `${urls[index % urls.length]}?token=${token}`, ws: null, subscribed: false, attempt: 0, closing: false }))
    let refused = 0
    const result = await pool(fresh, concurrency, async (client) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await open(client)
          break
        } catch (error) {
          // Over limits.handshakesPerSecond the node answers 503 + Retry-After: wait, as the SDK would, and try again.
          if (!(error.status === 503 || error.status === 429) || error.retryAfterMs === null || attempt + 1 >= SETUP_ATTEMPTS) throw error
          refused++
          await sleep(Math.max(error.retryAfterMs, backoffDelay(attempt, BACKOFF, Math.random)))
        }
      }
      clients.push(client)
    }, started + timeoutMs)
    return { opened: clients.length, failed: result.failed, failures: result.failures, refused, ms: performance.now() - started }
  },

  /** From now on a dropped socket comes back with backoff; the counts start at zero. */
  'storm.arm' () {
    storm = freshStorm()
    return { clients: clients.length }
  },

  /**
   * Waits until every client is subscribed again (or nothing came back for
   * `idleMs`, or `timeoutMs` passed), then says how long it took from the
   * first drop the clients saw to the last `subscribed`, and what was refused.
   */
  async 'storm.wait' ({ timeoutMs = 120_000, idleMs = 30_000 }) {
    const current = storm
    await waitForProgress({ done: () => current.back >= clients.length, progress: () => current.attempts, timeoutMs, idleMs, pollMs: 20 })
    for (const timer of current.timers) clearTimeout(timer)
    storm = null
    const back = clients.filter((client) => client.subscribed).length
    return {
      clients: clients.length,
      back,
      ms: current.droppedAt === null ? null : current.lastBackAt - current.droppedAt,
      attempts: current.attempts,
      refused: current.refused,
      networkErrors: current.networkErrors,
      closedBeforeBack: current.closedBeforeBack
    }
  },

  'storm.close' () {
    for (const client of clients) {
      client.closing = true
      client.ws?.terminate()
    }
    clients = []
    return null
  }
}
