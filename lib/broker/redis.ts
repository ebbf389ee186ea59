import type { FastifyBaseLogger } from 'fastify'
import { FST_REALTIME_REDIS_UNAVAILABLE } from '../errors.js'
import { componentState, type ComponentState, type RedisClient } from '../redis/client.js'
import { BUSY_SPACING_MS } from '../redis/turn-batch.js'
import type { GatewayStats } from '../stats.js'
import type { Appended, Broker, Once, Repeated, StreamAppend, StreamLimits, StreamRead } from './broker.js'
import { createPubSub, type PubSub } from './pubsub.js'
import { RedisStreams } from './redis-streams.js'
import { RedisWriter } from './redis-writer.js'
import { SubscriptionSet } from './subscriptions.js'

export interface RedisBrokerOptions {
  client: RedisClient
  /** This node's own topic: the subscriber's liveness probe (`P` messages, kept here) and messages for this node alone. */
  probeTopic: string
  /** How often the subscriber's liveness is probed; a probe not back by the next one replaces it. */
  probeIntervalMs: number
  /** Every publish settles within this; see Publisher. */
  publishTimeoutMs: number
  /** History on: what each stream keeps. */
  history: StreamLimits | undefined
  stats: GatewayStats
  log: FastifyBaseLogger
}

const PROBE = 0x50 // 'P'

/**
 * Topics over Redis pub/sub, bytes in and out.
 *
 * - One dedicated subscriber connection per node, plain SUBSCRIBE (SSUBSCRIBE
 *   on a Redis Cluster), never a pattern; subscribes and unsubscribes made
 *   within one turn of the event loop go out together (SubscriptionSet).
 * - Redis echoes every publish back to its sender too, so a node receives
 *   its own publishes in the same order as every other node.
 * - Pub/sub is at-most-once: after the subscriber lost its link, once every
 *   topic is back, `onResubscribed` fires. A subscriber that stops receiving
 *   without noticing (a silently dead TCP link) is found by the probe (a
 *   message to `probeTopic` that must come back) and replaced.
 */
export class RedisBroker implements Broker {
  readonly #options: RedisBrokerOptions
  readonly #subscriptions: SubscriptionSet
  readonly #probeTimer: NodeJS.Timeout
  readonly #writer: RedisWriter
  readonly #streams: RedisStreams | undefined
  readonly #onMessage = (topic: string, message: Buffer): void => this.#receive(topic, message)
  // The node sets both handlers right after building the broker, before any subscribe.
  /* c8 ignore next 2 */
  #handler: (topic: string, message: Buffer) => void = () => {}
  #onResubscribed: (reason: string) => void = () => {}
  #pubsub: PubSub
  #linkLost = false
  /** The probe in flight: `acknowledgedAt` once Redis accepted its PUBLISH. */
  #pendingProbe: { nonce: number, acknowledgedAt: number | undefined } | undefined
  #nonce = 0
  #closed = false

  constructor (options: RedisBrokerOptions) {
    this.#options = options
    this.#subscriptions = new SubscriptionSet(
      async (topics) => await this.#pubsub.subscribe(topics),
      async (topics) => await this.#pubsub.unsubscribe(topics),
      (error) => options.log.warn({ err: error }, 'fastify-realtime: SUBSCRIBE failed; retrying'),
      { spacingMs: BUSY_SPACING_MS }
    )
    this.#pubsub = this.#connectSubscriber()
    this.#writer = new RedisWriter({ client: options.client, publishTimeoutMs: options.publishTimeoutMs, history: options.history })
    this.#streams = options.history === undefined
      ? undefined
      : new RedisStreams({
        client: options.client,
        limits: options.history,
        publishCommand: this.#pubsub.publishCommand,
        scriptTopic: this.#pubsub.scriptChannel
      })
    this.#subscriptions.want(options.probeTopic)
    this.#probeTimer = setInterval(() => this.#probe(), options.probeIntervalMs).unref()
  }

  get linkDown (): boolean {
    return this.#linkLost
  }

  get state (): ComponentState {
    return componentState(this.#pubsub.subscriber.status)
  }

  // The writer's own promises, handed on: a publish is on the hot path, and each async layer costs an allocation.
  publish (topic: string, message: Buffer): Promise<void> {
    return this.#writer.publish(topic, message)
  }

  publishOnce (topic: string, message: Buffer, once: Once): Promise<Repeated | undefined> {
    return this.#writer.publishOnce(topic, message, once)
  }

  append (topic: string, event: StreamAppend): Promise<Appended | Repeated> {
    return this.#writer.append(topic, event)
  }

  async read (stream: string, since: number | undefined): Promise<StreamRead> {
    const streams = this.#streams as RedisStreams
    return await withDeadline(streams.read(stream, since), (this.#options.history as StreamLimits).readTimeoutMs)
  }

  subscribe (topic: string): Promise<void> {
    return this.#subscriptions.want(topic)
  }

  unsubscribe (topic: string): void {
    this.#subscriptions.drop(topic)
  }

  onMessage (handler: (topic: string, message: Buffer) => void): void {
    this.#handler = handler
  }

  onResubscribed (handler: (reason: string) => void): void {
    this.#onResubscribed = handler
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#subscriptions.close()
    clearInterval(this.#probeTimer)
    this.#writer.close()
    this.#pubsub.close()
  }

  #connectSubscriber (): PubSub {
    const pubsub = createPubSub(this.#options.client)
    pubsub.onMessage(this.#onMessage)
    const subscriber = pubsub.subscriber
    subscriber.on('error', (error: Error) => this.#options.log.warn({ err: error }, 'fastify-realtime: Redis subscriber error'))
    const lost = (): void => { if (!this.#closed) this.#linkLost = true }
    // Messages published while the link was down are gone: once every
    // subscription is back, the node is told.
    const back = (): void => {
      if (!this.#linkLost) return
      this.#linkLost = false
      this.#resubscribe('subscriber_reconnected')
    }
    subscriber.on('close', lost)
    subscriber.on('ready', back)
    // A sharded (Cluster) subscriber loses one shard's connection without
    // closing: it reports `-node`, then `subscribersReady` once resubscribed.
    subscriber.on('-node', lost)
    subscriber.on('subscribersReady', back)
    subscriber.on('reconnecting', () => { this.#options.stats.redisReconnects++ })
    return pubsub
  }

  #receive (topic: string, message: Buffer): void {
    // This node's own topic carries its probes, and messages for this node alone (acks it awaits).
    if (topic !== this.#options.probeTopic || message[0] !== PROBE) {
      this.#handler(topic, message)
      return
    }
    if (this.#pendingProbe !== undefined && Number(message.toString('latin1', 1)) === this.#pendingProbe.nonce) {
      this.#pendingProbe = undefined
    }
  }

  /**
   * Publishes a probe to this node's own topic. If the previous probe was
   * published but never came back while the subscriber claims to be ready, the
   * subscriber's link is dead without knowing it: replace the connection.
   */
  #probe (): void {
    if (this.#pubsub.subscriber.status !== 'ready') return
    const pending = this.#pendingProbe
    if (pending !== undefined) {
      // Redis has not answered the PUBLISH yet (frozen, slow), or only just did:
      // the message gets a full interval after Redis took it before the subscriber is blamed.
      if (pending.acknowledgedAt === undefined || performance.now() - pending.acknowledgedAt < this.#options.probeIntervalMs) return
      this.#options.log.warn('fastify-realtime: Redis subscriber stopped receiving; replacing it')
      this.#pendingProbe = undefined
      this.#replaceSubscriber()
      return
    }
    const probe: { nonce: number, acknowledgedAt: number | undefined } = { nonce: ++this.#nonce, acknowledgedAt: undefined }
    this.#pendingProbe = probe
    this.publish(this.#options.probeTopic, Buffer.from(`P${probe.nonce}`, 'latin1'))
      .then(() => { probe.acknowledgedAt = performance.now() }, () => {
        // A probe that could not be published says Redis is down, not the subscriber.
        if (this.#pendingProbe === probe) this.#pendingProbe = undefined
      })
  }

  #replaceSubscriber (): void {
    this.#options.stats.redisReconnects++
    this.#options.stats.subscriberReplacements++
    const dead = this.#pubsub
    this.#pubsub = this.#connectSubscriber()
    // Silence everything but its error log: the dead link must not mark the new one lost or deliver twice.
    for (const event of ['messageBuffer', 'smessageBuffer', 'close', 'ready', '-node', 'subscribersReady', 'reconnecting']) {
      dead.subscriber.removeAllListeners(event)
    }
    dead.close()
    this.#resubscribe('subscriber_replaced')
  }

  /**
   * Tells the node once every subscription is back (`reset` waits out failures,
   * retrying), at once: the live events that follow must not reach a socket
   * before it is told it may have missed some (a client would move its
   * position past the gap). A link that flaps makes one `resync` per return;
   * the client SDK coalesces them.
   */
  #resubscribe (reason: string): void {
    this.#subscriptions.reset().then(() => this.#onResubscribed(reason))
  }
}

/** A read that Redis has not answered in time fails: a recovering socket must not wait on a frozen Redis. */
async function withDeadline<T> (read: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((resolve, reject) => {
    timer = setTimeout(() => reject(new FST_REALTIME_REDIS_UNAVAILABLE(`Redis did not answer a history read within ${timeoutMs} ms`)), timeoutMs).unref()
  })
  try {
    return await Promise.race([read, deadline])
  } finally {
    clearTimeout(timer)
  }
}
