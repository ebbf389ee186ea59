import type { RedisClient } from '../redis/client.js'
import { RedisScript } from '../redis/script.js'
import type { Appended, StreamAppend, StreamEntry, StreamLimits, StreamRead } from './broker.js'
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
 * Append and publish in one step. KEYS: stream, meta. ARGV: new epoch, meta
 * ttl, size, ttl, publish command, topic, channel, payload head, payload tail,
 * header head, header tail, ack node, follow-up message ('' for none).
 */
const APPEND = new RedisScript(EPOCH + `
local offset = redis.call('HINCRBY', KEYS[2], 'top', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
local id = epoch .. ':' .. offset
local payload = ARGV[8] .. id .. ARGV[9]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], offset .. '-0', 'c', ARGV[7], 'p', payload, 'a', ARGV[12])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local receivers = redis.call(ARGV[5], ARGV[6], ARGV[10] .. id .. ARGV[11] .. payload)
if ARGV[13] ~= '' then redis.call(ARGV[5], ARGV[6], ARGV[13]) end
return {id, receivers}
`)

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

  constructor (options: RedisStreamsOptions) {
    this.#options = options
  }

  async append (topic: string, event: StreamAppend): Promise<Appended> {
    const { client, limits, publishCommand, scriptTopic } = this.#options
    const [id, receivers] = await APPEND.run(client, [event.stream, metaKey(event.stream)], [
      newEpoch(), limits.metaTtlSeconds, limits.size, limits.ttlSeconds, publishCommand, scriptTopic(topic), event.channel,
      event.payload.head, event.payload.tail, event.header.head, event.header.tail, event.ackNode, event.then ?? ''
    ]) as [string, number]
    return { id, receivers }
  }

  async read (stream: string, since: number | undefined): Promise<StreamRead> {
    const { client, limits } = this.#options
    const [epoch, top, raw] = await READ.run(client, [stream, metaKey(stream)], [
      newEpoch(), limits.metaTtlSeconds, since ?? ''
    ]) as [string, number, RawEntry[]]
    return { epoch, top, entries: raw.map(toEntry) }
  }
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
