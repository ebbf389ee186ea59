import { randomFillSync } from 'node:crypto'

/**
 * Random bits for ids (request ids, connection ids), drawn from a pool that
 * the CSPRNG fills 4 KiB at a time. Each `randomBytes` call crosses into
 * OpenSSL and allocates a Buffer: about 3 µs idle and over 10 µs in a
 * reconnect storm's profile, twice per connect, where a pooled draw costs a
 * fraction of a microsecond (Node's `randomUUID` pools the same way). Ids
 * only: secrets (tokens) are drawn on their own, so no pool holds them.
 */
const POOL_BYTES = 4096
const pool = Buffer.allocUnsafe(POOL_BYTES)
let next = POOL_BYTES

/** Where `bytes` fresh random bytes start in the pool (refilled when too few are left). */
function draw (bytes: number): number {
  if (next + bytes > POOL_BYTES) {
    randomFillSync(pool)
    next = 0
  }
  const at = next
  next += bytes
  return at
}

/** `bytes` random bytes as lower-case hex (2 × `bytes` characters). */
export function randomHex (bytes: number): string {
  const at = draw(bytes)
  return pool.toString('hex', at, at + bytes)
}

/** 32 random bits as a signed integer. */
export function randomInt32 (): number {
  return pool.readInt32BE(draw(4))
}
