import { FST_REALTIME_REDIS_UNAVAILABLE, FST_REALTIME_TOKEN_STORE_TIMEOUT } from '../errors.js'
import { type TokenState, isLive, normalizeUserId } from './token-store.js'

export type TokenLookup = (token: string) => Promise<TokenState | null> | TokenState | null

export type Resolution =
  | { outcome: 'valid', state: TokenState }
  | { outcome: 'invalid' }
  | { outcome: 'unavailable', error: Error }

export interface DeadlineResolverOptions {
  lookup: TokenLookup
  timeoutMs: number
  /** Answers false while the backing store is known to be down, so the handshake fails fast instead of queueing. */
  isAvailable: () => boolean
}

/**
 * Wraps a token lookup so that the handshake always answers in time: a store
 * that is down, frozen or throwing yields `unavailable` (503, never 401 — a
 * phone that sees 401 logs its user out), a lookup slower than `timeoutMs` too.
 */
export function createDeadlineResolver ({ lookup, timeoutMs, isAvailable }: DeadlineResolverOptions) {
  return async function resolveToken (token: string): Promise<Resolution> {
    if (!isAvailable()) return { outcome: 'unavailable', error: new FST_REALTIME_REDIS_UNAVAILABLE('client not ready') }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new FST_REALTIME_TOKEN_STORE_TIMEOUT(timeoutMs)), timeoutMs)
    })
    // A synchronous throw of a custom resolver lands in the same rejection path.
    const lookedUp = Promise.resolve(token).then(lookup)
    const resolution = await Promise.race([lookedUp, deadline]).then(toResolution, (error: Error): Resolution => ({ outcome: 'unavailable', error }))
    clearTimeout(timer)
    return resolution
  }
}

function toResolution (state: TokenState | null): Resolution {
  if (!isLive(state)) return { outcome: 'invalid' }
  return { outcome: 'valid', state: { userId: normalizeUserId(state.userId), expiresAt: state.expiresAt } }
}
