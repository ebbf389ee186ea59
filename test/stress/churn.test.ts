// Fast version of `npm run stress` churn: connect / subscribe / receive /
// close cycles over 2 nodes, then nothing of them left (handles, Redis
// subscriptions, presence, fencing). The heap criterion is in stress/ only.
import t from 'tap'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { connect } from '../helpers/client.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { Inbox } from '../helpers/messages.js'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'

const CYCLES = 200
const SLOTS = 10

t.test('churn across 2 nodes leaves nothing behind', async (t) => {
  const keyPrefix = uniquePrefix()
  const nodes = await startNodes(t, 2, { keyPrefix, heartbeat: { intervalMs: 60_000 } })
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.disconnect())
  const users = Array.from({ length: SLOTS }, (_, slot) => `churn-${slot}`)
  const tokens = await Promise.all(users.map(async (user) => await nodes[0].app.realtime.tokens.issue(user, { ttlSeconds: 600 })))
  const tally = { cycles: 0, events: 0, closes: new Map<number, number>() }
  let next = 0

  const cycle = async (slot: number, seq: number): Promise<void> => {
    const target = nodes[seq % 2]
    const { socket, first } = await connect(`${target.wsBase}/api/v1/ws?token=${tokens[slot]}`)
    const inbox = new Inbox(socket)
    if (first.event !== 'connected') throw new Error(`first message ${JSON.stringify(first)}`)
    socket.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
    await inbox.until(1)
    await nodes[(seq + 1) % 2].app.realtime.publish('notification.events', 'churn', { seq }, { userId: users[slot] })
    const [, event] = await inbox.until(2)
    if (event.event === 'churn' && event.data.seq === seq) tally.events++
    const closed = once(socket, 'close')
    socket.close(1000)
    const [code] = await closed as [number]
    tally.closes.set(code, (tally.closes.get(code) ?? 0) + 1)
    if (inbox.messages.length !== 2) throw new Error(`extra messages: ${JSON.stringify(inbox.messages.slice(2))}`)
    tally.cycles++
  }
  const run = async (count: number): Promise<void> => {
    const limit = next + count
    await Promise.all(users.map(async (_user, slot) => { while (next < limit) await cycle(slot, next++) }))
  }
  const subscribers = async (): Promise<number> => {
    const answer = await redis.pubsub('NUMSUB', ...users.map((user) => `${keyPrefix}u:{${user}}`)) as Array<string | number>
    return answer.filter((_value, index) => index % 2 === 1).reduce<number>((sum, count) => sum + Number(count), 0)
  }
  const presence = async (): Promise<number[]> => await Promise.all(['node-0', 'node-1'].flatMap((id) => [
    redis.hlen(`${keyPrefix}node:{${id}}:conns`), redis.hlen(`${keyPrefix}node:{${id}}:users`)
  ]))
  const resources = (): string => JSON.stringify(process.getActiveResourcesInfo().sort())
  const settled = async (): Promise<boolean> => nodes.every((node) => node.app.realtime.connections().length === 0) &&
    await subscribers() === 0 && (await presence()).every((entries) => entries === 0)
  // A close's Redis writes can still be in flight (each holds an ioredis
  // command timer) once its traces are gone from Redis: the baseline is a
  // state that holds for a while.
  const steadyResources = async (): Promise<string> => {
    let previous = ''
    await waitFor(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100))
      const now = resources()
      const steady = now === previous
      previous = now
      return steady
    }, 'active resources steady')
    return previous
  }

  // A warm-up, so the baseline holds what the first connects create once (pools, the other node's link).
  await run(SLOTS)
  await waitFor(settled, 'the warm-up sockets gone')
  const baseline = await steadyResources()
  t.same(await presence(), [0, 0, 0, 0], 'no presence entries between cycles')

  // While a socket is open its traces are there (so the checks below can fail).
  const open = await connect(`${nodes[1].wsBase}/api/v1/ws?token=${tokens[0]}`)
  await waitFor(async () => (await presence()).join() === '0,0,1,1', 'the open socket in presence')
  open.socket.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
  await waitFor(async () => await subscribers() === 1, 'the open socket\'s user topic subscribed')
  const gone = once(open.socket, 'close')
  open.socket.close(1000)
  await gone

  await run(CYCLES)
  await waitFor(settled, 'every socket gone, every user topic unsubscribed')
  await waitFor(() => resources() === baseline, 'active resources back to the baseline').catch((error: Error) => {
    throw new Error(`${error.message}: ${baseline} at the start, now ${resources()}`)
  })
  t.equal(tally.cycles, SLOTS + CYCLES, 'every cycle completed')
  t.equal(tally.events, SLOTS + CYCLES, 'each cycle got its one event, published on the other node')
  t.same(Object.fromEntries(tally.closes), { 1000: SLOTS + CYCLES }, 'every close was the client\'s 1000')
  t.equal(await subscribers(), 0, 'PUBSUB NUMSUB of the users\' topics')
  t.same(await presence(), [0, 0, 0, 0], 'presence entries')
  t.same(JSON.parse(resources()), JSON.parse(baseline), 'active resources')
  const generations: string[] = []
  let cursor = '0'
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}gen:*`, 'COUNT', 1000)
    cursor = nextCursor
    generations.push(...keys)
  } while (cursor !== '0')
  // At most one per user (a socket closed before its claim was announced takes its generation back), each expiring.
  t.ok(generations.length <= SLOTS, `at most one fencing generation per user, however many connects (${generations.length})`)
  const ttls = await Promise.all(generations.map(async (key) => await redis.pttl(key)))
  t.ok(ttls.every((ttl) => ttl > 0), 'every fencing generation expires')
})
