// Load generator side of the recovery scenario: one plugin client per user
// that remembers the id of the last event it got, goes away, comes back with
// `recover=<channel>@<last id>`, and checks what it is sent: every event's
// `seq` (the publisher numbers each user's events 0, 1, 2, …) must be the next
// one expected, and its id the next offset of the user's stream. Messages are
// not JSON-parsed (only `connected` is): the fields are read off the Buffer.
import WebSocket from 'ws'
import { sleep } from './rpc.js'
import { pool, waitForProgress } from './pool.js'

const CONNECTED = Buffer.from('"event":"connected"')
const SUBSCRIBED = Buffer.from('"event":"subscribed"')
const BENCH = Buffer.from('{"event":"bench"')
const SEQ = Buffer.from('"seq":')
const ID = Buffer.from('"id":"')
const POSITION = Buffer.from('"position":"')

/** Per client: its token, the id (and seq) it would recover from, and the checks of the current expectation. */
const users = []
let channel = ''
let remaining = 0
let startNs = 0n
let lastDoneNs = 0n
let lastEventNs = 0n
const oddities = []

function note (text) {
  if (oddities.length < 10) oddities.push(text)
}

function readNumber (data, at) {
  let value = 0
  for (let index = at; index < data.length; index++) {
    const digit = data[index] - 48
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  return value
}

function readString (data, at) {
  const end = data.indexOf(34, at) // '"'
  return data.toString('latin1', at, end)
}

/**
 * Per user, how often each expected seq arrived: seqs `fromSeq`..`toSeq`
 * (none when `toSeq` < `fromSeq`).
 */
function resetChecks (user, fromSeq, toSeq) {
  const expectEach = Math.max(0, toSeq - fromSeq + 1)
  user.fromSeq = fromSeq
  user.expect = expectEach
  user.counts = new Uint8Array(expectEach)
  user.distinct = 0
  user.duplicates = 0
  user.reordered = 0
  user.extra = 0
  user.idJumps = 0
  user.highest = fromSeq - 1
  user.done = expectEach === 0
}

const RETRIES = 5

/** A client's pause before it tries again: 200–500 ms, as a phone would back off (Retry-After is 1 s; this is quicker). */
function backoff () {
  return sleep(200 + Math.random() * 300)
}

function onEvent (user, data) {
  lastEventNs = process.hrtime.bigint()
  const seqAt = data.indexOf(SEQ)
  const idAt = data.lastIndexOf(ID)
  if (seqAt === -1 || idAt === -1) {
    note(`user ${user.index}: an event without seq or id: ${data.toString('latin1', 0, 120)}`)
    return
  }
  const seq = readNumber(data, seqAt + SEQ.length)
  const id = readString(data, idAt + ID.length)
  const colon = id.lastIndexOf(':')
  const epoch = id.slice(0, colon)
  const offset = Number(id.slice(colon + 1))
  // One stream per user and nothing else published to it: ids follow each other.
  if (epoch !== user.epoch || offset !== user.offset + 1) {
    user.idJumps++
    if (user.idJumps === 1) note(`user ${user.index}: id ${id} after ${user.epoch}:${user.offset}`)
  }
  user.epoch = epoch
  user.offset = offset
  user.lastId = id
  user.lastSeq = seq
  const slot = seq - user.fromSeq
  if (slot < 0 || slot >= user.expect) {
    user.extra++
    if (user.extra === 1) note(`user ${user.index}: seq ${seq} outside ${user.fromSeq}..${user.fromSeq + user.expect - 1}`)
    return
  }
  if (user.counts[slot] > 0) {
    user.duplicates++
    if (user.duplicates === 1) note(`user ${user.index}: seq ${seq} twice`)
  } else {
    user.distinct++
    if (seq < user.highest) {
      user.reordered++
      if (user.reordered === 1) note(`user ${user.index}: seq ${seq} after ${user.highest}`)
    }
  }
  if (user.counts[slot] < 255) user.counts[slot]++
  if (seq > user.highest) user.highest = seq
  if (!user.done && user.distinct === user.expect) {
    user.done = true
    lastDoneNs = lastEventNs
    remaining--
  }
}

/**
 * Opens user `user`'s socket at `url`; resolves with the `connected` data
 * (parsed) once it arrives. Events after it (a replay arrives in the same
 * read) go through `onEvent` from the first one.
 */
function open (user, url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000 })
    user.ws = ws
    user.closing = false
    let connected = false
    ws.on('message', (data) => {
      if (data.indexOf(BENCH) === 0) return onEvent(user, data)
      if (!connected && data.indexOf(CONNECTED) !== -1) {
        connected = true
        return resolve(JSON.parse(data).data)
      }
      if (data.indexOf(SUBSCRIBED) !== -1) {
        const at = data.indexOf(POSITION)
        const position = at === -1 ? undefined : readString(data, at + POSITION.length)
        user.onSubscribed?.(position)
        return
      }
      note(`user ${user.index}: unexpected message ${data.toString('latin1', 0, 160)}`)
    })
    ws.on('unexpected-response', (request, response) => {
      reject(new Error(`HTTP ${response.statusCode}`))
      response.resume()
    })
    ws.on('error', (error) => reject(error))
    ws.on('close', (code) => {
      if (!connected) reject(new Error(`closed (${code}) before connected`))
      else if (!user.closing) {
        user.unexpectedClose = code
        note(`user ${user.index}: closed by the server (${code})`)
      }
    })
  })
}

export const recoveringClients = {
  /**
   * Opens one socket per token (client i is user i, on urls[i % urls.length]),
   * subscribes each to `channel` and keeps its `position` as the id to recover from.
   */
  async 'rc.connect' ({ urls, tokens, channel: name, concurrency }) {
    channel = name
    const list = tokens.map((token, index) => ({ index, token, node: index % urls.length }))
    const result = await pool(list, concurrency, async ({ index, token, node }) => {
      const user = { index, token, lastId: undefined, lastSeq: -1, epoch: undefined, offset: 0 }
      resetChecks(user, 0, -1)
      await open(user, `${urls[node]}?token=${token}`)
      const position = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no subscribed within 30 s')), 30_000)
        user.onSubscribed = (value) => {
          clearTimeout(timer)
          user.onSubscribed = undefined
          resolve(value)
        }
        user.ws.send(JSON.stringify({ event: 'subscribe', channel }))
      })
      if (position === undefined) throw new Error('subscribed without a position')
      user.lastId = position
      const colon = position.lastIndexOf(':')
      user.epoch = position.slice(0, colon)
      user.offset = Number(position.slice(colon + 1))
      users.push(user)
    })
    users.sort((a, b) => a.index - b.index)
    return { opened: users.length, ...result }
  },

  /**
   * From now on each user expects every event after the last one it got, up
   * to seq `toSeq` (a user that never got back last time also expects what it
   * missed then: its recover id is older).
   */
  'rc.expect' ({ toSeq }) {
    lastDoneNs = 0n
    startNs = process.hrtime.bigint()
    for (const user of users) resetChecks(user, user.lastSeq + 1, toSeq)
    remaining = users.filter((user) => !user.done).length
  },

  /** Every socket closed from this side (no close handshake); the users keep their last ids. */
  'rc.drop' () {
    for (const user of users) {
      user.closing = true
      user.ws.terminate()
    }
  },

  /**
   * All users reconnect at once, user i
   * to urls[(i + shift) % urls.length], with `recover=<channel>@<last id>`.
   * A refused handshake (503, a close before `connected` such as 4003) is
   * tried again after a short pause, up to RETRIES times, as a phone would.
   * Resolves when every socket got `connected` or gave up, with what they were told.
   */
  async 'rc.reconnect' ({ urls, shift = 0 }) {
    startNs = process.hrtime.bigint()
    const outcomes = {}
    const refused = {}
    let retried = 0
    let claimed = 0
    const result = await pool(users, users.length, async (user) => {
      const node = (user.index + shift) % urls.length
      const recover = encodeURIComponent(`${channel}@${user.lastId}`)
      const url = `${urls[node]}?token=${user.token}&recover=${recover}`
      let data
      for (let attempt = 1; data === undefined; attempt++) {
        try {
          data = await open(user, url)
        } catch (error) {
          refused[error.message] = (refused[error.message] ?? 0) + 1
          if (attempt > RETRIES) throw error
          retried++
          await backoff()
        }
      }
      const outcome = data.recovery?.[channel]
      const key = outcome === undefined ? 'missing' : outcome.recovered ? 'recovered' : outcome.reason
      outcomes[key] = (outcomes[key] ?? 0) + 1
      if (outcome?.recovered) claimed += outcome.replayed
      else note(`user ${user.index}: recovery ${JSON.stringify(outcome)}`)
    })
    return { connectedNs: String(process.hrtime.bigint() - startNs), outcomes, claimed, retried, refused, ...result }
  },

  /**
   * Waits until every user got its `count` events (or nothing arrived for
   * `idleMs`, or `timeoutMs` passed), then `settleMs` more for any event
   * sent twice; sums the checks.
   */
  async 'rc.wait' ({ timeoutMs = 60_000, idleMs = 3000, settleMs = 300 }) {
    // `remaining` falls in the message handlers, between the polls.
    await waitForProgress({ done: () => remaining <= 0, progress: () => lastEventNs, timeoutMs, idleMs, pollMs: 10 })
    await sleep(settleMs)
    const sum = (field) => users.reduce((total, user) => total + user[field], 0)
    const clean = (user) => user.done && user.duplicates === 0 && user.reordered === 0 && user.idJumps === 0 && user.extra === 0
    return {
      users: users.length,
      complete: users.filter(clean).length,
      received: sum('distinct'),
      expected: sum('expect'),
      missing: sum('expect') - sum('distinct'),
      duplicates: sum('duplicates'),
      reordered: sum('reordered'),
      idJumps: sum('idJumps'),
      extra: sum('extra'),
      closedByServer: users.filter((user) => user.unexpectedClose !== undefined).length,
      doneNs: remaining === 0 ? String(lastDoneNs - startNs) : null,
      oddities: [...oddities]
    }
  }
}
