// lib/redis/key-batch.ts: string reads of one turn share one MGET on one
// Redis; on a Redis Cluster each key is its own MGET of one key. Token lookups and the fencing
// re-reads go through it (and the claims of lib/node/generations.ts follow
// the same split).
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { Generations } from '../../lib/node/generations.js'
import { batchedReads } from '../../lib/redis/key-batch.js'
import { createRedisClient } from '../../lib/redis/client.js'
import { RedisTokenStore } from '../../lib/tokens/redis-store.js'
import { OwnRedis, commandCounts, failFastClient } from '../helpers/redis-server.js'
import { OwnRedisCluster } from '../helpers/redis-cluster.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

// Servers of the test's own: their command counts are this test's alone.
const [redis, redisCluster] = await Promise.all([OwnRedis.start(), OwnRedisCluster.start()])
t.teardown(async () => await Promise.all([redis.kill(), redisCluster.stop()]))

const client = async (t: Test): Promise<Redis> => await failFastClient(t, redis.url)

async function clusterClient (t: Test, redisOptions: RedisOptions = {}): Promise<Cluster> {
  const connection = new Cluster(redisCluster.startupNodes, { enableAutoPipelining: true, redisOptions })
  t.teardown(() => connection.disconnect())
  await once(connection, 'ready')
  return connection
}

/** A plain connection to each master, to read its command counts. */
function masters (t: Test): Redis[] {
  return redisCluster.ports.map((port) => {
    const connection = new Redis(port, '127.0.0.1')
    t.teardown(() => connection.disconnect())
    return connection
  })
}

t.test('on one Redis, reads of one turn are one MGET, answered in order; a missing key or one of another type reads null', async (t) => {
  const connection = await client(t)
  await connection.set('reads:a', 'one')
  await connection.set('reads:b', 'two')
  await connection.rpush('reads:list', 'x')
  const read = batchedReads(connection)
  await commandCounts([connection])
  t.same(await Promise.all(['reads:b', 'reads:none', 'reads:a', 'reads:list'].map(read)), ['two', null, 'one', null])
  t.same(await commandCounts([connection]), { mget: 1 })
  t.equal(await read('reads:a'), 'one', 'an idle node reads a lone key at once')
})

t.test('on one Redis, token lookups of one turn share one MGET', async (t) => {
  const connection = await client(t)
  const store = new RedisTokenStore(connection, { keyPrefix: 'tokens:' })
  const tokens = await Promise.all(['u1', 'u2', 'u3'].map(async (userId) => await store.issue(userId, { ttlSeconds: 60 })))
  await commandCounts([connection])
  const states = await Promise.all([...tokens, 'x'.repeat(43)].map(async (token) => await store.resolve(token)))
  t.same(states.map((state) => state?.userId ?? null), ['u1', 'u2', 'u3', null])
  t.same(await commandCounts([connection]), { mget: 1 })
})

t.test('on one Redis, a batch goes out at once, not behind the client\'s auto-pipelined commands awaiting their answer', async (t) => {
  // The plugin's own client auto-pipelines, and ioredis sends its next pipeline only once the
  // previous one is answered: a turn's token lookups and claims would wait a round trip behind
  // the publishes of the turn before.
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(async () => await proxy.close())
  const connection = createRedisClient(proxy.url, 'batch-at-once', { warn () {} })
  t.teardown(() => connection.disconnect())
  await once(connection, 'ready')
  const server = await client(t)
  await commandCounts(server)
  proxy.muteReplies()
  // Sent, run by Redis, never answered: this client's auto-pipeline stays busy.
  connection.get('at-once:a').catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 50))
  batchedReads(connection)('at-once:b').catch(() => {})
  new Generations(connection, 'at-once:').claim('ann').catch(() => {})
  // Looked at for a second: the unanswered GET fails at the client's command timeout (2 s), which would free the pipeline.
  const seen: Record<string, number> = {}
  for (let attempt = 0; attempt < 20 && (seen.mget === undefined || seen.evalsha === undefined); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    Object.assign(seen, await commandCounts(server))
  }
  t.same({ get: seen.get, mget: seen.mget, evalsha: seen.evalsha }, { get: 1, mget: 1, evalsha: 1 }, 'the read and the claim reached Redis')
})

t.test('on one Redis, a revoke made before a token lookup runs before it, even while the client\'s auto-pipeline waits for an answer', async (t) => {
  const connection = createRedisClient(redis.url, 'revoke-first', { warn () {} })
  t.teardown(() => connection.disconnect())
  await once(connection, 'ready')
  const store = new RedisTokenStore(connection, { keyPrefix: 'revoke-first:' })
  const token = await store.issue('ann', { ttlSeconds: 60 })
  // A script that holds Redis for 200 ms: the client's next auto-pipeline waits for its answer.
  const busy = connection.eval(`local function now () local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
    local start = now()
    repeat until now() - start > 200000
    return 1`, 0)
  await new Promise((resolve) => setImmediate(resolve))
  const revoked = store.revoke(token)
  const state = await store.resolve(token)
  t.equal(await revoked, 'ann')
  t.equal(state, null, 'the lookup saw the token revoked')
  await busy
})

t.test('on a Redis Cluster, each read is its own command (the keys sit on different shards); a key of another type reads null', async (t) => {
  const connection = await clusterClient(t)
  const servers = masters(t)
  const keys = ['{a}k', '{b}k', '{c}k', '{d}k']
  for (const key of keys) await connection.set(key, key)
  await connection.rpush('{e}list', 'x')
  const read = batchedReads(connection)
  await commandCounts(servers)
  t.same(await Promise.all([...keys, '{e}list', '{f}none'].map(read)), [...keys, null, null])
  t.same(await commandCounts(servers), { mget: 6 })
})

t.test('on a Redis Cluster, a turn\'s fencing claims and releases are one script call each, and its re-reads one command each', async (t) => {
  const connection = await clusterClient(t)
  const servers = masters(t)
  const generations = new Generations(connection, 'gen-cluster:')
  await generations.claim('warm-up')
  await commandCounts(servers)
  const claimed = await Promise.all(['ann', 'ben', 'cid'].map(async (userId) => await generations.claim(userId)))
  // The counts include the commands the script ran (GET, SET, TIME).
  const counts = await commandCounts(servers)
  t.same({ evalsha: counts.evalsha, set: counts.set }, { evalsha: 3, set: 3 })
  t.same(await Promise.all(['ann', 'ben', 'cid', 'nobody'].map(async (userId) => await generations.stored(userId))), [...claimed.map((claim) => claim.generation), 0])
  t.same(await commandCounts(servers), { mget: 4 })
  await Promise.all(['ann', 'ben'].map(async (userId, index) => { await generations.release(userId, (claimed[index] as { generation: number }).generation) }))
  t.same((await commandCounts(servers)).evalsha, 2, 'releases: one script call each')
  t.same(await Promise.all(['ann', 'ben', 'cid'].map(async (userId) => await generations.stored(userId))), [0, 0, claimed[2]?.generation])
})

t.test('on a Redis Cluster, a read that fails otherwise rejects', async (t) => {
  const connection = await clusterClient(t)
  const read = batchedReads(connection)
  connection.disconnect()
  await t.rejects(read('{a}k'), /Connection is closed/)
})

t.test('on one Redis, a batch that fails rejects every read in it (a token lookup then answers 503, never 401)', async (t) => {
  const connection = await client(t)
  const read = batchedReads(connection)
  connection.disconnect()
  const results = await Promise.allSettled([read('reads:a'), read('reads:b')])
  t.same(results.map((result) => result.status), ['rejected', 'rejected'])
})

t.test('on a Redis Cluster, a shard that does not answer fails only the reads of its own keys', async (t) => {
  const connection = await clusterClient(t, { commandTimeout: 300 })
  const keys = ['{a}k', '{b}k', '{c}k', '{d}k', '{e}k', '{f}k']
  for (const key of keys) await connection.set(key, key)
  const shardOf = await Promise.all(keys.map(async (key) => await redisCluster.masterOf(key)))
  const frozen = shardOf[0] as number
  const elsewhere = keys.filter((_key, index) => shardOf[index] !== frozen)
  t.ok(elsewhere.length > 0, 'some keys sit on another shard')
  const pid = await redisCluster.pid(frozen)
  process.kill(pid, 'SIGSTOP')
  t.teardown(() => { process.kill(pid, 'SIGCONT') })
  const read = batchedReads(connection)
  const results = await Promise.allSettled(keys.map(read))
  t.same(results.map((result, index) => shardOf[index] === frozen ? result.status : result.status === 'fulfilled' && result.value),
    keys.map((key, index) => shardOf[index] === frozen ? 'rejected' : key))
})
