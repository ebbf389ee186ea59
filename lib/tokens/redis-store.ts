import type { Cluster, Redis } from 'ioredis'
import { FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED } from '../errors.js'
import { writeFailure } from '../redis/outcome.js'
import { batchedReads, type StringRead } from '../redis/key-batch.js'
import { BUSY_SPACING_MS } from '../redis/turn-batch.js'
import { RedisScript } from '../redis/script.js'
import { sendNow, type Send } from '../redis/send.js'
import {
  type TokenState, type TokenStore, checkToken, checkTtl, expiryAfter, formatTokenValue, hashToken, isLive,
  mintToken, normalizeUserId, parseTokenValue
} from './token-store.js'

/**
 * Deletes a token's key and answers the value it had, in one step (GETDEL
 * needs Redis 6.2). Sent whole: a lookup sent after a revocation must not run
 * before it, also when Redis has just lost its scripts.
 */
const TAKE_SCRIPT = new RedisScript(`
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return value
`, { sentWhole: true })

export interface RedisTokenStoreOptions {
  keyPrefix: string
  keyFor?: (token: string) => string
  parse?: (raw: string) => TokenState | null
  format?: (state: TokenState) => string
}

/**
 * Token state in Redis, in the layout README's "Redis layout" gives by default: key
 * `{keyPrefix}token:{sha256 hex}`, a JSON value, TTL up to the expiry. The rest
 * of the backend may write these keys itself; `keyFor` and `parse` adapt the
 * store to another layout.
 */
export class RedisTokenStore implements TokenStore {
  /**
   * Issues and revocations go out as the lookups do (at once, see sendNow):
   * a lookup made after a revocation must not reach Redis before it.
   */
  readonly #send: Send
  /** Lookups of one turn share one MGET: a reconnect storm's handshakes cost a round trip per turn, not each. */
  readonly #read: StringRead
  readonly #keyFor: (token: string) => string
  readonly #parse: (raw: string) => TokenState | null
  readonly #format: ((state: TokenState) => string) | undefined
  /** In the default layout the key is the token's hash: a lookup by hash needs no token. */
  readonly resolveHash: ((tokenHash: string) => Promise<TokenState | null>) | undefined

  constructor (redis: Redis | Cluster, options: RedisTokenStoreOptions) {
    this.#send = sendNow(redis)
    this.#read = batchedReads(redis, { spacingMs: BUSY_SPACING_MS })
    const keyOfHash = (tokenHash: string): string => `${options.keyPrefix}token:${tokenHash}`
    this.#keyFor = options.keyFor ?? ((token) => keyOfHash(hashToken(token)))
    this.resolveHash = options.keyFor === undefined ? async (tokenHash) => await this.#resolveKey(keyOfHash(tokenHash)) : undefined
    this.#parse = options.parse ?? parseTokenValue
    // A custom parser reads a layout the default writer does not produce.
    this.#format = options.format ?? (options.parse === undefined ? formatTokenValue : undefined)
  }

  async issue (userId: string | number, { ttlSeconds }: { ttlSeconds: number }): Promise<string> {
    if (this.#format === undefined) throw new FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED()
    const now = Date.now()
    const state = { userId: normalizeUserId(userId), expiresAt: expiryAfter(checkTtl(ttlSeconds), now) }
    const token = mintToken()
    // The key goes when the token expires, not before: the state is what says it expired.
    await this.#send('set', [this.#keyFor(token), this.#format(state), 'PX', state.expiresAt * 1000 - now])
    return token
  }

  async revoke (token: string): Promise<string | undefined> {
    const key = this.#keyFor(checkToken(token))
    const raw = await TAKE_SCRIPT.run(this.#send, [key], []).catch((error: Error) => { throw writeFailure(error) })
    if (typeof raw !== 'string') return undefined
    try {
      // Expired or not (a socket may hold it until the expiry wheel closes it), normalized as the sockets hold it.
      const state = this.#parse(raw)
      return state === null ? undefined : normalizeUserId(state.userId)
    } catch {
      // A value the parser cannot read, or a user id it cannot be, names no user; the key is gone all the same.
      return undefined
    }
  }

  async resolve (token: string): Promise<TokenState | null> {
    return await this.#resolveKey(this.#keyFor(checkToken(token)))
  }

  async #resolveKey (key: string): Promise<TokenState | null> {
    // A key of another type reads as null: a malformed entry, no access, like any other.
    const raw = await this.#read(key)
    if (raw === null) return null
    const state = this.#parse(raw)
    return isLive(state) ? { userId: normalizeUserId(state.userId), expiresAt: state.expiresAt } : null
  }

  close (): void {}
}
