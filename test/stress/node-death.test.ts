// Fast version of `npm run stress` node death: one of two nodes SIGKILLed
// while the other publishes to every user. With history on, the dead node's
// clients reconnect to the survivor and get every event once, or are told
// (recovered: false); the survivor's clients lose nothing; presence drops the
// dead node.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { uniquePrefix } from '../helpers/app.js'
import { startNodes, waitFor } from '../helpers/cluster.js'
import { Fleet } from '../helpers/stress.js'

const SOCKETS = 40
const CHANNEL = 'notification.events'
const HEARTBEAT_MS = 300
const HISTORY = { size: 256, ttlSeconds: 600 }

t.test('node death under load: the dead node\'s clients recover every event on the other node, or are told', async (t) => {
  const keyPrefix = uniquePrefix()
  const [survivor] = await startNodes(t, 1, { keyPrefix, heartbeat: { intervalMs: HEARTBEAT_MS }, history: HISTORY })
  const script = fileURLToPath(new URL('../helpers/cluster-node.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, script], {
    env: { ...process.env, KEY_PREFIX: keyPrefix, HEARTBEAT_MS: String(HEARTBEAT_MS), NODE_ID: 'doomed', HISTORY: JSON.stringify(HISTORY) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = await once(child.stdout, 'data') as [Buffer]
  const { port } = JSON.parse(line.toString())
  const fleet = new Fleet([survivor.port, port])
  t.teardown(() => fleet.close())
  const users = Array.from({ length: SOCKETS }, (_, index) => `death-${index}`)
  for (const [index, user] of users.entries()) {
    fleet.add(user, index % 2, async () => await survivor.app.realtime.tokens.issue(user, { ttlSeconds: 600 }), [CHANNEL])
  }
  await fleet.connected('every client connected')
  await waitFor(() => survivor.app.realtime.connections().filter((connection) => connection.subscriptions.includes(CHANNEL)).length === SOCKETS / 2, 'the survivor\'s clients subscribed')
  const liveNodes = async (): Promise<string[]> => [...new Set((await survivor.app.realtime.presence.connections()).map((entry) => entry.node_id))].sort()
  await waitFor(async () => (await liveNodes()).length === 2, 'both nodes in presence')

  // Publishes flow from the survivor, round-robin over every user, before, during and after the kill.
  const accepted = new Map<string, number[]>()
  let seq = 0
  const publishRound = async (): Promise<void> => {
    await Promise.all(users.map(async (user) => {
      const mine = seq++
      await survivor.app.realtime.publish(CHANNEL, 'death', { seq: mine }, { userId: user })
      accepted.set(user, [...accepted.get(user) ?? [], mine])
    }))
  }
  for (let round = 0; round < 3; round++) await publishRound()
  child.kill('SIGKILL')
  await once(child, 'exit')
  fleet.dead.add(port)
  for (let round = 0; round < 5; round++) {
    await publishRound()
    await sleep(20)
  }

  const victims = fleet.members.filter((member) => member.home === 1)
  const told = (member: typeof victims[number]): boolean => member.resyncs.some((resync) => resync.channel === CHANNEL)
  const complete = (member: typeof victims[number]): boolean => (accepted.get(member.user) ?? []).every((mine) => member.received.get(mine) === 1)
  await waitFor(() => victims.every((member) => member.connects >= 2 && member.client.state.state === 'connected'), 'the dead node\'s clients back')
  await waitFor(() => fleet.members.every((member) => complete(member) || told(member)), 'every client complete or told')
  await waitFor(async () => (await liveNodes()).join() === 'node-0', 'presence to drop the dead node')

  t.equal(survivor.app.realtime.connections().length, SOCKETS, 'every client on the survivor')
  t.same(fleet.members.filter((member) => !complete(member) && !told(member)).map((member) => member.user), [], 'no event missing at a client that was not told')
  const extra = fleet.members.flatMap((member) => [...member.received].filter(([mine, times]) => times !== 1 || !(accepted.get(member.user) ?? []).includes(mine)))
  t.same(extra, [], 'no event twice, none that was not published to that user')
  t.same(fleet.members.filter((member) => member.home === 0 && (member.connects !== 1 || told(member))).length, 0, 'the survivor\'s clients never dropped and were never told')
  t.same(victims.filter((member) => member.recoveries.length === 0).length, 0, 'every dead node\'s client reconnected with recover and got an answer')
  t.same(fleet.members.filter((member) => member.closed).length, 0, 'no client gave up')
})
