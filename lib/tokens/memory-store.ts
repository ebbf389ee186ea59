import {
  type TokenState, type TokenStore, checkToken, checkTtl, expiryAfter, hashToken, isLive, mintToken, normalizeUserId, nowSeconds
} from './token-store.js'

const SWEEP_INTERVAL_MS = 60_000

/**
 * Embedded-mode token state: same semantics as the Redis layout (hashed keys,
 * expiry, revocation), kept in one process. Expired entries are swept once a
 * minute so the map cannot grow with every token ever issued.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #states = new Map<string, TokenState>()
  readonly #sweeper: NodeJS.Timeout

  constructor () {
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS).unref()
  }

  async issue (userId: string | number, { ttlSeconds }: { ttlSeconds: number }): Promise<string> {
    const state = { userId: normalizeUserId(userId), expiresAt: expiryAfter(checkTtl(ttlSeconds), Date.now()) }
    const token = mintToken()
    this.#states.set(hashToken(token), state)
    return token
  }

  async revoke (token: string): Promise<string | undefined> {
    const key = hashToken(checkToken(token))
    const state = this.#states.get(key)
    this.#states.delete(key)
    return state?.userId
  }

  async resolve (token: string): Promise<TokenState | null> {
    return await this.resolveHash(hashToken(checkToken(token)))
  }

  readonly resolveHash = async (tokenHash: string): Promise<TokenState | null> => {
    const state = this.#states.get(tokenHash) ?? null
    return isLive(state) ? { ...state } : null
  }

  close (): void {
    clearInterval(this.#sweeper)
    this.#states.clear()
  }

  #sweep (): void {
    const now = nowSeconds()
    for (const [key, state] of this.#states) {
      if (state.expiresAt <= now) this.#states.delete(key)
    }
  }
}
