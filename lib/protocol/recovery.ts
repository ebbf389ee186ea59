/**
 * Recovery as the client asks for it: `recover=<channel>@<id>,<channel>@<id>,…`
 * at the handshake (its last id, or the position it was given, per channel),
 * or `since` on a `subscribe`. Ids are opaque to the client and use only
 * `A-Z a-z 0-9 : _ -`.
 */

/** The query parameter of the handshake, kept out of band like the token. */
export const RECOVER_PARAM = 'recover'

/** Why a channel was answered `recovered: false`. */
export const RecoveryReason = {
  /** This gateway keeps no history (the `history` option is off). */
  HISTORY_OFF: 'history_off'
} as const

const POSITION_ID = /^[A-Za-z0-9:_-]{1,128}$/

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

/** What `connected.data.recovery` (and a `subscribed` with `since`) says for a channel while history is off. */
export function notRecovered (): { recovered: false, reason: string } {
  return { recovered: false, reason: RecoveryReason.HISTORY_OFF }
}
