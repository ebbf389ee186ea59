import { monotonicMs } from '../hub/clock.js'
import { MessageRateLimit } from '../hub/message-rate-limit.js'

/** The longest a refused handshake is asked to wait; beyond it the clients' own backoff spreads them. */
const MAX_RETRY_AFTER_SECONDS = 30

/**
 * Whether a handshake may go on: 0 when it may, otherwise the whole seconds
 * it should wait (its `Retry-After`). `upgrade`: an upgrade request, as
 * opposed to a plain GET of the route.
 */
export type HandshakeAdmission = (upgrade: boolean) => number

/**
 * `limits.handshakesPerSecond`: the node's handshakes drawn from one bucket
 * holding one second's worth, so a burst up to the rate passes at once and a
 * storm beyond it is refused before it costs a token lookup. 0 sets no rate.
 *
 * A refused upgrade is told when there will be room for it: the upgrades
 * refused before it wait in front, let in at the rate. So the clients of a
 * storm come back spread over the seconds the node needs, instead of all
 * together after one second to be refused again.
 *
 * A plain GET is what the client SDK sends to learn why its connect failed
 * (a browser cannot see the status of a refused upgrade), so it stands for an
 * upgrade already counted in the queue, whose place it cannot name: refused,
 * it is told a wait drawn at random up to the end of the queue (SDK clients
 * then come back spread over the time the node needs, where telling each the
 * end would bring them all back at once), and adds none. While refused
 * upgrades wait, a GET is refused rather than take a place in the bucket
 * they wait for: its client would learn nothing from a 426 and lose its turn.
 */
export function handshakeRate (perSecond: number, clock: () => number = monotonicMs, random: () => number = Math.random): HandshakeAdmission {
  if (perSecond === 0) return () => 0
  const bucket = new MessageRateLimit(perSecond, perSecond, clock())
  const msPerHandshake = 1000 / perSecond
  // When every upgrade refused so far would have been let in, at the rate (the clock's ms).
  let queueDrainedAt = 0
  return (upgrade) => {
    const now = clock()
    const upgradesWaiting = queueDrainedAt > now
    if ((upgrade || !upgradesWaiting) && bucket.take(now)) return 0
    // No more than the longest wait is remembered: the ones told that come back on their own backoff anyway.
    queueDrainedAt = Math.min(now + MAX_RETRY_AFTER_SECONDS * 1000, Math.max(queueDrainedAt, now) + (upgrade ? msPerHandshake : 0))
    const waitMs = (queueDrainedAt - now) * (upgrade ? 1 : random())
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(waitMs / 1000)))
  }
}
