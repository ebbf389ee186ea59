// The pure parts of history, recovery and acks, one subtest per unit.
import t from 'tap'
import type { StreamEntry, StreamRead } from '../../lib/broker/broker.js'
import { MemoryStreams, newEpoch } from '../../lib/broker/memory-streams.js'
import { catchUp, judge, type CatchUpRequest, type HistoryReader } from '../../lib/hub/recovery.js'
import { StreamPositions, newer } from '../../lib/hub/stream-positions.js'
import { AckWaiters } from '../../lib/node/acks.js'
import { decodeMessage, encodeAckMessage, encodeEventMessage, streamEventHeader, topicsFor } from '../../lib/node/wire.js'
import { formatId, notRecovered, parseId } from '../../lib/protocol/recovery.js'
import { eventTemplate } from '../../lib/protocol/server-event.js'
import { normalizeOptions } from '../../lib/options.js'

const E = 'epochAAA'

t.test('parseId / formatId: only ids of the form <epoch>:<offset> with a safe integer offset', async (t) => {
  t.strictSame(parseId(`${E}:0`), { epoch: E, offset: 0 })
  t.strictSame(parseId('a_b-C9:42'), { epoch: 'a_b-C9', offset: 42 })
  t.strictSame(parseId(`${E}:9007199254740991`), { epoch: E, offset: Number.MAX_SAFE_INTEGER })
  for (const id of ['', E, `${E}:`, ':1', `${E}:01`, `${E}:-1`, `${E}:1.5`, `${E}:1e3`, 'a b:1', `${E}:1:2`, `${'x'.repeat(65)}:1`,
    `${E}:12345678901234567`, `${E}:9007199254740993`]) {
    t.equal(parseId(id), undefined, JSON.stringify(id))
  }
  t.equal(formatId({ epoch: E, offset: 7 }), `${E}:7`)
  t.strictSame(parseId(formatId({ epoch: E, offset: 7 })), { epoch: E, offset: 7 })
  t.strictSame(notRecovered(), { recovered: false, reason: 'history_off' })
})

const entry = (offset: number, channel = 'a'): StreamEntry => ({ offset, channel, payload: Buffer.from(`{"n":${offset}}`), ackNode: '' })
const stream = (top: number, offsets: number[], epoch = E, channel = 'a'): StreamRead => ({ epoch, top, entries: offsets.map((offset) => entry(offset, channel)) })

t.test('judge: recovered only if the stream holds every event after the id', async (t) => {
  const at = (offset: number, epoch = E) => ({ epoch, offset })
  const cases: Array<[string, StreamRead, ReturnType<typeof at> | undefined, unknown]> = [
    ['an id no stream issued', stream(10, [5, 6]), undefined, { recovered: false, reason: 'epoch_changed' }],
    ['another life of the stream', stream(10, [5, 6]), at(7, 'epochBBB'), { recovered: false, reason: 'epoch_changed' }],
    ['past the top: never issued by this life', stream(10, []), at(11), { recovered: false, reason: 'epoch_changed' }],
    ['at the top of an emptied stream', stream(10, []), at(10), { recovered: true, replayed: 0 }],
    ['before the top of an emptied stream', stream(10, []), at(9), { recovered: false, reason: 'too_old' }],
    ['just before the oldest retained', stream(10, [5, 6, 7, 8, 9, 10]), at(4), { recovered: true, replayed: 0 }],
    ['two before the oldest retained', stream(10, [5, 6, 7, 8, 9, 10]), at(3), { recovered: false, reason: 'too_old' }],
    ['a fresh stream at 0', stream(0, []), at(0), { recovered: true, replayed: 0 }]
  ]
  for (const [name, read, since, expected] of cases) t.strictSame(judge(read, since), expected, name)
})

/** A reader over fixed streams that records each read. */
function reader (streams: { user?: StreamRead, global?: Record<string, StreamRead> }): { reader: HistoryReader, reads: string[] } {
  const reads: string[] = []
  const slice = (read: StreamRead, since: number | undefined): StreamRead =>
    ({ ...read, entries: since === undefined ? [] : read.entries.filter((candidate) => candidate.offset > since) })
  return {
    reads,
    reader: {
      user: async (userId, since) => { reads.push(`user ${userId} ${String(since)}`); return slice(streams.user as StreamRead, since) },
      global: async (channel, since) => { reads.push(`global ${channel} ${String(since)}`); return slice((streams.global as Record<string, StreamRead>)[channel], since) }
    }
  }
}

const request = (overrides: Partial<CatchUpRequest>): CatchUpRequest => ({
  userId: 'u',
  channels: [],
  since: new Map(),
  userTop: undefined,
  globalTop: () => undefined,
  ...overrides
})

t.test('catchUp: one read per stream, from the oldest id asked; each channel judged and replayed from its own id', async (t) => {
  const user: StreamRead = { epoch: E, top: 10, entries: [5, 6, 7, 8, 9, 10].map((offset) => entry(offset, offset % 2 === 0 ? 'pay' : 'kyc')) }
  const { reader: history, reads } = reader({ user })
  const result = await catchUp(history, request({
    channels: [{ name: 'pay', scope: 'user' }, { name: 'kyc', scope: 'user' }, { name: 'card', scope: 'user' }, { name: 'bad', scope: 'user' }],
    since: new Map([['pay', `${E}:6`], ['kyc', `${E}:2`], ['bad', 'not-an-id']])
  }))
  t.strictSame(reads, ['user u 2'], 'read once, from the oldest readable id')
  t.strictSame(Object.fromEntries(result.outcomes), {
    pay: { recovered: true, replayed: 2 },
    kyc: { recovered: false, reason: 'too_old' },
    bad: { recovered: false, reason: 'epoch_changed' }
  })
  t.strictSame(result.replay.map((event) => [event.position?.channel, event.position?.offset, event.payload.toString()]), [
    ['pay', 8, '{"n":8}'], ['pay', 10, '{"n":10}']
  ], 'only the recovered channel, after its id, in stream order')
  t.strictSame(result.replay[0].frame, Buffer.concat([Buffer.from([0x81, 7]), Buffer.from('{"n":8}')]), 'framed once, ready to write')
  t.strictSame(Object.fromEntries(result.positions), { pay: { epoch: E, offset: 10 }, kyc: { epoch: E, offset: 10 }, card: { epoch: E, offset: 10 }, bad: { epoch: E, offset: 10 } })
  t.strictSame(result.userTop, { epoch: E, offset: 10 })
})

t.test('catchUp: known tops are used without a read; unknown ones are read', async (t) => {
  const top = { epoch: E, offset: 3 }
  const { reader: history, reads } = reader({ user: stream(9, []), global: { settings: stream(4, [3, 4], 'epochGGG', 'settings'), news: stream(2, [1, 2], 'epochNNN', 'news') } })
  const known = await catchUp(history, request({
    channels: [{ name: 'pay', scope: 'user' }, { name: 'settings', scope: 'global' }],
    userTop: top,
    globalTop: (channel) => channel === 'settings' ? { epoch: 'epochGGG', offset: 4 } : undefined
  }))
  t.strictSame(reads, [], 'nothing to read')
  t.strictSame(Object.fromEntries(known.positions), { pay: top, settings: { epoch: 'epochGGG', offset: 4 } })
  t.strictSame([known.userTop, known.globalTops.size, known.outcomes.size, known.replay.length], [top, 0, 0, 0])

  const read = await catchUp(history, request({
    channels: [{ name: 'pay', scope: 'user' }, { name: 'settings', scope: 'global' }, { name: 'news', scope: 'global' }],
    since: new Map([['settings', 'epochGGG:2']])
  }))
  t.strictSame(reads.sort(), ['global news undefined', 'global settings 2', 'user u undefined'])
  t.strictSame(Object.fromEntries(read.positions), { pay: { epoch: E, offset: 9 }, settings: { epoch: 'epochGGG', offset: 4 }, news: { epoch: 'epochNNN', offset: 2 } })
  t.strictSame(Object.fromEntries(read.globalTops), { settings: { epoch: 'epochGGG', offset: 4 }, news: { epoch: 'epochNNN', offset: 2 } })
  t.strictSame(Object.fromEntries(read.outcomes), { settings: { recovered: true, replayed: 2 } })
  t.strictSame(read.replay.map((event) => event.position), [
    { channel: 'settings', epoch: 'epochGGG', offset: 3, ackNode: '' }, { channel: 'settings', epoch: 'epochGGG', offset: 4, ackNode: '' }
  ])
})

t.test('catchUp: a global channel recovered with an id of no readable form reads the whole stream state and is epoch_changed', async (t) => {
  const { reader: history, reads } = reader({ global: { settings: stream(4, [3, 4]) } })
  const result = await catchUp(history, request({ channels: [{ name: 'settings', scope: 'global' }], since: new Map([['settings', 'garbage']]) }))
  t.strictSame(reads, ['global settings undefined'])
  t.strictSame(Object.fromEntries(result.outcomes), { settings: { recovered: false, reason: 'epoch_changed' } })
  t.strictSame(result.replay, [])
})

const at = (channel: string, offset: number, epoch = E, ackNode = ''): { channel: string, epoch: string, offset: number, ackNode: string } => ({ channel, epoch, offset, ackNode })

t.test('StreamPositions: each event once per channel, nothing before the position, a new epoch always taken', async (t) => {
  const positions = new StreamPositions()
  t.equal(positions.positionOf('pay'), undefined)
  t.equal(positions.take(at('pay', 3)), true, 'first event of the channel')
  t.equal(positions.take(at('pay', 3)), false, 'the same again')
  t.equal(positions.take(at('pay', 2)), false, 'an older one')
  t.equal(positions.take(at('kyc', 2)), true, 'another channel has its own position')
  t.equal(positions.take(at('pay', 4)), true)
  t.strictSame(positions.positionOf('pay'), at('pay', 4))
  t.equal(positions.take(at('pay', 1, 'epochBBB')), true, 'a new life of the stream')
  positions.place('pay', { epoch: 'epochBBB', offset: 10 })
  t.equal(positions.take(at('pay', 10, 'epochBBB')), false, 'placed: up to 10 is had')
  t.equal(positions.take(at('pay', 11, 'epochBBB')), true)
  positions.forget('pay')
  t.equal(positions.positionOf('pay'), undefined)
  t.equal(positions.take(at('pay', 5, 'epochBBB')), true, 'forgotten: anything goes again')
})

t.test('StreamPositions: cumulative acks of what was sent return the awaited events they cover', async (t) => {
  const positions = new StreamPositions()
  t.strictSame(positions.ack('pay', { epoch: E, offset: 1 }), [], 'nothing sent on the channel')
  positions.take(at('pay', 1, E, 'node-a'))
  positions.take(at('pay', 2))
  positions.take(at('pay', 3, E, 'node-b'))
  positions.take(at('kyc', 4, E, 'node-a'))
  t.strictSame(positions.ack('pay', { epoch: E, offset: 4 }), [], 'not sent that far on pay')
  t.strictSame(positions.ack('pay', { epoch: 'epochBBB', offset: 1 }), [], 'another life')
  t.strictSame(positions.ack('pay', { epoch: E, offset: 2 }), [at('pay', 1, E, 'node-a')])
  t.strictSame(positions.acked(), { pay: `${E}:2` })
  t.strictSame(positions.ack('pay', { epoch: E, offset: 2 }), [], 'acked already')
  t.strictSame(positions.ack('pay', { epoch: E, offset: 1 }), [], 'older than the last ack')
  t.strictSame(positions.ack('pay', { epoch: E, offset: 3 }), [at('pay', 3, E, 'node-b')])
  positions.forget('kyc')
  positions.take(at('kyc', 5))
  t.strictSame(positions.ack('kyc', { epoch: E, offset: 5 }), [], 'forgotten awaited events are not reported')
  t.strictSame(positions.acked(), { pay: `${E}:3`, kyc: `${E}:5` })
})

t.test('StreamPositions: at most 1024 awaited events per socket, the oldest give way', async (t) => {
  const positions = new StreamPositions()
  for (let offset = 1; offset <= 1030; offset++) positions.take(at('pay', offset, E, 'node-a'))
  const acked = positions.ack('pay', { epoch: E, offset: 1030 })
  t.equal(acked.length, 1024)
  t.strictSame([acked[0].offset, acked[1023].offset], [7, 1030])
})

t.test('StreamPositions: the user stream\'s top, and newer()', async (t) => {
  const positions = new StreamPositions()
  t.equal(positions.userTop, undefined)
  positions.noteUserTop({ epoch: E, offset: 5 })
  positions.noteUserTop({ epoch: E, offset: 3 })
  t.strictSame(positions.userTop, { epoch: E, offset: 5 }, 'an older one does not win')
  positions.noteUserTop({ epoch: 'epochBBB', offset: 1 })
  t.strictSame(positions.userTop, { epoch: 'epochBBB', offset: 1 }, 'a new life replaces it')
  t.strictSame(newer(undefined, { epoch: E, offset: 1 }), { epoch: E, offset: 1 })
  t.strictSame(newer({ epoch: E, offset: 2 }, { epoch: E, offset: 2 }), { epoch: E, offset: 2 })
})

t.test('MemoryStreams: ids, the payload and message around them, trimming to size', async (t) => {
  const streams = new MemoryStreams({ size: 3, ttlSeconds: 60, metaTtlSeconds: 60, readTimeoutMs: 5000 })
  t.teardown(() => streams.close())
  const append = (channel: string, json: string, ackNode = '') => streams.append({
    stream: 's', channel, payload: eventTemplate(json), header: streamEventHeader(channel, 1000, ackNode), ackNode
  })
  const empty = streams.read('s', undefined)
  t.match(empty.epoch, /^[A-Za-z0-9_-]{8}$/)
  t.strictSame([empty.top, empty.entries], [0, []])
  const first = append('pay', '{"event":"E","channel":"pay","data":{}}', 'node-a')
  t.equal(first.id, `${empty.epoch}:1`)
  t.equal(first.message.toString(), `E1000 pay ${first.id} node-a\n{"event":"E","channel":"pay","data":{},"id":"${first.id}"}`)
  for (let index = 0; index < 4; index++) append('kyc', '{"event":"E","channel":"kyc","data":{}}')
  const read = streams.read('s', 0)
  t.strictSame([read.epoch, read.top], [empty.epoch, 5])
  t.strictSame(read.entries.map((kept) => [kept.offset, kept.channel, kept.ackNode]), [[3, 'kyc', ''], [4, 'kyc', ''], [5, 'kyc', '']], 'the last 3')
  t.equal(read.entries[0].payload.toString(), `{"event":"E","channel":"kyc","data":{},"id":"${empty.epoch}:3"}`)
  t.strictSame(streams.read('s', 4).entries.map((kept) => kept.offset), [5])
  t.strictSame(streams.read('s', undefined).entries, [], 'no since: the state only')
  t.strictSame(streams.read('other', 0).top, 0, 'streams are apart')
  t.not(newEpoch(), newEpoch())
})

t.test('MemoryStreams: a stream expires whole ttlSeconds after its last append, and the sweep forgets it', async (t) => {
  let now = 1_000_000
  t.capture(Date, 'now', () => now)
  const sweeps: Array<() => void> = []
  t.capture(globalThis, 'setInterval', ((callback: () => void) => { sweeps.push(callback); return { unref: () => {} } }) as unknown as typeof setInterval)
  t.capture(globalThis, 'clearInterval', () => {})
  const streams = new MemoryStreams({ size: 10, ttlSeconds: 2, metaTtlSeconds: 2, readTimeoutMs: 5000 })
  t.equal(sweeps.length, 1, 'one sweep timer for all streams')
  const append = (name: string) => streams.append({ stream: name, channel: 'pay', payload: eventTemplate('{"a":1}'), header: streamEventHeader('pay', 1, ''), ackNode: '' })
  const kept = append('kept')
  const swept = append('swept')
  now += 1999
  append('kept')
  t.equal(streams.read('swept', 0).epoch, swept.id.split(':')[0], 'alive until its TTL has passed')
  now += 1
  sweeps[0]()
  t.equal(streams.read('kept', 0).top, 2, 'appended since: still there')
  t.equal(streams.read('kept', 0).epoch, kept.id.split(':')[0])
  const after = streams.read('swept', 0)
  t.not(after.epoch, swept.id.split(':')[0], 'a new life')
  t.strictSame([after.top, after.entries], [0, []])
  now += 2000
  t.not(streams.read('kept', 0).epoch, kept.id.split(':')[0], 'expired at read, before any sweep')
  streams.close()
})

t.test('AckWaiters: resolved by an ack covering the event, false at the timeout or at once', async (t) => {
  const latencies: number[] = []
  let timeouts = 0
  const waiters = new AckWaiters({ onAcked: (seconds) => latencies.push(seconds), onTimeout: () => { timeouts++ } })
  const first = waiters.expect('u', 'pay')
  const second = waiters.expect('u', 'pay')
  const other = waiters.expect('u', 'kyc')
  const firstDone = first.known(`${E}:2`, 60_000)
  const secondDone = second.known(`${E}:3`, 60_000)
  const otherDone = other.known(`${E}:4`, 20)
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:1` })
  waiters.acked({ userId: 'u', channel: 'pay', id: 'garbage' })
  waiters.acked({ userId: 'v', channel: 'pay', id: `${E}:9` })
  waiters.acked({ userId: 'u', channel: 'pay', id: 'epochBBB:9' })
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:2` })
  t.equal(await firstDone, true)
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:5` })
  t.equal(await secondDone, true)
  t.equal(await otherDone, false, 'another channel: the timeout')
  t.equal(latencies.length, 2)
  t.ok(latencies.every((seconds) => seconds >= 0))
  t.equal(timeouts, 1)
  t.equal(await waiters.expect('u', 'pay').known(`${E}:6`, 0), false, 'no time to wait')
  t.equal(timeouts, 2)
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:9` })
  t.equal(timeouts, 2, 'a late ack settles nothing twice')
})

t.test('AckWaiters: an ack that comes before the publish answered counts', async (t) => {
  const waiters = new AckWaiters({ onAcked: () => {}, onTimeout: () => {} })
  const early = waiters.expect('u', 'pay')
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:7` })
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:5` })
  t.equal(await early.known(`${E}:7`, 60_000), true, 'the newest early ack is kept')
  const tooEarly = waiters.expect('u', 'pay')
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:3` })
  t.equal(await tooEarly.known(`${E}:8`, 20), false, 'an early ack of an older event does not')
})

t.test('AckWaiters: a wait ends once, even when its id is given twice', async (t) => {
  let timeouts = 0
  const waiters = new AckWaiters({ onAcked: () => {}, onTimeout: () => { timeouts++ } })
  const wait = waiters.expect('u', 'pay')
  const first = wait.known(`${E}:1`, 40)
  t.equal(await wait.known(`${E}:1`, 10), false)
  t.equal(await first, false)
  // The first timer fires after the wait has ended.
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(timeouts, 1)
})

t.test('AckWaiters: cancel and close', async (t) => {
  let timeouts = 0
  const waiters = new AckWaiters({ onAcked: () => t.fail('nothing is acked'), onTimeout: () => { timeouts++ } })
  // A publish that failed: its wait is dropped, and an ack finds nothing.
  waiters.expect('u', 'pay').cancel()
  waiters.acked({ userId: 'u', channel: 'pay', id: `${E}:1` })
  const stale = waiters.expect('u', 'card')
  t.equal(await stale.known(`${E}:1`, 0), false)
  const fresh = waiters.expect('u', 'card')
  // The stale waiter's set is gone; cancelling it leaves the fresh one's alone.
  stale.cancel()
  const freshDone = fresh.known(`${E}:2`, 60_000)
  const closedEarly = waiters.expect('u', 'kyc')
  waiters.close()
  t.equal(await freshDone, false, 'the close ends the wait')
  t.equal(await closedEarly.known(`${E}:1`, 60_000), false, 'closed before the publish answered')
  t.equal(timeouts, 3)
  waiters.acked({ userId: 'u', channel: 'card', id: `${E}:2` })
})

t.test('wire: event headers with and without id and ack node, acks, and what is malformed', async (t) => {
  const payload = '{"event":"E","channel":"pay","data":{}}'
  t.strictSame(decodeMessage(encodeEventMessage('pay', payload, 1234)), {
    kind: 'event', channel: 'pay', payload: Buffer.from(payload), publishedAt: 1234, id: undefined, ackNode: undefined
  })
  const header = (ackNode: string) => streamEventHeader('pay', 1234, ackNode)
  t.strictSame(header(''), { head: 'E1234 pay ', tail: '\n' })
  t.strictSame(header('node-a'), { head: 'E1234 pay ', tail: ' node-a\n' })
  const withAck = Buffer.from(`${header('node-a').head}${E}:3${header('node-a').tail}${payload}`)
  t.strictSame(decodeMessage(withAck), { kind: 'event', channel: 'pay', payload: Buffer.from(payload), publishedAt: 1234, id: `${E}:3`, ackNode: 'node-a' })
  const withId = Buffer.from(`${header('').head}${E}:3${header('').tail}${payload}`)
  t.strictSame(decodeMessage(withId), { kind: 'event', channel: 'pay', payload: Buffer.from(payload), publishedAt: 1234, id: `${E}:3`, ackNode: undefined })
  t.strictSame(decodeMessage(Buffer.from(`Enever pay\n${payload}`)), { kind: 'event', channel: 'pay', payload: Buffer.from(payload), publishedAt: undefined, id: undefined, ackNode: undefined })

  const ack = { userId: 'u', channel: 'pay', id: `${E}:3` }
  t.strictSame(decodeMessage(encodeAckMessage(ack)), { kind: 'ack', ack })
  t.strictSame(decodeMessage(Buffer.from('C{"type":"revoke","tokenHash":"h"}')), { kind: 'control', control: { type: 'revoke', tokenHash: 'h' } })
  t.strictSame(decodeMessage(Buffer.from('C{"type":"revoke","tokenHash":"h","userId":"u"}')), { kind: 'control', control: { type: 'revoke', tokenHash: 'h', userId: 'u' } })
  const disconnect = { type: 'disconnect', userId: 'u', code: 4502, reason: 'r', finalEvent: '{}', publishedAt: 1 }
  t.strictSame(decodeMessage(Buffer.from(`C${JSON.stringify(disconnect)}`)), { kind: 'control', control: disconnect })
  t.strictSame(decodeMessage(Buffer.from('C{"type":"takeover","userId":"u","generation":7}')), { kind: 'control', control: { type: 'takeover', userId: 'u', generation: 7 } })
  // Control messages a backend got wrong: a field missing or of another type, or an unknown type.
  for (const text of ['C{"type":"revoke"}', 'C{"type":"revoke","token_hash":"h"}', 'C{"type":"revoke","tokenHash":7}', 'C{"type":"revoke","tokenHash":"h","userId":1}',
    'C{"type":"takeover","userId":"u"}', 'C{"type":"takeover","userId":"u","generation":"7"}',
    'C{"type":"disconnect","userId":"u","code":"4502","reason":""}', 'C{"type":"disconnect","userId":"u","code":4502}', 'C{"type":"disconnect","userId":"u","code":4502,"reason":"","finalEvent":{}}',
    'C{"type":"disconnect","userId":"u","code":4502,"reason":"","publishedAt":"1"}', 'C{"type":"explode"}']) {
    t.strictSame(decodeMessage(Buffer.from(text)), { kind: 'malformed' }, text)
  }
  for (const text of ['E1234 pay', 'E1234 \n{}', 'E\n{}', 'A{"userId":"u","channel":"pay"}', 'A{"userId":"u","channel":"pay","id":3}', 'A{"userId":1,"channel":"pay","id":"x"}',
    'Anull', 'A{not json', 'A{"type":"revoke"}', 'C{"userId":"u","channel":"pay","id":"x"}', 'Cnull', 'C"text"', 'P123', '', 'X']) {
    t.strictSame(decodeMessage(Buffer.from(text)), { kind: 'malformed' }, JSON.stringify(text))
  }
})

t.test('wire: topics and streams share the hash tag of their user or channel', async (t) => {
  const topics = topicsFor('p:')
  t.equal(topics.user('u1'), 'p:u:{u1}')
  t.equal(topics.userStream('u1'), 'p:stream:u:{u1}')
  t.equal(topics.global('settings'), 'p:c:{settings}')
  t.equal(topics.globalStream('settings'), 'p:stream:c:{settings}')
  t.equal(topics.node('n1'), 'p:n:n1')
  t.equal(topics.userOf('p:u:{u1}'), 'u1')
  t.equal(topics.userOf('p:u:{u1'), undefined)
  t.equal(topics.userOf('p:c:{settings}'), undefined)
  t.strictSame(eventTemplate('{"event":"E","channel":"pay","data":{}}'), { head: '{"event":"E","channel":"pay","data":{},"id":"', tail: '"}' })
})

t.test('the history option: off unless given, its defaults filled when given, an epoch that must outlive its events', async (t) => {
  t.equal(normalizeOptions({}).history, undefined)
  t.strictSame(normalizeOptions({ history: {} }).history, { size: 256, ttlSeconds: 600, metaTtlSeconds: 30 * 24 * 3600, readTimeoutMs: 5000 })
  t.strictSame(normalizeOptions({ history: { size: 5, ttlSeconds: 1 } }).history, { size: 5, ttlSeconds: 1, metaTtlSeconds: 30 * 24 * 3600, readTimeoutMs: 5000 })
  t.strictSame(normalizeOptions({ history: { ttlSeconds: 60, metaTtlSeconds: 60 } }).history, { size: 256, ttlSeconds: 60, metaTtlSeconds: 60, readTimeoutMs: 5000 })
  t.throws(() => normalizeOptions({ history: { ttlSeconds: 60, metaTtlSeconds: 59 } }), {
    code: 'FST_REALTIME_INVALID_OPTION',
    message: /history\.metaTtlSeconds.*must be at least history\.ttlSeconds/
  })
  t.strictSame(normalizeOptions({}).limits.acksPerSecond, 1000)
})
