import type { StreamEntry, StreamRead } from '../broker/broker.js'
import type { ChannelScope } from '../channels/catalog.js'
import { frameText, type EncodedEvent } from '../protocol/server-event.js'
import { RecoveryReason, parseId, type RecoveryOutcome, type StreamPosition } from '../protocol/recovery.js'

/** Reads the streams a socket's channels live in: one per user (all its user channels), one per global channel. */
export interface HistoryReader {
  user: (userId: string, since: number | undefined) => Promise<StreamRead>
  global: (channel: string, since: number | undefined) => Promise<StreamRead>
}

export interface CatchUpRequest {
  userId: string
  /** The channels to give a position (and, for those in `since`, a replay). */
  channels: ReadonlyArray<{ name: string, scope: ChannelScope }>
  /** The client's last id per channel, for the channels it recovers. */
  since: ReadonlyMap<string, string>
  /** The user stream's newest position this node has seen for the socket, if any. */
  userTop: StreamPosition | undefined
  /** The newest position of a global stream this node has seen, if any. */
  globalTop: (channel: string) => StreamPosition | undefined
}

/** What a socket is told, and sent, before its live events resume. */
export interface CatchUp {
  /** Per channel of the request: the position after which live events follow. */
  positions: Map<string, StreamPosition>
  /** Per channel of `since`: recovered (with its count) or why not. */
  outcomes: Map<string, RecoveryOutcome>
  /** The missed events of the recovered channels, each stream in its order. */
  replay: EncodedEvent[]
  /** The stream positions read, for the node's and the socket's caches. */
  userTop: StreamPosition | undefined
  globalTops: Map<string, StreamPosition>
}

/**
 * Reads what a socket needs to catch up, each stream once: a user's channels
 * share one stream, read from the oldest id asked for. A channel is recovered
 * only if its stream still holds every event after its id (the retained
 * events are contiguous, so the first one tells); never a partial replay.
 */
export async function catchUp (reader: HistoryReader, request: CatchUpRequest): Promise<CatchUp> {
  const result: CatchUp = { positions: new Map(), outcomes: new Map(), replay: [], userTop: request.userTop, globalTops: new Map() }
  const userChannels = request.channels.filter((channel) => channel.scope === 'user').map((channel) => channel.name)
  const recoveringUser = userChannels.filter((name) => request.since.has(name))
  const readUser = recoveringUser.length > 0 || (userChannels.length > 0 && request.userTop === undefined)
  // Every stream is read at once; the answers are settled in a fixed order (the user's stream first).
  const globals = request.channels.filter((channel) => channel.scope === 'global').map(({ name }) => {
    const cached = request.globalTop(name)
    const readIt = request.since.has(name) || cached === undefined
    return { name, cached, read: readIt ? reader.global(name, oldestOffset([name], request.since)) : undefined }
  })
  const userRead = readUser ? reader.user(request.userId, oldestOffset(recoveringUser, request.since)) : undefined
  // A read that fails fails the catch-up; the others are still awaited, so no rejection goes unhandled.
  const [user, ...globalReads] = await Promise.all([userRead, ...globals.map((global) => global.read)])
  if (user === undefined) {
    for (const name of userChannels) result.positions.set(name, request.userTop as StreamPosition)
  } else {
    const top = { epoch: user.epoch, offset: user.top }
    result.userTop = top
    settle(result, user, recoveringUser, request.since)
    for (const name of userChannels) result.positions.set(name, top)
  }
  for (const [index, { name, cached }] of globals.entries()) {
    const read = globalReads[index]
    if (read === undefined) {
      result.positions.set(name, cached as StreamPosition)
      continue
    }
    const top = { epoch: read.epoch, offset: read.top }
    result.globalTops.set(name, top)
    result.positions.set(name, top)
    if (request.since.has(name)) settle(result, read, [name], request.since)
  }
  return result
}

/** The offset to read a stream from: the oldest one the channels ask for that is of a readable form. */
function oldestOffset (channels: string[], since: ReadonlyMap<string, string>): number | undefined {
  let oldest: number | undefined
  for (const name of channels) {
    const id = since.get(name)
    const position = id === undefined ? undefined : parseId(id)
    if (position !== undefined && (oldest === undefined || position.offset < oldest)) oldest = position.offset
  }
  return oldest
}

/** Judges each recovering channel of one stream, and queues the replay of the recovered ones in stream order. */
function settle (result: CatchUp, read: StreamRead, channels: string[], since: ReadonlyMap<string, string>): void {
  const from = new Map<string, number>()
  for (const name of channels) {
    const outcome = judge(read, parseId(since.get(name) as string))
    if (outcome.recovered) from.set(name, (parseId(since.get(name) as string) as StreamPosition).offset)
    result.outcomes.set(name, outcome)
  }
  for (const entry of read.entries) {
    const after = from.get(entry.channel)
    if (after === undefined || entry.offset <= after) continue
    result.replay.push(replayed(entry, read.epoch));
    (result.outcomes.get(entry.channel) as { replayed: number }).replayed++
  }
}

/**
 * Whether a stream still holds everything after `since`. `epoch_changed`:
 * the id is of another life of the stream, or one it never issued; `too_old`:
 * events after it were trimmed or expired.
 */
export function judge (read: StreamRead, since: StreamPosition | undefined): RecoveryOutcome {
  if (since === undefined || since.epoch !== read.epoch || since.offset > read.top) return { recovered: false, reason: RecoveryReason.EPOCH_CHANGED }
  const oldestRetained = read.entries.length > 0 ? read.entries[0].offset : read.top + 1
  if (since.offset + 1 < oldestRetained) return { recovered: false, reason: RecoveryReason.TOO_OLD }
  return { recovered: true, replayed: 0 }
}

function replayed (entry: StreamEntry, epoch: string): EncodedEvent {
  return {
    payload: entry.payload,
    frame: frameText(entry.payload),
    position: { channel: entry.channel, epoch, offset: entry.offset, ackNode: entry.ackNode }
  }
}
