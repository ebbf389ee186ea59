import type { RedisClient } from '../redis/client.js'
import { batchedReads, keyBatch, type StringRead } from '../redis/key-batch.js'
import { RedisScript } from '../redis/script.js'
import { BUSY_SPACING_MS } from '../redis/turn-batch.js'

/**
 * Claims a new generation for each key, in order: greater than the stored one
 * and than the Redis server's clock in microseconds, so it keeps growing even
 * after the key expired (a user named twice gets two, the second the newer).
 * Answers each key's new generation and the one it replaced ('0': none).
 * Formatted with %.0f because Lua would print a large number in exponent form
 * and lose digits.
 */
export const CLAIM_SCRIPT = new RedisScript(`
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
local answers = {}
for index, key in ipairs(KEYS) do
  local replaced = redis.call('GET', key) or '0'
  local generation = string.format('%.0f', math.max(tonumber(replaced) + 1, floor))
  redis.call('SET', key, generation, 'PX', ARGV[1])
  answers[2 * index - 1] = generation
  answers[2 * index] = replaced
end
return answers
`)

/** Deletes each key whose generation is still its `ARGV` (no newer claim replaced it). */
const RELEASE_SCRIPT = new RedisScript(`
for index, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[index] then redis.call('DEL', key) end
end
return {}
`)

const GENERATION_TTL_MS = 24 * 60 * 60 * 1000
/**
 * How long a re-read waits for others to share its MGET. It runs after the
 * socket's `connected` went out and only delays the takeover of an older
 * socket elsewhere, so it can wait for more of a storm to gather.
 */
const READ_WAIT_MS = 20
/** How long a release waits for others to share its script call: nobody waits on it. */
const RELEASE_WAIT_MS = 20

/**
 * The newest generation of each user's socket, in Redis:
 *
 *   {keyPrefix}gen:<userId>   STRING  generation (µs), expires after 24 h
 *
 * Claims made within one turn of the event loop go out together (on a busy
 * node, those of BUSY_SPACING_MS), and reads and releases made within 20 ms:
 * on one Redis, one script call claims (or releases) them all and one MGET
 * reads them all.
 * On a Redis Cluster the keys live on different shards, so each is its own
 * command, issued in the same turn (a client with `enableAutoPipelining`
 * sends them in one write per shard).
 */
export class Generations {
  readonly #redis: RedisClient
  readonly #keyPrefix: string
  readonly #claim: (key: string) => Promise<Claim>
  readonly #release: (key: string, generation: number) => Promise<void>
  readonly #read: StringRead

  constructor (redis: RedisClient, keyPrefix: string) {
    this.#redis = redis
    this.#keyPrefix = keyPrefix
    this.#claim = keyBatch(redis, async (keys) => await claimTogether(redis, keys), { spacingMs: BUSY_SPACING_MS })
    this.#release = keyBatch(redis, async (keys, generations: number[]) => await releaseTogether(redis, keys, generations), { waitMs: RELEASE_WAIT_MS })
    this.#read = batchedReads(redis, { waitMs: READ_WAIT_MS })
  }

  #key (userId: string): string {
    return `${this.#keyPrefix}gen:${userId}`
  }

  /** A generation newer than any claimed for the user so far, and the one it replaced. */
  async claim (userId: string): Promise<Claim> {
    return await this.#claim(this.#key(userId))
  }

  /** The user's newest generation (0: none stored). */
  async stored (userId: string): Promise<number> {
    return Number(await this.#read(this.#key(userId)))
  }

  /** Stores `generation` again where the user has none (a claim made meanwhile stands). */
  async restore (userId: string, generation: number): Promise<void> {
    await this.#redis.set(this.#key(userId), String(generation), 'PX', GENERATION_TTL_MS, 'NX')
  }

  /** Takes `generation` back, unless a newer claim replaced it. */
  async release (userId: string, generation: number): Promise<void> {
    await this.#release(this.#key(userId), generation)
  }
}

export interface Claim {
  generation: number
  /** The generation stored before (0: none): a socket of the user may still be open on its node. */
  replaced: number
}

async function claimTogether (redis: RedisClient, keys: string[]): Promise<Claim[]> {
  const answers = (await CLAIM_SCRIPT.run(redis, keys, [GENERATION_TTL_MS])) as string[]
  return keys.map((_key, index) => ({ generation: Number(answers[2 * index]), replaced: Number(answers[2 * index + 1]) }))
}

async function releaseTogether (redis: RedisClient, keys: string[], generations: number[]): Promise<void[]> {
  await RELEASE_SCRIPT.run(redis, keys, generations.map(String))
  return []
}
