// The Redis wire as README documents it for other languages, used by a
// second one: examples/python/publish_event.py (redis-py) publishes, and
// sockets on gateway nodes receive exactly what app.realtime.publish would
// have sent them. Runs where a python3 with redis-py is found (.ci/run
// installs Debian's python3-redis and sets REALTIME_REQUIRE_PYTHON=1, which
// turns a missing one into a failure); skipped with the reason elsewhere.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { APPEND_SCRIPT } from '../../lib/broker/redis-streams.js'
import { PUBLISH_ONCE_SCRIPT } from '../../lib/broker/redis-writer.js'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'
import { startNodes } from '../helpers/cluster.js'
import { PAYMENTS, SETTINGS, eventsOf, join } from '../helpers/history.js'

const run = promisify(execFile)
const EXAMPLE = fileURLToPath(new URL('../../examples/python/publish_event.py', import.meta.url))
// The history settings of the gateways below, passed to the example as it documents.
const HISTORY = { size: 256, ttlSeconds: 600, metaTtlSeconds: 2_592_000 }
const HISTORY_ARG = `${HISTORY.size},${HISTORY.ttlSeconds},${HISTORY.metaTtlSeconds}`

async function findPython (): Promise<string | undefined> {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    try {
      await run(candidate, ['-c', 'import redis'])
      return candidate
    } catch {}
  }
  return undefined
}

const python = await findPython()
const skip = python === undefined && process.env.REALTIME_REQUIRE_PYTHON !== '1'
  ? 'no python3 with redis-py here (Debian: apt-get install python3-redis)'
  : false

/** Runs the example with `args`; its output, trimmed. */
async function publishFromPython (args: string[]): Promise<string> {
  if (python === undefined) throw new Error('REALTIME_REQUIRE_PYTHON=1, and no python3 with redis-py was found')
  const { stdout } = await run(python, [EXAMPLE, '--redis', REDIS_URL, ...args])
  return stdout.trim()
}

function pythonConstant (name: string): string {
  const source = readFileSync(EXAMPLE, 'utf8')
  const match = new RegExp(`^${name} = """(.*?)"""`, 'ms').exec(source)
  if (match === null) throw new Error(`${name} not found in ${EXAMPLE}`)
  return match[1]
}

t.test('the example\'s scripts are the gateway\'s, byte for byte', async (t) => {
  t.equal(pythonConstant('APPEND'), APPEND_SCRIPT)
  t.equal(pythonConstant('PUBLISH_ONCE'), PUBLISH_ONCE_SCRIPT)
})

t.test('history off: an event published from Python reaches the user\'s socket on another node, as app.realtime.publish sends it', { skip }, async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix })
  const alice = await join(t, b, 'alice', [PAYMENTS])
  const bob = await join(t, a, 'bob', [])
  const data = { order_id: 'po_1', status: 'paid', note: 'caf\u00e9 "quoted" \u2713' }
  t.equal(await publishFromPython(['--key-prefix', keyPrefix, '--channel', PAYMENTS, '--user', 'alice', '--event', 'PAYMENT_ORDER_UPDATED', '--data', JSON.stringify(data)]), '')
  t.equal(await publishFromPython(['--key-prefix', keyPrefix, '--channel', SETTINGS, '--event', 'FEES', '--data', '{"rate":"1.50"}']), '')
  // The same event from the gateway, to compare the bytes.
  await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', data, { userId: 'alice' })
  const [fromPython, settings, fromGateway] = await eventsOf(alice.phone, 3)
  t.strictSame(fromPython, { event: 'PAYMENT_ORDER_UPDATED', channel: PAYMENTS, data })
  t.strictSame(settings, { event: 'FEES', channel: SETTINGS, data: { rate: '1.50' } })
  t.strictSame(fromPython, fromGateway)
  t.strictSame(await eventsOf(bob.phone, 1), [{ event: 'FEES', channel: SETTINGS, data: { rate: '1.50' } }], 'a global channel reaches every socket')
})

t.test('history on: the Python publish is appended to the user\'s stream (its id, the next offset for the gateway), and its idempotency record is the gateway\'s', { skip }, async (t) => {
  const keyPrefix = uniquePrefix()
  const [a, b] = await startNodes(t, 2, { keyPrefix, history: HISTORY })
  const alice = await join(t, b, 'alice', [PAYMENTS])
  const common = ['--key-prefix', keyPrefix, '--history', HISTORY_ARG, '--channel', PAYMENTS, '--user', 'alice', '--event', 'PAYMENT_ORDER_UPDATED']
  const id = await publishFromPython([...common, '--data', '{"order_id":"po_1","status":"paid"}'])
  t.match(id, /^[A-Za-z0-9_-]{8}:1$/, 'the first offset of a new stream')
  const next = await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po_2', status: 'paid' }, { userId: 'alice' })
  t.equal(next.id, id.replace(/:1$/, ':2'), 'the gateway appends after it, in the same epoch')

  const keyed = [...common, '--data', '{"order_id":"po_3","status":"paid"}', '--idempotency-key', 'po_3:paid', '--window', '300']
  const first = await publishFromPython(keyed)
  t.equal(await publishFromPython(keyed), `repeated ${first}`, 'a retry from Python sends nothing and answers the first id')
  const retried = await a.app.realtime.publish(PAYMENTS, 'PAYMENT_ORDER_UPDATED', { order_id: 'po_3', status: 'paid' }, { userId: 'alice', idempotencyKey: 'po_3:paid' })
  t.equal(retried.id, first, 'so does a retry through the gateway')
  const marker = await a.app.realtime.publish(PAYMENTS, 'MARKER', {}, { userId: 'alice' })
  const events = await eventsOf(alice.phone, 4)
  t.strictSame(events.map((event) => [event.event, event.data.order_id, event.id]), [
    ['PAYMENT_ORDER_UPDATED', 'po_1', id],
    ['PAYMENT_ORDER_UPDATED', 'po_2', next.id],
    ['PAYMENT_ORDER_UPDATED', 'po_3', first],
    ['MARKER', undefined, marker.id]
  ], 'each once, in stream order')
})
