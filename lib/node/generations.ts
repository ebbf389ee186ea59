import type { RedisClient } from '../redis/client.js'
import { batchedReads, keyBatch, type StringRead } from '../redis/key-batch.js'
import { RedisScript } from '../redis/script.js'
import type { Send } from '../redis/send.js'
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

/**
 * For each key still holding the generation of its socket (no newer claim
 * replaced it): deletes it, or puts back the generation that socket's claim
 * replaced if it closed before announcing (that older socket may still be
 * open, and the next claim must find it). ARGV: generation and replaced ('0':
 * none) per key, then the TTL.
 */
const RELEASE_SCRIPT = new RedisScript(`
local ttl = ARGV[#ARGV]
for index, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * index - 1] then
    local replaced = ARGV[2 * index]
    if replaced == '0' then redis.call('DEL', key) else redis.call('SET', key, replaced, 'PX', ttl) end
  end
end
return {}
`)

/** Stores each key's `ARGV` unless it holds a generation at least as new; the last ARGV is the TTL. */
const RAISE_SCRIPT = new RedisScript(`
local ttl = ARGV[#ARGV]
for index, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') < tonumber(ARGV[index]) then
    redis.call('SET', key, ARGV[index], 'PX', ttl)
  end
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

/**
 * The newest generation of each user's socket, in Redis:
 *
 *   {keyPrefix}gen:<userId>   STRING  generation (µs), expires after 24 h
 *
 * Claims and releases made within one turn of the event loop go out together
 * (on a busy node, those of BUSY_SPACING_MS), and reads made within 20 ms:
 * on one Redis, one script call claims (or releases) them all and one MGET
 * reads them all.
 * On a Redis Cluster the keys live on different shards, so each is its own
 * command, issued in the same turn (a client with `enableAutoPipelining`
 * sends them in one write per shard).
 */
export class Generations {
  readonly #keyPrefix: string
  readonly #claim: (key: string) => Promise<Claim>
  readonly #release: (key: string, release: Release) => Promise<void>
  readonly #raise: (key: string, generation: number) => Promise<void>
  readonly #read: StringRead

  constructor (redis: RedisClient, keyPrefix: string) {
    this.#keyPrefix = keyPrefix
    this.#claim = keyBatch(redis, claimTogether, { spacingMs: BUSY_SPACING_MS })
    this.#release = keyBatch(redis, releaseTogether, { spacingMs: BUSY_SPACING_MS })
    // A repair after Redis came back empty raises every socket's at once: one script call for them.
    this.#raise = keyBatch(redis, raiseTogether)
    this.#read = batchedReads(redis, { waitMs: READ_WAIT_MS })
  }

  #key (userId: string): string {
    return `${this.#keyPrefix}gen:${userId}`
  }

  /** A generation newer than any claimed for the user so far, and the one it replaced (the batch's promise, handed on). */
  claim (userId: string): Promise<Claim> {
    return this.#claim(this.#key(userId))
  }

  /** The user's newest generation (0: none stored). */
  async stored (userId: string): Promise<number> {
    return Number(await this.#read(this.#key(userId)))
  }

  /** Stores `generation` unless the user's stored one is at least as new (it was lost, or went back). */
  async raise (userId: string, generation: number): Promise<void> {
    await this.#raise(this.#key(userId), generation)
  }

  /**
   * Takes `generation` back, unless a newer claim replaced it; `replaced`: the
   * generation its claim replaced, put back instead (a socket that closed
   * before announcing).
   */
  async release (userId: string, generation: number, replaced = 0): Promise<void> {
    await this.#release(this.#key(userId), { generation, replaced })
  }
}

export interface Claim {
  generation: number
  /** The generation stored before (0: none): a socket of the user may still be open on its node. */
  replaced: number
}

async function claimTogether (send: Send, keys: string[]): Promise<Claim[]> {
  const answers = (await CLAIM_SCRIPT.run(send, keys, [GENERATION_TTL_MS])) as string[]
  return keys.map((_key, index) => ({ generation: Number(answers[2 * index]), replaced: Number(answers[2 * index + 1]) }))
}

interface Release {
  generation: number
  replaced: number
}

async function releaseTogether (send: Send, keys: string[], releases: Release[]): Promise<void[]> {
  await RELEASE_SCRIPT.run(send, keys, [...releases.flatMap(({ generation, replaced }) => [String(generation), String(replaced)]), GENERATION_TTL_MS])
  return []
}

async function raiseTogether (send: Send, keys: string[], generations: number[]): Promise<void[]> {
  await RAISE_SCRIPT.run(send, keys, [...generations.map(String), GENERATION_TTL_MS])
  return []
}
