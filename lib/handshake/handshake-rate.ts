import { MessageRateLimit } from '../hub/message-rate-limit.js'

/**
 * `limits.handshakesPerSecond`: the node's handshakes drawn from one bucket
 * holding one second's worth, so a burst up to the rate passes at once and a
 * storm beyond it is refused before it costs a token lookup. 0 sets no rate.
 */
export function handshakeRate (perSecond: number): () => boolean {
  if (perSecond === 0) return () => true
  const bucket = new MessageRateLimit(perSecond, perSecond)
  return () => bucket.take()
}
