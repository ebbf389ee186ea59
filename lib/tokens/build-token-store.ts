import { FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED } from '../errors.js'
import type { RedisClient } from '../redis/client.js'
import { MemoryTokenStore } from './memory-store.js'
import { RedisTokenStore, type RedisTokenStoreOptions } from './redis-store.js'
import { type TokenLookup } from './resolve-with-deadline.js'
import { type TokenState, type TokenStore, checkToken, isLive, normalizeUserId } from './token-store.js'

/**
 * The options the store is picked by, under their names in the plugin's
 * options. Declared here rather than imported from the options module, which
 * depends on this folder for `TokenState`: the dependency stays one way.
 */
export interface TokenStoreOptions {
  keyPrefix: string
  tokens: Omit<RedisTokenStoreOptions, 'keyPrefix'> & { resolver?: TokenLookup }
}

/**
 * Picks the token store for the mode: a custom resolver if the user gave one,
 * Redis in cluster mode, memory otherwise.
 */
export function buildTokenStore (options: TokenStoreOptions, redis: RedisClient | undefined): TokenStore {
  if (options.tokens.resolver !== undefined) return new ResolverTokenStore(options.tokens.resolver)
  if (redis !== undefined) {
    const { keyFor, parse, format } = options.tokens
    return new RedisTokenStore(redis, { keyPrefix: options.keyPrefix, keyFor, parse, format })
  }
  return new MemoryTokenStore()
}

/**
 * A backend that owns its token state entirely: the plugin only asks. It
 * cannot mint tokens, and revoking is the backend's own business (the plugin
 * still closes the sockets that used the token).
 */
class ResolverTokenStore implements TokenStore {
  readonly #lookup: TokenLookup

  constructor (lookup: TokenLookup) {
    this.#lookup = lookup
  }

  async issue (): Promise<string> {
    throw new FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED()
  }

  async revoke (token: string): Promise<undefined> {
    checkToken(token)
    return undefined
  }

  async resolve (token: string): Promise<TokenState | null> {
    const state = await this.#lookup(checkToken(token))
    return isLive(state) ? { userId: normalizeUserId(state.userId), expiresAt: state.expiresAt } : null
  }

  close (): void {}
}
