// Runs the malformed-traffic matrix (test/stress/malformed-rows.ts) against
// one app, several rounds: each row gets its exact answer, the process keeps
// serving (a normal client connects and receives an event after every row),
// nothing is left holding a connection slot, and the heap does not grow with
// the rounds.
import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startApp, type TestApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'
import { MALFORMED_ROWS, mismatch, runMalformedRow } from './malformed-rows.js'

const PREFIX = '/api/v1/ws'
const ROUNDS = 3
/** Heap the later rounds may add over the first one's, after GC. */
const HEAP_SLACK_BYTES = 4 * 1024 * 1024
const RSS_SLACK_BYTES = 48 * 1024 * 1024

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** A well-behaved client still gets in and receives an event. */
async function serving (target: TestApp, token: string, round: number, row: string): Promise<void> {
  const { socket, first } = await connect(`${target.wsBase}${PREFIX}?token=${token}`)
  try {
    if (first.event !== 'connected') throw new Error(`after "${row}": first message ${JSON.stringify(first)}`)
    const inbox = new Inbox(socket)
    await target.app.realtime.publish('settings', 'probe', { round, row })
    const [event] = await inbox.until(1)
    if (event.event !== 'probe' || event.data.row !== row) throw new Error(`after "${row}": got ${JSON.stringify(event)}`)
  } finally {
    socket.terminate()
  }
  await waitFor(() => target.app.realtime.connections().length === 0, `the probe of "${row}" to be gone`, 5000)
}

t.test('every malformed handshake and frame gets its documented answer, and the node keeps serving with a bounded heap', async (t) => {
  // One connection per address: a slot that any row leaks makes the next probe a 429.
  const target = await startApp({ limits: { maxConnectionsPerIp: 1, closeTimeoutMs: 500 } })
  t.teardown(() => target.app.close())
  const probeToken = await target.app.realtime.tokens.issue('probe', { ttlSeconds: 600 })
  const tokens = await Promise.all(MALFORMED_ROWS.map(async (_, index) => await target.app.realtime.tokens.issue(`row-${index}`, { ttlSeconds: 600 })))

  const heap: number[] = []
  const rss: number[] = []
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, row] of MALFORMED_ROWS.entries()) {
      const problem = mismatch(row, await runMalformedRow(target.port, `${PREFIX}?token=${tokens[index]}`, row))
      if (problem !== undefined) failures.push(problem)
      await waitFor(() => target.app.realtime.connections().length === 0, `"${row.name}" to leave no connection`, 5000)
      await serving(target, probeToken, round, row.name)
    }
    gc()
    heap.push(process.memoryUsage().heapUsed)
    rss.push(process.memoryUsage().rss)
  }
  t.strictSame(failures, [], 'every row answered as documented, every round')

  const frameRows = MALFORMED_ROWS.filter((row) => row.kind === 'frames')
  const expectedCloses: Record<string, number> = {}
  for (const row of frameRows) expectedCloses[row.closeCode] = (expectedCloses[row.closeCode] ?? 0) + ROUNDS
  const closes = target.app.realtime.stats().closes
  t.strictSame(Object.fromEntries(Object.keys(expectedCloses).map((code) => [code, closes[code]])), expectedCloses, 'each refused frame recorded with the code its client saw')
  t.ok(heap[ROUNDS - 1] - heap[0] < HEAP_SLACK_BYTES, `heap after GC: ${heap.map((bytes) => Math.round(bytes / 1024)).join(' → ')} KiB`)
  t.ok(rss[ROUNDS - 1] - rss[0] < RSS_SLACK_BYTES, `RSS: ${rss.map((bytes) => Math.round(bytes / 1024 / 1024)).join(' → ')} MiB`)
})
