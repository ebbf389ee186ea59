import t from 'tap'
import type { WebSocket } from 'ws'
import { Connection } from '../../lib/hub/connection.js'

const connection = (): Connection => new Connection({
  userId: 'u1',
  token: undefined,
  tokenDigest: 'd'.repeat(32),
  expiresAt: Math.floor(Date.now() / 1000) + 60,
  socket: {} as unknown as WebSocket,
  transport: undefined,
  remoteAddress: '127.0.0.1',
  userAgent: null,
  origin: null,
  holdsSlot: false,
  history: false
})

t.test('a connection\'s id is 16 hex digits of its own, the same each time it is read', async (t) => {
  const connections = Array.from({ length: 2000 }, connection)
  const ids = connections.map((each) => each.id)
  t.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(id)), 'hex, 16 digits (leading zeros kept)')
  t.equal(new Set(ids).size, ids.length, 'no two alike')
  t.same(connections.map((each) => each.id), ids, 'read again, the same')
  t.equal(connections[0]?.describe().connection_id, ids[0], 'the diagnostic view shows it')
  // Random bytes: over 2,000 ids each of the 16 positions takes many values, a sign bit included.
  t.ok(ids.some((id) => parseInt(id[0] as string, 16) >= 8) && ids.some((id) => parseInt(id[8] as string, 16) >= 8), 'both halves use their top bit')
})
