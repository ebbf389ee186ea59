import type { RedisClient } from '../redis/client.js'
import { RedisScript } from '../redis/script.js'
import { throughClient, type Send } from '../redis/send.js'
import type { Appended, BrokerWriter, Once, Repeated, StreamAppend, StreamLimits } from './broker.js'
import { Publisher } from './publisher.js'
import { publishCommands, type PublishCommands } from './pubsub.js'
import { RedisStreams, scriptAnswer } from './redis-streams.js'

/**
 * Publishes unless the idempotency record is there, and records it, in one
 * step (history off; with history on the append script does the same). Part
 * of the wire, like the append script (README "Redis wire"):
 *
 *   KEYS[1]  the idempotency record (see topicsFor), with the topic's hash tag
 *   ARGV[1]  the record's TTL (s), the idempotency window
 *   ARGV[2]  'publish', or 'spublish' on a Redis Cluster
 *   ARGV[3]  the topic            ARGV[4]  the message
 *
 * Answers {'', receivers, 0}, or {first id, 0, 1} for a repeat (nothing sent;
 * the id a history-on node recorded, '' otherwise).
 */
export const PUBLISH_ONCE_SCRIPT = `
local first = redis.call('GET', KEYS[1])
if first then return {first, 0, 1} end
local receivers = redis.call(ARGV[2], ARGV[3], ARGV[4])
redis.call('SET', KEYS[1], '', 'EX', ARGV[1])
return {'', receivers, 0}
`
// Sent whole: it keeps its place among the plain publishes of the channel also when Redis has just lost its scripts.
const PUBLISH_ONCE = new RedisScript(PUBLISH_ONCE_SCRIPT, { sentWhole: true })

export interface RedisWriterOptions {
  client: RedisClient
  /** Every publish settles within this; see Publisher. */
  publishTimeoutMs: number
  /** History on: what each stream keeps. */
  history: StreamLimits | undefined
}

/**
 * Everything that writes a publish to Redis, and only that: a gateway node's
 * broker publishes through one, and so does the standalone publisher, which
 * opens no subscriber. Each call is one command (PUBLISH/SPUBLISH, or one of
 * the scripts), settled under the Publisher's rules.
 */
export class RedisWriter implements BrokerWriter {
  readonly #publisher: Publisher
  readonly #commands: PublishCommands
  /** The idempotent publish script's path: auto-pipelined with the publishes, in their order. */
  readonly #send: Send
  readonly #streams: RedisStreams | undefined

  constructor ({ client, publishTimeoutMs, history }: RedisWriterOptions) {
    this.#send = throughClient(client)
    this.#commands = publishCommands(client)
    this.#publisher = new Publisher({ client, timeoutMs: publishTimeoutMs })
    this.#streams = history === undefined
      ? undefined
      : new RedisStreams({ client, limits: history, publishCommand: this.#commands.publishCommand, scriptTopic: this.#commands.scriptChannel })
  }

  async publish (topic: string, message: Buffer): Promise<void> {
    await this.#publisher.publish(() => this.#commands.publish(topic, message))
  }

  async publishOnce (topic: string, message: Buffer, once: Once): Promise<Repeated | undefined> {
    const { publishCommand, scriptChannel } = this.#commands
    const answer = await this.#publisher.publish(async () =>
      scriptAnswer(await PUBLISH_ONCE.run(this.#send, [once.key], [once.windowSeconds, publishCommand, scriptChannel(topic), message])))
    return 'repeated' in answer ? answer : undefined
  }

  async append (topic: string, event: StreamAppend): Promise<Appended | Repeated> {
    const streams = this.#streams as RedisStreams
    return await this.#publisher.publish(async () => await streams.append(topic, event))
  }

  close (): void {
    this.#publisher.close()
  }
}
