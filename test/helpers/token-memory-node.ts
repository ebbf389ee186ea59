// A gateway in a process of its own, whose heap a test can search for a
// token (test/hub/token-memory.test.ts): the test process would find its own
// copies. LAYOUT picks the token store: `memory`, `redis` (the default
// layout) or `custom-key` (a `tokens.keyFor` of its own); KEY_PREFIX the
// Redis prefix. Prints `{ port, token }` once listening, with a token issued
// for user `u-heap`; then, for each line `search` on stdin, prints whether the
// token occurs in a heap snapshot of this process (`found true|false`).
import { createInterface } from 'node:readline'
import { getHeapSnapshot } from 'node:v8'
import Fastify from 'fastify'
import realtime, { type RealtimeOptions } from '../../lib/index.js'
import { hashToken } from '../../lib/tokens/token-store.js'
import { REDIS_URL } from './app.js'

const keyPrefix = process.env.KEY_PREFIX as string
const layouts: Record<string, RealtimeOptions> = {
  memory: {},
  redis: { redis: REDIS_URL, keyPrefix },
  'custom-key': { redis: REDIS_URL, keyPrefix, tokens: { keyFor: (token) => `${keyPrefix}custom:${hashToken(token).slice(0, 16)}` } }
}
const options = layouts[process.env.LAYOUT as string] as RealtimeOptions
const app = Fastify()
await app.register(realtime, { ...options, tokens: { ...options.tokens, recheckIntervalMs: 200 } })
await app.listen({ host: '127.0.0.1', port: 0 })

// Masked: a Buffer's bytes live outside the JavaScript heap, and masked they match nothing in it.
const MASK = 0x5a
const masked = await (async () => {
  const token = await app.realtime.tokens.issue('u-heap', { ttlSeconds: 600 })
  process.stdout.write(JSON.stringify({ port: (app.server.address() as { port: number }).port, token }) + '\n')
  return Buffer.from(token).map((byte) => byte ^ MASK)
})()

/** Whether the token occurs in a heap snapshot (taking one collects garbage first). */
async function inHeap (): Promise<boolean> {
  const needle = Buffer.from(masked.map((byte) => byte ^ MASK))
  let tail = Buffer.alloc(0)
  let found = false
  for await (const chunk of getHeapSnapshot()) {
    const window = Buffer.concat([tail, chunk as Buffer])
    if (window.includes(needle)) found = true
    tail = window.subarray(Math.max(0, window.length - needle.length))
  }
  needle.fill(0)
  return found
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'search') continue
  // V8 keeps the subject of the last regular expression run (RegExp.input) until the next one
  // runs: in a serving node that is the next request's, here it could be the handshake URL.
  /^search$/.test(line)
  process.stdout.write(`found ${String(await inHeap())}\n`)
}
await app.close()
