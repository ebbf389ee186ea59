import type { RedisClient } from '../redis/client.js'
import { batchedReads, keyBatch, type StringRead } from '../redis/key-batch.js'
import { RedisScript } from '../redis/script.js'

/**
 * Claims a new generation for each key, in order: greater than the stored one
 * and than the Redis server's clock in microseconds, so it keeps growing even
 * after the key expired (a user named twice gets two, the second the newer).
 * Formatted with %.0f because Lua would print a large number in exponent form
 * and lose digits.
 */
export const CLAIM_SCRIPT = new RedisScript(`
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
local generations = {}
for index, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or '0')
  local generation = math.max(current + 1, floor)
  redis.call('SET', key, string.format('%.0f', generation), 'PX', ARGV[1])
  generations[index] = string.format('%.0f', generation)
end
return generations
`)

/** Deletes the user's generation if it is still `ARGV[1]` (no newer claim replaced it). */
const RELEASE_SCRIPT = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

const GENERATION_TTL_MS = 24 * 60 * 60 * 1000
/**
 * How long a re-read waits for others to share its MGET. It runs after the
 * socket's `connected` went out and only delays the takeover of an older
 * socket elsewhere, so it can wait for more of a storm to gather.
 */
const READ_WAIT_MS = 20

/**
 * The newest generation of each user's socket, in Redis:
 *
 *   {keyPrefix}gen:<userId>   STRING  generation (µs), expires after 24 h
 *
 * Claims made within one turn of the event loop go out together, and reads
 * made within READ_WAIT_MS: on one Redis, one script call claims them all and
 * one MGET reads them all.
 * On a Redis Cluster the keys live on different shards, so each is its own
 * command, issued in the same turn (a client with `enableAutoPipelining`
 * sends them in one write per shard).
 */
export class Generations {
  readonly #redis: RedisClient
  readonly #keyPrefix: string
  readonly #claim: (key: string) => Promise<number>
  readonly #read: StringRead

  constructor (redis: RedisClient, keyPrefix: string) {
    this.#redis = redis
    this.#keyPrefix = keyPrefix
    this.#claim = keyBatch(redis, async (keys) => await claimTogether(redis, keys))
    this.#read = batchedReads(redis, { waitMs: READ_WAIT_MS })
  }

  #key (userId: string): string {
    return `${this.#keyPrefix}gen:${userId}`
  }

  /** A generation newer than any claimed for the user so far. */
  async claim (userId: string): Promise<number> {
    return await this.#claim(this.#key(userId))
  }

  /** The user's newest generation (0: none stored). */
  async stored (userId: string): Promise<number> {
    return Number(await this.#read(this.#key(userId)))
  }

  /** Takes `generation` back, unless a newer claim replaced it. */
  async release (userId: string, generation: number): Promise<void> {
    await RELEASE_SCRIPT.run(this.#redis, [this.#key(userId)], [String(generation)])
  }
}

async function claimTogether (redis: RedisClient, keys: string[]): Promise<number[]> {
  return ((await CLAIM_SCRIPT.run(redis, keys, [GENERATION_TTL_MS])) as string[]).map(Number)
}
