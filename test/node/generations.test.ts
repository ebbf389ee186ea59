import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { Generations } from '../../lib/node/generations.js'
import { OwnRedis, commandCounts, failFastClient } from '../helpers/redis-server.js'

// A redis-server of the test's own: its command counts are this test's alone.
const redis = await OwnRedis.start()
t.teardown(async () => await redis.kill())

const client = async (t: Test): Promise<Redis> => await failFastClient(t, redis.url)

t.test('claims made within one turn are one script call, each newer than what the user had and naming what it replaced', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'claims:')
  const { generation: earlier, replaced: none } = await generations.claim('alice')
  t.equal(none, 0, 'the first claim of a user replaced none')
  await commandCounts(connection)
  const claims = await Promise.all([generations.claim('alice'), generations.claim('bob'), generations.claim('alice')])
  const [alice, bob, aliceAgain] = claims.map((claim) => claim.generation) as [number, number, number]
  t.same(claims.map((claim) => claim.replaced), [earlier, 0, alice], 'each names the generation it replaced')
  const counts = await commandCounts(connection)
  // The counts include the commands the script ran (GET, SET, TIME).
  t.same({ evalsha: counts.evalsha, eval: counts.eval, set: counts.set }, { evalsha: 1, eval: undefined, set: 3 }, 'one script call stores the three claims')
  t.ok(alice > earlier, 'newer than the stored generation')
  t.ok(aliceAgain > alice, 'a user claimed twice in a turn: the second claim is the newer')
  t.ok(bob >= alice, 'a later claim of another user is not older (both from the server\'s clock in µs, at least)')
  t.equal(await generations.stored('alice'), aliceAgain)
})

t.test('reads made within one turn are one MGET; a user without a generation reads 0', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'reads:')
  const { generation: claimed } = await generations.claim('carol')
  await commandCounts(connection)
  t.same(await Promise.all([generations.stored('carol'), generations.stored('nobody')]), [claimed, 0])
  t.same(await commandCounts(connection), { mget: 1 })
})

t.test('a release takes the generation back only if no newer claim replaced it; releases of one turn are one script call', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'release:')
  const { generation: older } = await generations.claim('dave')
  const { generation: newer } = await generations.claim('dave')
  const { generation: ivy } = await generations.claim('ivy')
  await commandCounts(connection)
  await Promise.all([generations.release('dave', older), generations.release('ivy', ivy)])
  t.same((await commandCounts(connection)).evalsha, 1, 'one script call')
  t.equal(await generations.stored('dave'), newer, 'a newer claim stands')
  t.equal(await generations.stored('ivy'), 0, 'its own claim is taken back')
  await generations.release('dave', newer)
  t.equal(await generations.stored('dave'), 0)
  t.equal((await generations.claim('dave')).replaced, 0, 'a claim after the release replaced none')
})

t.test('a raise stores the generation where the user has none or an older one, never over a newer one; raises of one turn are one script call', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'raise:')
  await generations.raise('jay', 42)
  t.equal(await generations.stored('jay'), 42, 'stored where none was')
  await generations.raise('jay', 50)
  t.equal(await generations.stored('jay'), 50, 'raised over an older one')
  const { generation } = await generations.claim('jay')
  await generations.raise('jay', 50)
  t.equal(await generations.stored('jay'), generation, 'a newer claim stands')
  await commandCounts(connection)
  await Promise.all([generations.raise('lee', 7), generations.raise('mo', 8)])
  t.same((await commandCounts(connection)).evalsha, 1, 'one script call')
  t.same(await Promise.all([generations.stored('lee'), generations.stored('mo')]), [7, 8])
})

t.test('a release with the generation its claim replaced puts that one back, only if its own still stands', async (t) => {
  const generations = new Generations(await client(t), 'put-back:')
  const { generation: older } = await generations.claim('kim')
  const { generation: flapping, replaced } = await generations.claim('kim')
  t.equal(replaced, older)
  await generations.release('kim', flapping, replaced)
  t.equal(await generations.stored('kim'), older, 'put back')
  const { generation: newest } = await generations.claim('kim')
  await generations.release('kim', flapping, replaced)
  t.equal(await generations.stored('kim'), newest, 'a newer claim stands')
})

t.test('a batch that Redis refuses fails every request in it', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'refused:')
  connection.disconnect()
  const results = await Promise.allSettled([generations.claim('erin'), generations.claim('frank')])
  t.same(results.map((result) => result.status), ['rejected', 'rejected'])
})

t.test('reads made within a short wait share one MGET, across turns of the event loop', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'wait:')
  await commandCounts(connection)
  const first = generations.stored('gina')
  await new Promise((resolve) => setImmediate(resolve))
  const second = generations.stored('hank')
  t.same(await Promise.all([first, second]), [0, 0])
  t.same(await commandCounts(connection), { mget: 1 })
})
