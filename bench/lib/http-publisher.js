// Scenario 9's publisher in the load generator: the server API's
// POST {prefix}/publish over keep-alive HTTP/1.1 (node:http, one connection
// per request in flight), as a worker of the backend would call it.
import http from 'node:http'
import { benchData, GATEWAY_ENVELOPE_BYTES } from './payload.js'

/** The operator token the bench's plugin servers accept on the server API (loopback only, a bench's own process). */
export const BENCH_ADMIN_TOKEN = 'bench-operator-token-0123456789abcdef'

const CHANNEL = 'notification.events'
// The same 128-byte WebSocket payload as the in-process publishTo (bench/servers/plugin.js).
const ENVELOPE_BYTES = GATEWAY_ENVELOPE_BYTES + CHANNEL.length - 'settings'.length

/**
 * Publishes seq 0..count-1 (seq i to user i % users) with `batch` events per
 * request (1: the single form, one object; more: the array form) and at
 * most `inFlight` requests unanswered, each lane sending its next request
 * once its last was answered. Every event is stamped when its request is
 * built, so the latency the clients measure runs from the publish call.
 * Resolves with the time until the last answer and what did not go through.
 */
export async function httpPublish ({ url, count, users, size, batch, inFlight }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight })
  const target = new URL(url)
  const started = performance.now()
  let next = 0
  let failed = 0
  const statuses = {}
  const item = (seq) => ({ channel: CHANNEL, event: 'bench', data: benchData(seq, size, ENVELOPE_BYTES), user_id: `user-${seq % users}` })
  const lane = async () => {
    while (next < count) {
      const first = next
      next = Math.min(count, next + batch)
      const items = []
      for (let seq = first; seq < next; seq++) items.push(item(seq))
      const { status, body } = await post(agent, target, JSON.stringify(batch === 1 ? items[0] : items))
      statuses[status] = (statuses[status] ?? 0) + 1
      if (status !== 200) failed += items.length
      else if (batch > 1) failed += JSON.parse(body).data.filter((result) => result.error !== undefined).length
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(inFlight, Math.ceil(count / batch)) }, lane))
  } finally {
    agent.destroy()
  }
  return { ms: performance.now() - started, published: count - failed, failed, statuses }
}

function post (agent, target, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(target, {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    }, (response) => {
      const chunks = []
      response.on('data', (chunk) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode, body: Buffer.concat(chunks).toString() }))
      response.on('error', reject)
    })
    request.setTimeout(30_000, () => request.destroy(new Error('HTTP publish timed out')))
    request.on('error', reject)
    request.end(body)
  })
}
