import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type WebSocket from 'ws'
import type { Test } from 'tap'
import { startApp, type TestApp } from '../helpers/app.js'
import { connect, closed } from '../helpers/client.js'

/** A reader that keeps only the sequence numbers it received (the payloads are large). */
interface Reader {
  socket: WebSocket
  seen: number[]
}

async function openReader (t: Test, gateway: TestApp, index: number): Promise<Reader> {
  const token = await gateway.app.realtime.tokens.issue(`reader-${index}`, { ttlSeconds: 300 })
  const { socket } = await connect(`${gateway.wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => socket.terminate())
  const reader: Reader = { socket, seen: [] }
  socket.on('message', (data) => { reader.seen.push((JSON.parse(data.toString()) as { data: { n: number } }).data.n) })
  return reader
}

async function openReaders (t: Test, gateway: TestApp, count: number): Promise<Reader[]> {
  return await Promise.all(Array.from({ length: count }, async (_, index) => await openReader(t, gateway, index)))
}

/** One after the other: a fan-out then writes them in this order. */
async function openReadersInOrder (t: Test, gateway: TestApp, count: number): Promise<Reader[]> {
  const readers: Reader[] = []
  for (let index = 0; index < count; index++) readers.push(await openReader(t, gateway, index))
  return readers
}

async function waitFor (condition: () => boolean, attempts = 3000): Promise<void> {
  for (let attempt = 0; attempt < attempts && !condition(); attempt++) await sleep(10)
  if (!condition()) throw new Error('condition not met')
}

const inOrder = (count: number): number[] => Array.from({ length: count }, (_, index) => index)

/** Publishes `count` settings broadcasts (data.n 0…count-1) within one turn. */
async function broadcastAll (gateway: TestApp, count: number, pad?: string): Promise<void> {
  await Promise.all(Array.from({ length: count }, async (_, n) => await gateway.app.realtime.publish('settings', 'X', { n, pad })))
}

/** Events to these users, published together in the next turn (after the dispatcher's next one); answers the messages they wrote then. */
async function writtenNextTurn (gateway: TestApp, users: number[], n: number): Promise<number> {
  const messagesOut = (): number => gateway.app.realtime.stats().messages_out
  return await new Promise((resolve, reject) => {
    setImmediate(() => {
      const before = messagesOut()
      Promise.all(users.map(async (index) => await gateway.app.realtime.publish('mobile.force.logout', 'X', { n }, { userId: `reader-${index}` })))
        .then(() => resolve(messagesOut() - before), reject)
    })
  })
}

for (const [count, size] of [[100, 16_300], [3000, 400]]) {
  t.test(`${count} publishes of ${size} bytes within one tick reach 200 fast readers, none cut`, async (t) => {
    const gateway = await startApp({ limits: { maxConnectionsPerIp: 0 } })
    t.teardown(() => gateway.app.close())
    const readers = await openReaders(t, gateway, 200)
    const pad = 'x'.repeat(size)
    for (let n = 0; n < count; n++) await gateway.app.realtime.publish('settings', 'X', { n, pad })
    await waitFor(() => readers.every((reader) => reader.seen.length === count) || gateway.app.realtime.stats().slow_consumer_cuts > 0)
    t.equal(gateway.app.realtime.stats().slow_consumer_cuts, 0, 'no healthy reader was cut')
    t.ok(readers.every((reader) => reader.seen.join() === inOrder(count).join()), 'every reader got every event, in order')
    t.equal(gateway.app.realtime.connections().length, 200)
  })
}

t.test('a reader that stopped reading is still cut while bursts keep coming; the others get everything', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, maxBufferedBytes: 256 * 1024 } })
  t.teardown(() => gateway.app.close())
  const [paused, ...fast] = await openReaders(t, gateway, 5)
  paused.socket.pause()
  const pausedClosed = closed(paused.socket)
  const pad = 'x'.repeat(16_000)
  let sent = 0
  // Bursts of 50 in one tick, a turn of the event loop between bursts.
  while (gateway.app.realtime.stats().slow_consumer_cuts === 0 && sent < 20_000) {
    for (let index = 0; index < 50; index++) await gateway.app.realtime.publish('settings', 'X', { n: sent++, pad })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(gateway.app.realtime.stats().slow_consumer_cuts, 1)
  t.notOk(gateway.app.realtime.connectedUsers().includes('reader-0'), 'the paused reader left the registry')
  paused.socket.resume()
  t.equal((await pausedClosed).code, 1006, 'terminated without a close handshake')
  await waitFor(() => fast.every((reader) => reader.seen.length === sent))
  t.ok(fast.every((reader) => reader.seen.join() === inOrder(sent).join()), 'the fast readers got every event in order')
})

t.test('a turn writes at most limits.fanoutSliceBytes; an event larger than that still goes out', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceBytes: 1024 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 3)
  const before = gateway.app.realtime.stats().messages_out
  // Each event is 332 bytes framed: one event to three readers fits in a turn, two do not.
  for (let n = 0; n < 10; n++) await gateway.app.realtime.publish('settings', 'X', { n, pad: 'x'.repeat(270) })
  await gateway.app.realtime.publish('settings', 'X', { n: 10, pad: 'x'.repeat(4000) })
  t.equal(gateway.app.realtime.stats().messages_out - before, 3, 'this turn wrote the first event only')
  await waitFor(() => readers.every((reader) => reader.seen.length === 11))
  t.ok(readers.every((reader) => reader.seen.join() === inOrder(11).join()), 'every event, in order, the large one too')
})

t.test('a burst held back by the byte slice goes out as many events per turn as fit, not one event per socket per turn', async (t) => {
  // A socket slice as large as the audience, as with the defaults (2,000) and 2,000 sockets.
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 3, fanoutSliceBytes: 1024 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 3)
  const before = gateway.app.realtime.stats().messages_out
  // About 110 bytes framed, 330 for the three readers: three events fill a turn's 1,024 bytes.
  for (let n = 0; n < 12; n++) await gateway.app.realtime.publish('settings', 'X', { n, pad: 'x'.repeat(50) })
  const firstTurn = gateway.app.realtime.stats().messages_out - before
  await new Promise((resolve) => setImmediate(resolve))
  const secondTurn = gateway.app.realtime.stats().messages_out - before - firstTurn
  t.equal(firstTurn, 9, 'the first turn wrote the three events that fit')
  t.equal(secondTurn, 9, 'so did the next one, to the same sockets')
  await waitFor(() => readers.every((reader) => reader.seen.length === 12))
  t.ok(readers.every((reader) => reader.seen.join() === inOrder(12).join()), 'every event, in order')
})

t.test('publishes to more sockets in one turn than the socket slice: the rest follows in the next turns, nothing is lost', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 2 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 5)
  const before = gateway.app.realtime.stats().messages_out
  // One targeted event to each of the five readers, within one turn.
  for (let index = 0; index < 5; index++) {
    await gateway.app.realtime.publish('mobile.force.logout', 'X', { n: 0 }, { userId: `reader-${index}` })
  }
  t.equal(gateway.app.realtime.stats().messages_out - before, 2, 'this turn wrote two sockets')
  await waitFor(() => readers.every((reader) => reader.seen.length === 1))
  t.pass('every reader got its event')
})

t.test('an event to one socket published while a large fan-out is still going out is written at once, after what that socket was due first', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 2 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReadersInOrder(t, gateway, 10)
  const messagesOut = (): number => gateway.app.realtime.stats().messages_out
  const toUser = async (index: number, n: number): Promise<unknown> => await gateway.app.realtime.publish('mobile.force.logout', 'X', { n }, { userId: `reader-${index}` })
  // One turn: the broadcast is too large for it and queues whole; reader-9 and reader-7 are written
  // ahead of it (the broadcast, then their event), which fills the turn's two sockets, so reader-8's
  // event queues behind the broadcast.
  let before = messagesOut()
  await Promise.all([gateway.app.realtime.publish('settings', 'X', { n: 0 }), toUser(9, 1), toUser(7, 2), toUser(8, 3)])
  const firstTurn = messagesOut() - before
  // The next turn writes the broadcast to reader-0 and reader-1; then, with the turn's budget free:
  const nextTurn = await new Promise<number[]>((resolve, reject) => {
    setImmediate(() => {
      before = messagesOut()
      // reader-8: the broadcast and its queued event, then this one.
      toUser(8, 4)
        .then(async () => {
          const toEight = messagesOut() - before
          // reader-0 had the broadcast: only the event is left to write.
          await toUser(0, 5)
          resolve([toEight, messagesOut() - before - toEight])
        })
        .catch(reject)
    })
  })
  t.same([firstTurn, ...nextTurn], [4, 3, 1], 'written: 2 + 2 in the first turn; 3, then 1 in the next')
  const expected = [[0, 5], [0], [0], [0], [0], [0], [0], [0, 2], [0, 3, 4], [0, 1]]
  await waitFor(() => readers.every((reader, index) => reader.seen.length === expected[index]?.length))
  t.same(readers.map((reader) => reader.seen), expected, 'each socket in publish order, nothing twice')
})

t.test('an event to one socket does not overtake its queued close: after a forced logout nothing more reaches it', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 2 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 10)
  const last = readers[9] as Reader
  const closing = closed(last.socket)
  await gateway.app.realtime.publish('settings', 'X', { n: 0 })
  await new Promise<void>((resolve, reject) => {
    setImmediate(() => {
      gateway.app.realtime.forceLogout('reader-9')
        .then(async () => await gateway.app.realtime.publish('mobile.force.logout', 'X', { n: 1 }, { userId: 'reader-9' }))
        .then(() => resolve(), reject)
    })
  })
  t.equal((await closing).code, 4502)
  t.same(last.seen, [0, undefined], 'the broadcast, the logout event, and nothing after it')
})

t.test('behind a burst of fan-outs too large to look through (over 100,000 recipients queued), an event to one socket waits its turn, in order', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 50 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 100)
  const broadcasts = 1020
  await broadcastAll(gateway, broadcasts)
  const written = await writtenNextTurn(gateway, [99], broadcasts)
  t.equal(written, 0, 'queued behind the burst')
  const last = readers[99] as Reader
  await waitFor(() => last.seen.length === broadcasts + 1)
  t.same(last.seen, inOrder(broadcasts + 1), 'every broadcast, then the event')
})

t.test('an event to one socket whose queued backlog does not fit the turn\'s byte slice waits its turn, in order', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 2, fanoutSliceBytes: 1024 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 10)
  // Three broadcasts of about 300 bytes: reader-9's backlog alone is over 1,024 bytes with the event.
  await broadcastAll(gateway, 3, 'x'.repeat(270))
  const written = await writtenNextTurn(gateway, [9], 3)
  t.equal(written, 0, 'queued behind the broadcasts')
  const last = readers[9] as Reader
  await waitFor(() => last.seen.length === 4)
  t.same(last.seen, inOrder(4))
})

t.test('a turn looks through at most 1,000,000 queued recipients to write sockets ahead: past that, the next event to one socket waits its turn', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 50 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReaders(t, gateway, 100)
  // 99,000 recipients queued (and 990 jobs): one look through them is within the 100,000 of one
  // write ahead; ten fit a turn's 1,000,000, eleven do not.
  const broadcasts = 990
  await broadcastAll(gateway, broadcasts)
  const users = Array.from({ length: 11 }, (_, index) => 99 - index)
  // All in the same turn (the budgets end with it, when Node runs its nextTick queue).
  const written = await writtenNextTurn(gateway, users, broadcasts)
  t.equal(written, 10 * (broadcasts + 1), 'ten caught up and got their event; the eleventh\'s waits')
  const targeted = readers.slice(89)
  await waitFor(() => targeted.every((reader) => reader.seen.length === broadcasts + 1))
  t.same(targeted.map((reader) => reader.seen), targeted.map(() => inOrder(broadcasts + 1)))
})

t.test('a socket written ahead skips what it unsubscribed from meanwhile', async (t) => {
  const gateway = await startApp({ limits: { maxConnectionsPerIp: 0, fanoutSliceSize: 1 } })
  t.teardown(() => gateway.app.close())
  const readers = await openReadersInOrder(t, gateway, 200)
  const last = readers[199] as Reader
  const reply = async (event: string): Promise<void> => await new Promise((resolve) => {
    const listener = (data: Buffer): void => {
      if ((JSON.parse(data.toString()) as { event: string }).event !== event) return
      last.socket.off('message', listener)
      resolve()
    }
    last.socket.on('message', listener)
  })
  const subscribed = reply('subscribed')
  last.socket.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
  await subscribed
  const toUser = async (index: number, n: number, channel = 'mobile.force.logout'): Promise<unknown> => await gateway.app.realtime.publish(channel, 'X', { n }, { userId: `reader-${index}` })
  // One turn: the broadcast queues whole (one socket a turn, 200 to go); reader-198 is written ahead,
  // which fills the turn; reader-199's notification queues behind the broadcast.
  await Promise.all([gateway.app.realtime.publish('settings', 'X', { n: 0 }), toUser(198, 1), toUser(199, 2, 'notification.events')])
  // reader-199 unsubscribes while both are queued (the broadcast reaches it last, about 200 turns on).
  const unsubscribed = reply('unsubscribed')
  last.socket.send(JSON.stringify({ event: 'unsubscribe', channel: 'notification.events' }))
  await unsubscribed
  await toUser(199, 3)
  await waitFor(() => readers.slice(0, 198).every((reader) => reader.seen.includes(0)))
  // After the queue drained: sent at once, behind whatever reader-199 was written before.
  await new Promise((resolve) => setImmediate(resolve))
  await toUser(199, 4)
  await waitFor(() => last.seen.includes(4))
  t.same(last.seen.filter((n) => n !== undefined), [0, 3, 4], 'the broadcast, then its events; not the notification it had unsubscribed from')
})
