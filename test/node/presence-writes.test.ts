import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConnectionIndex } from '../../lib/hub/connection-index.js'
import type { Connection } from '../../lib/hub/connection.js'
import { RedisPresence } from '../../lib/node/presence.js'
import type { RedisClient } from '../../lib/redis/client.js'

/** A Redis client that records each pipeline it is asked to run, as lists of commands. */
function recordingRedis () {
  const pipelines: string[][] = []
  const client = {
    pipeline () {
      const commands: string[] = []
      const pipeline = {
        hset: (key: string, ...fields: string[]) => { commands.push(['HSET', key, ...fields].join(' ')); return pipeline },
        hdel: (key: string, ...fields: string[]) => { commands.push(['HDEL', key, ...fields].join(' ')); return pipeline },
        pexpire: (key: string, ms: number) => { commands.push(`PEXPIRE ${key} ${ms}`); return pipeline },
        exec: async () => { pipelines.push(commands); return [] }
      }
      return pipeline
    },
    del: async () => 0,
    zrem: async () => 0
  }
  return { redis: client as unknown as RedisClient, pipelines }
}

/** The part of a Connection that presence and the index use; describe() is reduced to the id. */
function fakeConnection (id: string, userId: string): Connection {
  return {
    id,
    userId,
    tokenDigest: `digest-${id}`,
    subscriptions: [],
    describe: () => ({ connection_id: id })
  } as unknown as Connection
}

/** How long the presence under test lets changes gather; `written()` waits past it. */
const WAIT_MS = 10
const written = async (): Promise<void> => { await sleep(WAIT_MS * 3) }

/** `wrapExec`: what a pipeline's `exec` does instead (given the recording one); `log`: the presence's logger. */
function setup ({ wrapExec, log = { debug () {} } as never }: { wrapExec?: (exec: () => Promise<unknown>) => () => Promise<unknown>, log?: never } = {}) {
  const connections = new ConnectionIndex()
  const { redis, pipelines } = recordingRedis()
  if (wrapExec !== undefined) {
    const pipeline = redis.pipeline.bind(redis)
    redis.pipeline = (() => {
      const recorder = pipeline()
      return Object.assign(recorder, { exec: wrapExec(recorder.exec.bind(recorder)) })
    }) as typeof redis.pipeline
  }
  const presence = new RedisPresence({ redis, keyPrefix: 'p:', nodeId: 'n1', connections, ttlMs: 1000, log, writeWaitMs: WAIT_MS })
  connections.listen({ added: (connection) => presence.opened(connection), removed: (connection) => presence.closed(connection) })
  return { connections, presence, pipelines }
}

t.test('sockets opened within the wait before a write are listed in one pipeline', async (t) => {
  const { connections, pipelines } = setup()
  for (const [id, user] of [['c1', 'alice'], ['c2', 'bob'], ['c3', 'carol']]) connections.add(fakeConnection(id, user))
  t.same(pipelines, [], 'nothing is written before the wait is over')
  await written()
  t.same(pipelines, [[
    'HSET p:node:{n1}:conns c1 {"connection_id":"c1"} c2 {"connection_id":"c2"} c3 {"connection_id":"c3"}',
    'PEXPIRE p:node:{n1}:conns 1000',
    'HSET p:node:{n1}:users alice c1 bob c2 carol c3',
    'PEXPIRE p:node:{n1}:users 1000'
  ]])
})

t.test('each entry is written as it stands when the write goes out', async (t) => {
  const { connections, pipelines } = setup()
  const first = fakeConnection('c1', 'alice')
  connections.add(first)
  connections.add(fakeConnection('c2', 'bob'))
  await written()
  pipelines.length = 0

  connections.remove(first)
  const brief = fakeConnection('c3', 'dave')
  connections.add(brief)
  connections.remove(brief)
  // Alice reconnects: her replacement is listed, the old socket and Dave's are only deleted.
  connections.add(fakeConnection('c4', 'alice'))
  await written()
  t.same(pipelines, [[
    'HDEL p:node:{n1}:conns c1 c3',
    'HDEL p:node:{n1}:users dave',
    'HSET p:node:{n1}:conns c4 {"connection_id":"c4"}',
    'PEXPIRE p:node:{n1}:conns 1000',
    'HSET p:node:{n1}:users alice c4',
    'PEXPIRE p:node:{n1}:users 1000'
  ]])
})

t.test('a node leaving drops the changes not yet written: nothing lists it again after it left', async (t) => {
  const { connections, presence, pipelines } = setup()
  connections.add(fakeConnection('c1', 'alice'))
  await presence.leave()
  await written()
  t.same(pipelines, [])
})

t.test('one write is in flight at a time: what changes meanwhile goes out together once it is answered', async (t) => {
  const answers: Array<() => void> = []
  const { connections, pipelines } = setup({
    wrapExec: (exec) => async () => { const results = await exec(); await new Promise<void>((resolve) => answers.push(resolve)); return results }
  })
  connections.add(fakeConnection('c1', 'alice'))
  await written()
  connections.add(fakeConnection('c2', 'bob'))
  await written()
  connections.add(fakeConnection('c3', 'carol'))
  await written()
  t.equal(pipelines.length, 1, 'the later sockets wait for the first write')
  answers[0]()
  await written()
  t.same(pipelines[1], [
    'HSET p:node:{n1}:conns c2 {"connection_id":"c2"} c3 {"connection_id":"c3"}',
    'PEXPIRE p:node:{n1}:conns 1000',
    'HSET p:node:{n1}:users bob c2 carol c3',
    'PEXPIRE p:node:{n1}:users 1000'
  ])
  answers[1]()
})

t.test('a write Redis refuses is logged at debug level', async (t) => {
  const debugged: string[] = []
  const log = { debug (context: { err: Error }, message: string) { debugged.push(`${message}: ${context.err.message}`) } } as never
  const { connections } = setup({ wrapExec: () => async () => { throw new Error('Redis is down') }, log })
  connections.add(fakeConnection('c1', 'alice'))
  await written()
  t.same(debugged, ['fastify-realtime: presence write failed: Redis is down'])
})
