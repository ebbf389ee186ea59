import { createHash, randomBytes } from 'node:crypto'
import { FST_REALTIME_INVALID_ARGUMENT } from '../errors.js'

/** What a token resolves to. `expiresAt` is unix seconds, as in the Redis layout. */
export interface TokenState {
  userId: string
  expiresAt: number
}

/**
 * Where access-token state lives. Two implementations share these semantics:
 * `MemoryTokenStore` (embedded mode) and `RedisTokenStore` (cluster mode).
 * `resolve` answers `null` for unknown, expired and revoked tokens alike.
 */
export interface TokenStore {
  issue (userId: string | number, options: { ttlSeconds: number }): Promise<string>
  /**
   * Forgets the token; resolves with the user whose token it was where the
   * store knew it (revocation then looks at that user's socket alone).
   */
  revoke (token: string): Promise<string | undefined>
  resolve (token: string): Promise<TokenState | null>
  /**
   * Present when the store keys its state by the token's hash (`hashToken`):
   * resolves by that alone, so a socket need not keep its bearer token for
   * the periodic revocation check, only the hash.
   */
  readonly resolveHash?: (tokenHash: string) => Promise<TokenState | null>
  close (): void
}

/** 256 random bits, URL-safe, so a token survives a query string unescaped. */
export function mintToken (): string {
  return randomBytes(32).toString('base64url')
}

/** The default key material: tokens are never stored in the clear. */
export function hashToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/**
 * The same SHA-256 as 32 one-byte characters: what an open socket keeps to be
 * found by its token (revocation, refresh), in half the bytes of the hex form
 * that keys and messages carry.
 */
export function tokenDigest (token: string): string {
  return createHash('sha256').update(token).digest('binary')
}

export function digestOfHash (tokenHash: string): string {
  return Buffer.from(tokenHash, 'hex').toString('latin1')
}

export function hashOfDigest (digest: string): string {
  return Buffer.from(digest, 'latin1').toString('hex')
}

const USER_ID = /^[^\s]{1,128}$/

/**
 * User ids are strings on the wire and in the API; numbers are accepted and
 * normalized. Anything else is a caller bug, reported with a coded error.
 */
export function normalizeUserId (userId: unknown, argument = 'userId'): string {
  const text = typeof userId === 'number' && Number.isSafeInteger(userId) ? String(userId) : userId
  if (typeof text !== 'string' || !USER_ID.test(text)) {
    throw new FST_REALTIME_INVALID_ARGUMENT(argument, 'must be a non-empty string (or safe integer) of at most 128 characters without whitespace')
  }
  return text
}

export function checkTtl (ttlSeconds: unknown): number {
  if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new FST_REALTIME_INVALID_ARGUMENT('ttlSeconds', 'must be a positive integer')
  }
  return ttlSeconds
}

export function checkToken (token: unknown): string {
  if (typeof token !== 'string' || token.length === 0) {
    throw new FST_REALTIME_INVALID_ARGUMENT('token', 'must be a non-empty string')
  }
  return token
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/**
 * The expiry, in unix seconds, of a token issued at `nowMs` for `ttlSeconds`:
 * rounded up, so the token is valid for at least its ttl. Rounded down, a
 * 1 s token issued late in a second would be expired on arrival.
 */
export const expiryAfter = (ttlSeconds: number, nowMs: number): number => Math.ceil(nowMs / 1000) + ttlSeconds

/**
 * Parses the default stored value `{"user_id":"120045","expires_at":1740748800}`
 * (`"revoked": true` means revoked). Malformed values count as unknown tokens:
 * a corrupt entry must not let anyone in.
 */
export function parseTokenValue (raw: string): TokenState | null {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const { user_id: userId, expires_at: expiresAt, revoked } = value as Record<string, unknown>
  if (revoked === true || typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) return null
  const id = typeof userId === 'number' && Number.isSafeInteger(userId) ? String(userId) : userId
  if (typeof id !== 'string' || !USER_ID.test(id)) return null
  return { userId: id, expiresAt }
}

/** The serialized form of `parseTokenValue`'s input. */
export function formatTokenValue (state: TokenState): string {
  return JSON.stringify({ user_id: state.userId, expires_at: state.expiresAt })
}

/** True while a state is usable for a new connection. */
export const isLive = (state: TokenState | null): state is TokenState =>
  state !== null && state.expiresAt > nowSeconds()
