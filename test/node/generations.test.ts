import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { Generations } from '../../lib/node/generations.js'
import { OwnRedis, commandCounts, failFastClient } from '../helpers/redis-server.js'

// A redis-server of the test's own: its command counts are this test's alone.
const redis = await OwnRedis.start()
t.teardown(async () => await redis.kill())

const client = async (t: Test): Promise<Redis> => await failFastClient(t, redis.url)

t.test('claims made within one turn are one script call, each newer than what the user had', async (t) => {
  const connection = await client(t)
  const generations = new Generations(connection, 'claims:')
  const earlier = await generations.claim('alice')
  await commandCounts(connection)
  const [alice, bob, aliceAgain] = await Promise.all([generations.claim('alice'), generations.claim('bob'), generations.claim('alice')])
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
  const claimed = await generations.claim('carol')
  await commandCounts(connection)
  t.same(await Promise.all([generations.stored('carol'), generations.stored('nobody')]), [claimed, 0])
  t.same(await commandCounts(connection), { mget: 1 })
})

t.test('a release takes the generation back only if no newer claim replaced it', async (t) => {
  const generations = new Generations(await client(t), 'release:')
  const older = await generations.claim('dave')
  const newer = await generations.claim('dave')
  await generations.release('dave', older)
  t.equal(await generations.stored('dave'), newer, 'a newer claim stands')
  await generations.release('dave', newer)
  t.equal(await generations.stored('dave'), 0, 'its own claim is taken back')
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
