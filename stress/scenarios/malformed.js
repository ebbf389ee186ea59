// Malformed traffic: the raw-TCP matrix of the tests
// (test/stress/malformed-rows.js: oversized and too many headers, bad keys and
// versions, unmasked frames, RSV bits, bad opcodes, fragmented control frames,
// invalid UTF-8, bad close codes, 2^63 lengths, fragment floods, resets),
// `rounds` times against one gateway process. Each row must get its exact HTTP
// status or close code; after every row the node holds no connection (one per
// address is allowed, so a leaked slot would refuse the probe) and still
// serves: a normal client connects and receives an event. Heap after GC and
// RSS bounded from the end of the first round (warm-up) to the last.
import { Cluster } from '../lib/cluster.js'
import { until } from '../lib/fleet.js'
import { RawClient } from '../lib/raw-client.js'
import { Checks } from '../lib/checks.js'
import { MALFORMED_ROWS, mismatch, runMalformedRow } from '../../test/stress/malformed-rows.js'

const PREFIX = '/api/v1/ws'
// What the rounds after the first may add, after GC (the test's bounds).
const HEAP_SLACK_BYTES = 4 * 1024 * 1024
const RSS_SLACK_BYTES = 48 * 1024 * 1024
const MiB = (bytes) => Math.round(bytes / 1024 / 1024 * 100) / 100

export async function malformed ({ redis, keyPrefix, rounds }) {
  const checks = new Checks()
  // One connection per address: a slot that any row leaks makes the next probe a 429.
  const cluster = await Cluster.start(1, { redis: redis.url, keyPrefix, heartbeatMs: 1000, limits: { maxConnectionsPerIp: 1, closeTimeoutMs: 500 } })
  const node = cluster.nodes[0]
  try {
    const [probeToken, ...tokens] = await node.child.request('tokens', { users: ['probe', ...MALFORMED_ROWS.map((_, index) => `row-${index}`)] })
    const failures = []
    const memory = []
    let served = 0
    const started = performance.now()
    for (let round = 0; round < rounds; round++) {
      for (const [index, row] of MALFORMED_ROWS.entries()) {
        try {
          const problem = mismatch(row, await runMalformedRow(node.port, `${PREFIX}?token=${tokens[index]}`, row))
          if (problem !== undefined) failures.push(`round ${round}: ${problem}`)
          await until(async () => await node.child.request('sockets') === 0, `"${row.name}" to leave no connection`, 5000)
          await serving(cluster, probeToken, round, row.name)
          served++
        } catch (error) {
          failures.push(`round ${round}, ${row.name}: ${error.message}`)
        }
      }
      memory.push(await node.child.request('mem'))
    }
    const seconds = (performance.now() - started) / 1000

    const expectedCloses = {}
    for (const row of MALFORMED_ROWS) if (row.kind === 'frames') expectedCloses[row.closeCode] = (expectedCloses[row.closeCode] ?? 0) + rounds
    const { closes } = await node.child.request('stats')
    const [first, last] = [memory[0], memory.at(-1)]
    checks.equal('rows answered otherwise than documented (every round)', failures.slice(0, 10), [])
    checks.equal('rows after which the node served a normal client', served, rounds * MALFORMED_ROWS.length)
    checks.equal('refused frames recorded, by the close code the client saw', Object.fromEntries(Object.keys(expectedCloses).map((code) => [code, closes[code]])), expectedCloses)
    checks.atMost(`heap after GC, end of round 1 → end of round ${rounds} (MiB added)`, MiB(last.heapUsed - first.heapUsed), MiB(HEAP_SLACK_BYTES))
    checks.atMost(`RSS, end of round 1 → end of round ${rounds} (MiB added)`, MiB(last.rss - first.rss), MiB(RSS_SLACK_BYTES))
    checks.equal('node errors (uncaught, error logs)', await cluster.errors(), [])
    return {
      checks,
      figures: {
        rows: MALFORMED_ROWS.length,
        rounds,
        exchanges: rounds * MALFORMED_ROWS.length,
        seconds: Math.round(seconds * 10) / 10,
        heapAfterGcMiB: memory.map((sample) => MiB(sample.heapUsed)).filter((_, index) => index === 0 || index === memory.length - 1),
        rssMiB: memory.map((sample) => MiB(sample.rss)).filter((_, index) => index === 0 || index === memory.length - 1)
      }
    }
  } finally {
    await cluster.stop()
  }
}

/** A well-behaved client still gets in and receives an event published after the row; then it leaves. */
async function serving (cluster, token, round, row) {
  const client = new RawClient(`${cluster.url(0)}?token=${token}`)
  try {
    await client.next((message) => message.event === 'connected', `the probe after "${row}" to connect`)
    const answer = await cluster.nodes[0].child.request('publish', { channel: 'settings', event: 'probe', data: { round, row } })
    if (answer.error !== undefined) throw new Error(`publish after "${row}": ${answer.error}`)
    await client.next((message) => message.event === 'probe' && message.data.row === row && message.data.round === round, `the probe after "${row}" to receive its event`)
  } finally {
    await client.close()
  }
  await until(async () => await cluster.nodes[0].child.request('sockets') === 0, `the probe of "${row}" to be gone`, 5000)
}
