import type { RedisClient } from '../redis/client.js'
import { RedisScript } from '../redis/script.js'
import { throughClient, type Send } from '../redis/send.js'
import type { Appended, Repeated, StreamAppend, StreamEntry, StreamLimits, StreamRead } from './broker.js'
import { newEpoch } from './memory-streams.js'

/**
 * A stream is two keys with one hash tag (one Redis Cluster slot, shared with
 * its pub/sub topic): a Redis Stream of its events, entry id `<offset>-0`
 * with fields c (channel), p (event JSON) and a (node awaiting the ack), and
 * a meta hash with its epoch and last offset. The meta hash outlives the
 * events (`metaTtlSeconds`), so an id from an expired stream is `too_old`;
 * when the meta hash is gone (Redis restarted empty, flushed, evicted) a new
 * epoch begins, the old events are dropped, and older ids are `epoch_changed`.
 */
const EPOCH = `
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
`

/**
 * An idempotent publish that was made already (its record is there) ends the
 * script before anything is written, answering the record: the first
 * publish's id ('' when it had none).
 */
const REPEATED = `
if KEYS[3] then
  local first = redis.call('GET', KEYS[3])
  if first then return {first, 0, 1} end
end
`

/**
 * Appends an event to its stream and publishes it, in one step; with an
 * idempotency record, only if that record is not there yet, and then records
 * the event's id in it. Other processes (any language) may call it, so its
 * layout is part of the wire (README "Redis wire"):
 *
 *   KEYS[1]   the stream             {p}stream:u:{<userId>} or {p}stream:c:{<channel>}
 *   KEYS[2]   its meta hash          KEYS[1] .. ':meta' (fields epoch, top)
 *   KEYS[3]   optional: the idempotency record (see topicsFor), same hash tag
 *   ARGV[1]   a new epoch, used only if the meta hash is missing (8 chars of A-Z a-z 0-9 _ -)
 *   ARGV[2]   meta hash TTL (s)      ARGV[3] stream MAXLEN   ARGV[4] stream TTL (s)
 *   ARGV[5]   'publish', or 'spublish' on a Redis Cluster
 *   ARGV[6]   the topic               ARGV[7] the channel (stream field c)
 *   ARGV[8]   payload head            ARGV[9] payload tail: stream field p = head .. id .. tail
 *   ARGV[10]  header head             ARGV[11] header tail: message = head .. id .. tail .. payload
 *   ARGV[12]  the node awaiting the ack (stream field a), '' for none
 *   ARGV[13]  a message published right after on the same topic, '' for none
 *   ARGV[14]  with KEYS[3]: the record's TTL (s), the idempotency window
 *
 * Answers {id, receivers, 0}, or {first id, 0, 1} for a repeat (nothing written).
 */
export const APPEND_SCRIPT = REPEATED + EPOCH + `
local offset = redis.call('HINCRBY', KEYS[2], 'top', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
local id = epoch .. ':' .. offset
local payload = ARGV[8] .. id .. ARGV[9]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], offset .. '-0', 'c', ARGV[7], 'p', payload, 'a', ARGV[12])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local receivers = redis.call(ARGV[5], ARGV[6], ARGV[10] .. id .. ARGV[11] .. payload)
if ARGV[13] ~= '' then redis.call(ARGV[5], ARGV[6], ARGV[13]) end
if KEYS[3] then redis.call('SET', KEYS[3], id, 'EX', ARGV[14]) end
return {id, receivers, 0}
`
const APPEND = new RedisScript(APPEND_SCRIPT)

/**
 * The stream's epoch (begun here if there is none), last offset, and its
 * events after ARGV[3] ('' for none). KEYS: stream, meta. ARGV: new epoch,
 * meta ttl, since. Every retained event after `since`, not at most this
 * node's `size`: the appender trimmed the stream to its own size, which may
 * differ during a rolling deploy, and a replay cut short would pass for whole.
 */
const READ = new RedisScript(EPOCH + `
local top = tonumber(redis.call('HGET', KEYS[2], 'top'))
local entries = {}
if ARGV[3] ~= '' and tonumber(ARGV[3]) < top then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[3] .. '-0', '+')
end
return {epoch, top, entries}
`)

export interface RedisStreamsOptions {
  client: RedisClient
  limits: StreamLimits
  /** PUBLISH, or SPUBLISH on a Redis Cluster. */
  publishCommand: 'publish' | 'spublish'
  /** The topic as the script must name it (a Cluster client's own key prefix added). */
  scriptTopic: (topic: string) => string
}

type RawEntry = [string, string[]]

export class RedisStreams {
  readonly #options: RedisStreamsOptions
  readonly #send: Send

  constructor (options: RedisStreamsOptions) {
    this.#options = options
    this.#send = throughClient(options.client)
  }

  async append (topic: string, event: StreamAppend): Promise<Appended | Repeated> {
    const { limits, publishCommand, scriptTopic } = this.#options
    const keys = [event.stream, metaKey(event.stream)]
    const args: Array<string | number | Buffer> = [
      newEpoch(), limits.metaTtlSeconds, limits.size, limits.ttlSeconds, publishCommand, scriptTopic(topic), event.channel,
      event.payload.head, event.payload.tail, event.header.head, event.header.tail, event.ackNode, event.then ?? ''
    ]
    if (event.once !== undefined) {
      keys.push(event.once.key)
      args.push(event.once.windowSeconds)
    }
    return scriptAnswer(await APPEND.run(this.#send, keys, args))
  }

  async read (stream: string, since: number | undefined): Promise<StreamRead> {
    const { limits } = this.#options
    const [epoch, top, raw] = await READ.run(this.#send, [stream, metaKey(stream)], [
      newEpoch(), limits.metaTtlSeconds, since ?? ''
    ]) as [string, number, RawEntry[]]
    return { epoch, top, entries: raw.map(toEntry) }
  }
}

/**
 * What the append and idempotent publish scripts answer: `[id, receivers, 0]`,
 * or `[first id, 0, 1]` for a repeat ('' when the first one had no id).
 */
export function scriptAnswer (reply: unknown): Appended | Repeated {
  const [id, receivers, repeated] = reply as [string, number, number]
  if (repeated === 1) return { repeated: true, id: id === '' ? null : id }
  return { id, receivers }
}

function metaKey (stream: string): string {
  return stream + ':meta'
}

function toEntry ([id, fields]: RawEntry): StreamEntry {
  const entry: StreamEntry = { offset: Number(id.slice(0, id.indexOf('-'))), channel: '', payload: Buffer.alloc(0), ackNode: '' }
  for (let index = 0; index < fields.length; index += 2) {
    const value = fields[index + 1]
    if (fields[index] === 'c') entry.channel = value
    else if (fields[index] === 'p') entry.payload = Buffer.from(value)
    else entry.ackNode = value
  }
  return entry
}
