/**
 * Positions in a stream and recovery as the client asks for it:
 * `recover=<channel>@<id>,<channel>@<id>,…` at the handshake (its last id, or
 * the position it was given, per channel), or `since` on a `subscribe`. Ids
 * are opaque to the client and use only `A-Z a-z 0-9 : _ -`.
 */

/** The query parameter of the handshake, kept out of band like the token. */
export const RECOVER_PARAM = 'recover'

/** Why a channel was answered `recovered: false`. */
export const RecoveryReason = {
  /** The id is no longer retained by its stream (trimmed to `history.size`, or expired). */
  TOO_OLD: 'too_old',
  /** The stream's history was lost since the id was issued (Redis restarted empty, flushed), or never held it. */
  EPOCH_CHANGED: 'epoch_changed',
  /** This gateway keeps no history (the `history` option is off). */
  HISTORY_OFF: 'history_off'
} as const
export type RecoveryReasonValue = typeof RecoveryReason[keyof typeof RecoveryReason]

/** What `connected.data.recovery` (and a `subscribed` with `since`) says for one channel. */
export type RecoveryOutcome = { recovered: true, replayed: number } | { recovered: false, reason: RecoveryReasonValue }

/**
 * Where an event sits in its stream. The epoch names one life of the stream
 * (it changes when the store lost the stream); offsets count its events from 1,
 * and offset 0 is the position of a stream with no event yet.
 */
export interface StreamPosition {
  readonly epoch: string
  readonly offset: number
}

/** Where a delivered event sits: its channel, its stream position, and the node awaiting its ack ('' for none). */
export interface EventPosition extends StreamPosition {
  readonly channel: string
  readonly ackNode: string
}

const POSITION_ID = /^[A-Za-z0-9:_-]{1,128}$/
const EVENT_ID = /^([A-Za-z0-9_-]{1,64}):(0|[1-9]\d{0,15})$/

/** The id clients see: `<epoch>:<offset>`. */
export function formatId (position: StreamPosition): string {
  return `${position.epoch}:${position.offset}`
}

/** The position an id names; undefined for a string no stream of this gateway issued. */
export function parseId (id: string): StreamPosition | undefined {
  const match = EVENT_ID.exec(id)
  if (match === null) return undefined
  const offset = Number(match[2])
  return Number.isSafeInteger(offset) ? { epoch: match[1], offset } : undefined
}

/**
 * The positions a `recover` value lists, by channel; undefined when it is
 * malformed (empty, an entry without `@`, a bad id, a channel listed twice)
 * or names a channel `isKnown` does not accept.
 */
export function parseRecover (value: string, isKnown: (channel: string) => boolean): Map<string, string> | undefined {
  const positions = new Map<string, string>()
  for (const entry of value.split(',')) {
    const at = entry.lastIndexOf('@')
    const channel = entry.slice(0, at)
    const id = entry.slice(at + 1)
    if (at <= 0 || !POSITION_ID.test(id) || positions.has(channel) || !isKnown(channel)) return undefined
    positions.set(channel, id)
  }
  return positions
}

/** The answer for a channel while history is off. */
export function notRecovered (): RecoveryOutcome {
  return { recovered: false, reason: RecoveryReason.HISTORY_OFF }
}
