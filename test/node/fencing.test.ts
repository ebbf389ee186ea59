import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { Fencing } from '../../lib/node/fencing.js'
import type { Connection } from '../../lib/hub/connection.js'
import type { Hub } from '../../lib/hub/hub.js'
import type { Generations } from '../../lib/node/generations.js'

const nextTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

type FakeConnection = Connection & { closed: boolean, generation: number | undefined }

/**
 * Fencing with its collaborators replaced by fakes, so that every ordering of
 * claim, announcement and close can be set up exactly, without timing.
 */
function harness () {
  const closes: Array<[string, number]> = []
  const announced: Array<[string, number]> = []
  const connections = new Map<string, FakeConnection>()
  const debugged: string[] = []
  const nextGeneration = 1000
  let stored = 0
  let claims = 0
  const gates: { listen?: Promise<void>, claim?: Promise<void>, refuseRelease?: boolean } = {}
  const generations = {
    claim: async () => {
      claims++
      // Like the claim script: newer than the stored generation. Stored at
      // once; a held claim is one whose answer is on its way back.
      const replaced = stored
      const generation = Math.max(stored + 1, nextGeneration)
      stored = generation
      await gates.claim
      return { generation, replaced }
    },
    stored: async () => stored,
    raise: async (_userId: string, generation: number) => {
      if (stored < generation) stored = generation
    },
    release: async (_userId: string, generation: number, replaced: number) => {
      if (gates.refuseRelease === true) throw new Error('release refused')
      // Compare-and-delete, or put back what its claim replaced.
      if (stored === generation) stored = replaced
    }
  } as unknown as Generations
  const hub = {
    connections: {
      forUser: (userId: string) => connections.get(userId),
      [Symbol.iterator]: () => connections.values()
    },
    close: (connection: FakeConnection, { code }: { code: number }) => {
      leave(connection)
      closes.push([connection.id, code])
    }
  } as unknown as Hub
  const fencing = new Fencing({
    generations,
    hub,
    listen: async () => { await gates.listen },
    announce: async (userId, generation) => { announced.push([userId, generation]) },
    log: { warn () {}, debug (_context: unknown, message: string) { debugged.push(message) } } as unknown as FastifyBaseLogger
  })
  // As the hub and node do it: out of the index (the node tells fencing), then closed.
  const leave = (connection: FakeConnection): void => {
    connections.delete(connection.userId)
    fencing.closed(connection)
    connection.closed = true
  }
  // A stand-in whose state a test can set directly (a real Connection changes only through its methods).
  const open = (id: string, userId: string, connectedAt = Date.now()): FakeConnection => {
    const connection = {
      id,
      userId,
      generation: undefined,
      closed: false,
      connectedAt,
      claimed (this: { generation?: number }, generation: number) { this.generation = generation }
    } as unknown as FakeConnection
    connections.set(userId, connection)
    return connection
  }
  const hold = (): (() => void) => {
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    return Object.assign(() => release(), { held })
  }
  return {
    fencing,
    open,
    leave,
    closes,
    announced,
    setStored: (value: number) => { stored = value },
    stored: () => stored,
    debugged,
    refuseRelease: () => { gates.refuseRelease = true },
    claims: () => claims,
    holdListen: () => { const release = hold(); gates.listen = (release as unknown as { held: Promise<void> }).held; return release },
    holdClaim: () => { const release = hold(); gates.claim = (release as unknown as { held: Promise<void> }).held; return release }
  }
}

t.test('a claim that replaced a stored generation announces its own: the older socket may still be open elsewhere', async (t) => {
  const h = harness()
  h.setStored(500)
  const connection = h.open('c1', 'u1')
  await h.fencing.claim(connection)
  t.equal(connection.generation, 1000)
  t.same(h.announced, [['u1', 1000]])
})

t.test('a claim that replaced none announces nothing: every earlier socket of the user took its generation back', async (t) => {
  const h = harness()
  const connection = h.open('c1', 'u1')
  await h.fencing.claim(connection)
  t.equal(connection.generation, 1000)
  t.same(h.announced, [])
})

t.test('a socket that replaced a generation and closes before announcing puts it back: the next claim announces to the older socket', async (t) => {
  const h = harness()
  // An older socket of the user, elsewhere, may still be open.
  h.setStored(500)
  const releaseListen = h.holdListen()
  const flapping = h.open('c1', 'u1')
  const claiming = h.fencing.claim(flapping)
  await nextTurn()
  t.equal(flapping.generation, 1000, 'claimed, replacing 500')
  h.leave(flapping)
  releaseListen()
  await claiming
  t.equal(h.stored(), 500, 'the replaced generation is back')
  t.same(h.announced, [], 'it never announced')
  const next = h.open('c2', 'u1')
  await h.fencing.claim(next)
  t.same(h.announced, [['u1', 1000]], 'the next socket finds it and announces')
})

t.test('a socket that closes takes its generation back, unless a newer claim replaced it', async (t) => {
  const h = harness()
  const first = h.open('c1', 'u1')
  await h.fencing.claim(first)
  h.leave(first)
  await nextTurn()
  t.equal(h.stored(), 0, 'taken back')

  const second = h.open('c2', 'u2')
  await h.fencing.claim(second)
  h.setStored(9000)
  h.leave(second)
  await nextTurn()
  t.equal(h.stored(), 9000, 'a newer generation stays')

  const h2 = harness()
  h2.refuseRelease()
  const third = h2.open('c3', 'u3')
  await h2.fencing.claim(third)
  h2.leave(third)
  await nextTurn()
  t.same(h2.debugged, ['fastify-realtime: generation release failed'], 'a release that Redis refuses is logged')
})

t.test('a newer generation announced while the claim is in flight closes the socket once the claim answers', async (t) => {
  const h = harness()
  const release = h.holdClaim()
  const connection = h.open('c1', 'u1')
  const claiming = h.fencing.claim(connection)
  h.fencing.onAnnounced('u1', 5000)
  h.fencing.onAnnounced('u1', 4000)
  release()
  await claiming
  t.same(h.closes, [['c1', 4500]])
  t.same(h.announced, [], 'a loser does not announce')
})

t.test('an older generation announced meanwhile changes nothing', async (t) => {
  const h = harness()
  h.setStored(5)
  const release = h.holdClaim()
  const connection = h.open('c1', 'u1')
  const claiming = h.fencing.claim(connection)
  h.fencing.onAnnounced('u1', 10)
  release()
  await claiming
  t.same(h.closes, [])
  t.same(h.announced, [['u1', 1000]])
  h.fencing.onAnnounced('u1', 999)
  t.same(h.closes, [], 'an older announcement after the claim does not close it either')
  h.fencing.onAnnounced('u1', 1001)
  t.same(h.closes, [['c1', 4500]], 'a newer one does')
  h.fencing.onAnnounced('nobody-here', 1)
  t.same(h.closes, [['c1', 4500]], 'one for a user with no socket here closes nothing')
})

t.test('a socket that closes while listening or while claiming never announces', async (t) => {
  const h = harness()
  h.setStored(5)
  const releaseListen = h.holdListen()
  const first = h.open('c1', 'u1')
  const listening = h.fencing.claim(first)
  h.leave(first)
  releaseListen()
  await listening
  t.equal(first.generation, undefined)
  t.same(h.announced, [])

  const h2 = harness()
  h2.setStored(5)
  const releaseClaim = h2.holdClaim()
  const second = h2.open('c2', 'u2')
  const claiming = h2.fencing.claim(second)
  await nextTurn()
  h2.leave(second)
  releaseClaim()
  await claiming
  t.equal(second.generation, undefined)
  t.same(h2.announced, [])
})

t.test('the claim is made at once, not after the node listens: generations follow the order in which connections came', async (t) => {
  const h = harness()
  h.setStored(5)
  const releaseListen = h.holdListen()
  const connection = h.open('c1', 'u1')
  const claiming = h.fencing.claim(connection)
  await nextTurn()
  t.equal(h.claims(), 1, 'claimed while the node is still subscribing')
  t.equal(connection.generation, 1000)
  t.same(h.announced, [], 'announced only once the node listens')
  releaseListen()
  await claiming
  t.same(h.announced, [['u1', 1000]])
})

t.test('a newer claim made before this node listened (its announcement unheard) closes the socket once the node listens', async (t) => {
  const h = harness()
  const releaseListen = h.holdListen()
  const connection = h.open('c1', 'u1')
  const claiming = h.fencing.claim(connection)
  await nextTurn()
  // Another node claims 5000 and announces it; this node does not listen yet and misses it.
  h.setStored(5000)
  releaseListen()
  await claiming
  t.same(h.closes, [['c1', 4500]])
  t.same(h.announced, [], 'a loser does not announce')
})

t.test('a socket that closed while its claim was in flight takes the claim back, unless a newer one replaced it', async (t) => {
  const h = harness()
  const releaseClaim = h.holdClaim()
  const gone = h.open('c1', 'u1')
  const claiming = h.fencing.claim(gone)
  await nextTurn()
  h.leave(gone)
  releaseClaim()
  await claiming
  t.equal(h.stored(), 0, 'its stale generation no longer stands over the user\'s newer socket')

  const h1 = harness()
  const releaseListen = h1.holdListen()
  const listening = h1.open('c1', 'u1')
  const listenClaiming = h1.fencing.claim(listening)
  await nextTurn()
  t.equal(listening.generation, 1000, 'claimed')
  h1.leave(listening)
  releaseListen()
  await listenClaiming
  t.equal(h1.stored(), 0, 'also when it closed after claiming, while its node was still subscribing')
  t.same(h1.announced, [])

  const h2 = harness()
  const releaseSecond = h2.holdClaim()
  const second = h2.open('c2', 'u2')
  const secondClaiming = h2.fencing.claim(second)
  await nextTurn()
  h2.leave(second)
  h2.setStored(7000)
  releaseSecond()
  await secondClaiming
  t.equal(h2.stored(), 7000, 'a newer generation stays')

  const h3 = harness()
  h3.refuseRelease()
  const releaseThird = h3.holdClaim()
  const third = h3.open('c3', 'u3')
  const thirdClaiming = h3.fencing.claim(third)
  h3.leave(third)
  releaseThird()
  await thirdClaiming
  t.same(h3.debugged, ['fastify-realtime: generation release failed'], 'a release that Redis refuses is logged')
})

t.test('repair: closes sockets older than the stored generation, claims for those without one unless a newer connection claimed', async (t) => {
  const h = harness()
  const older = h.open('c1', 'u1')
  await h.fencing.claim(older)
  const pending = h.open('c2', 'u2', Date.now() - 60_000)
  // u2's first claim failed; the stored generation (µs) is later than its connect time: a newer connection won.
  const newer = (Date.now() + 1000) * 1000
  h.setStored(newer)
  const unclaimed = h.open('c3', 'u3', Date.now() + 10_000_000)
  await h.fencing.repair()
  t.same(h.closes.sort(), [['c1', 4500], ['c2', 4500]])
  t.equal(unclaimed.generation, newer + 1, 'the socket with no newer rival claimed again')
  t.equal(pending.closed, true)
})

t.test('repair stores again the generation of an open socket whose key is gone or older; one closed meanwhile is left out', async (t) => {
  const h = harness()
  const connection = h.open('c1', 'u1')
  await h.fencing.claim(connection)
  // The key outlived its TTL, or Redis came back empty.
  h.setStored(0)
  await h.fencing.repair()
  t.equal(h.stored(), 1000, 'stored again')
  // Redis came back with an older socket's generation stored again first.
  h.setStored(900)
  await h.fencing.repair()
  t.equal(h.stored(), 1000, 'the newer one stands again, and the older socket\'s node closes it at its next repair')
  t.same(h.closes, [])
  h.setStored(0)
  const repairing = h.fencing.repair()
  h.leave(connection)
  await repairing
  t.equal(h.stored(), 0, 'a socket that closed while its key was read stores nothing')
})

t.test('repair leaves a socket whose claim is in flight alone, though the claim is already stored', async (t) => {
  const h = harness()
  h.setStored(5)
  const release = h.holdClaim()
  // Connected before any generation Redis could have claimed since: only its own claim explains the stored one.
  const connection = h.open('c1', 'u1', 0)
  const claiming = h.fencing.claim(connection)
  await h.fencing.repair()
  t.same(h.closes, [], 'not taken for a socket replaced by a newer connection')
  release()
  await claiming
  t.same(h.announced, [['u1', 1000]])
})

t.test('a second claim for a socket already claiming makes no second claim', async (t) => {
  const h = harness()
  const connection = h.open('c1', 'u1')
  await Promise.all([h.fencing.claim(connection), h.fencing.claim(connection)])
  t.equal(h.claims(), 1)
})
