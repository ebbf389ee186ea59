// Scenario 1: idle memory per connection. Server heapUsed and RSS after GC,
// before and after connecting N sockets, divided by N (cumulative steps).
import { sleep } from '../lib/rpc.js'

export async function idleMemory (session, { steps, concurrency }) {
  // Tokens are issued before the baseline, so their storage is not counted per connection.
  await session.prepareTokens(steps.at(-1))
  // Twice, a moment apart: the first GC after issuing tokens can leave RSS that the allocator returns a little later.
  await session.mem()
  await sleep(500)
  const base = await session.mem()
  const metrics = { 'mem.failed': 0 }
  for (const step of steps) {
    const result = await session.connect(step - session.clients, concurrency)
    metrics['mem.failed'] += result.failed
    await sleep(200)
    const now = await session.mem()
    metrics[`mem.heap.${step}`] = (now.heapUsed - base.heapUsed) / session.clients / 1024
    metrics[`mem.rss.${step}`] = (now.rss - base.rss) / session.clients / 1024
  }
  return metrics
}
