import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type WebSocket from 'ws'
import { connect, closed } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { uniquePrefix } from '../helpers/app.js'
import { OwnRedis } from '../helpers/redis-server.js'

t.test('connected users and connections are cluster-wide, read from Redis', async (t) => {
  const [a, b] = await startNodes(t, 2)
  const onA = await connect(`${a.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue('alice', { ttlSeconds: 60 })}`, { headers: { 'user-agent': 'phone/1.0' } })
  const onB = await connect(`${b.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue('bob', { ttlSeconds: 60 })}`)
  t.teardown(() => { onA.socket.terminate(); onB.socket.terminate() })
  await waitFor(async () => (await b.app.realtime.presence.connectedUsers()).length === 2, 'both users in presence')
  t.same((await a.app.realtime.presence.connectedUsers()).sort(), ['alice', 'bob'])
  t.same(a.app.realtime.connectedUsers(), ['alice'], 'the sync view is this node only')
  const listing = (await b.app.realtime.presence.connections()).sort((x, y) => x.user_id.localeCompare(y.user_id))
  t.same(listing.map((entry) => [entry.user_id, entry.node_id, entry.user_agent]), [['alice', 'node-0', 'phone/1.0'], ['bob', 'node-1', null]])
  t.same(Object.keys(listing[0]).sort(), ['buffered_bytes', 'connected_at', 'connection_id', 'last_pong_at', 'messages_in', 'messages_out', 'node_id', 'origin', 'remote_address', 'subscriptions', 'user_agent', 'user_id'])
  t.notOk(JSON.stringify(listing).includes('token'), 'no token field or value')

  const gone = closed(onA.socket)
  onA.socket.close()
  await gone
  await waitFor(async () => (await b.app.realtime.presence.connectedUsers()).length === 1, 'alice to leave presence')
  t.same(await b.app.realtime.presence.connectedUsers(), ['bob'])
})

t.test('a crashed node\'s users disappear from presence within two heartbeat intervals', async (t) => {
  const keyPrefix = uniquePrefix()
  const heartbeatMs = 300
  const [a] = await startNodes(t, 1, { keyPrefix, heartbeat: { intervalMs: heartbeatMs } })
  const script = fileURLToPath(new URL('../helpers/cluster-node.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, script], {
    env: { ...process.env, KEY_PREFIX: keyPrefix, HEARTBEAT_MS: String(heartbeatMs), NODE_ID: 'doomed' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = await once(child.stdout, 'data') as [Buffer]
  const { port } = JSON.parse(line.toString())
  const victim = await connect(`ws://127.0.0.1:${port}/api/v1/ws?token=${await a.app.realtime.tokens.issue('victim', { ttlSeconds: 60 })}`)
  const survivor = await connect(`${a.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue('survivor', { ttlSeconds: 60 })}`)
  t.teardown(() => { victim.socket.terminate(); survivor.socket.terminate() })
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 2, 'both users in presence')

  child.kill('SIGKILL')
  await once(child, 'exit')
  const killedAt = Date.now()
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 1, 'the crashed node to drop out', 10_000)
  t.same(await a.app.realtime.presence.connectedUsers(), ['survivor'])
  t.same((await a.app.realtime.presence.connections()).map((entry) => entry.node_id), ['node-0'])
  // Reported, not asserted (timing belongs in bench/): how long the stale entries lived.
  t.comment(`stale presence lasted ${Date.now() - killedAt} ms (2 heartbeat intervals = ${2 * heartbeatMs} ms)`)
})

t.test('a clean shutdown takes the node out of presence at once', async (t) => {
  const [a, b] = await startNodes(t, 2, { heartbeat: { intervalMs: 60_000 } })
  const onB = await connect(`${b.wsBase}/api/v1/ws?token=${await a.app.realtime.tokens.issue('leaving', { ttlSeconds: 60 })}`)
  await waitFor(async () => (await a.app.realtime.presence.connectedUsers()).length === 1, 'the user in presence')
  const onBClosed = closed(onB.socket)
  await b.app.close()
  t.equal((await onBClosed).code, 1001)
  t.same(await a.app.realtime.presence.connectedUsers(), [])
  t.same(await a.app.realtime.presence.connections(), [])
})

t.test('presence lists the open sockets again as soon as Redis is back from a restart that lost its data, not a heartbeat interval later', async (t) => {
  const own = await OwnRedis.start()
  t.teardown(async () => { await own.kill() })
  // A heartbeat interval longer than the test: only the reconnect can relist the sockets in time.
  const [a, b] = await startNodes(t, 2, { redis: own.url, heartbeat: { intervalMs: 120_000 }, tokens: { recheckIntervalMs: 0 } })
  const sockets: WebSocket[] = []
  for (const [node, userId] of [[a, 'alice'], [a, 'carol'], [b, 'bob']] as const) {
    sockets.push((await connect(`${node.wsBase}/api/v1/ws?token=${await node.app.realtime.tokens.issue(userId, { ttlSeconds: 60 })}`)).socket)
  }
  t.teardown(() => { for (const socket of sockets) socket.terminate() })
  const listed = async (): Promise<string[]> => (await a.app.realtime.presence.connectedUsers()).sort()
  await waitFor(async () => (await listed()).length === 3, 'every user in presence')

  // Restarted without persistence: it comes back with no key at all.
  await own.kill()
  await own.restart()
  await waitFor(async () => (await listed().catch(() => [])).length === 3, 'every user back in presence', 10_000)
  t.strictSame(await listed(), ['alice', 'bob', 'carol'])
  const entries = (await b.app.realtime.presence.connections()).map((entry) => [entry.user_id, entry.node_id]).sort()
  t.strictSame(entries, [['alice', 'node-0'], ['bob', 'node-1'], ['carol', 'node-0']])
})
