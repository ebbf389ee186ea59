import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryOnce } from '../../lib/broker/memory-once.js'

// Embedded mode's idempotency records: the window, the cap, the sweep.

t.test('a record answers within its window, not after it', async (t) => {
  const records = new MemoryOnce(10, 3_600_000)
  t.teardown(() => records.close())
  const once = { key: 'a', windowSeconds: 0.05 }
  t.equal(records.seen(once), undefined)
  records.record(once, 'ep:1')
  t.strictSame(records.seen(once), { id: 'ep:1' })
  await sleep(80)
  t.equal(records.seen(once), undefined, 'expired, though not swept yet')
  t.equal(records.size, 1)
})

t.test('at most maxKeys records: the oldest is forgotten first', async (t) => {
  const records = new MemoryOnce(2, 3_600_000)
  t.teardown(() => records.close())
  for (const key of ['a', 'b', 'c']) records.record({ key, windowSeconds: 60 }, null)
  t.equal(records.size, 2)
  t.equal(records.seen({ key: 'a', windowSeconds: 60 }), undefined)
  t.strictSame(records.seen({ key: 'b', windowSeconds: 60 }), { id: null })
  t.strictSame(records.seen({ key: 'c', windowSeconds: 60 }), { id: null })
  // Recording a key again moves it to the end: the other is the oldest now.
  records.record({ key: 'b', windowSeconds: 60 }, null)
  records.record({ key: 'd', windowSeconds: 60 }, null)
  t.equal(records.seen({ key: 'c', windowSeconds: 60 }), undefined)
  t.strictSame(records.seen({ key: 'b', windowSeconds: 60 }), { id: null })
})

t.test('the sweep drops expired records and keeps live ones', async (t) => {
  const records = new MemoryOnce(10, 20)
  t.teardown(() => records.close())
  records.record({ key: 'short', windowSeconds: 0.03 }, null)
  records.record({ key: 'long', windowSeconds: 60 }, null)
  const deadline = Date.now() + 5000
  while (records.size > 1 && Date.now() < deadline) await sleep(20)
  t.equal(records.size, 1)
  t.strictSame(records.seen({ key: 'long', windowSeconds: 60 }), { id: null })
})
