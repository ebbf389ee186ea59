import type { FastifyBaseLogger } from 'fastify'
import type { ChannelCatalog } from '../channels/catalog.js'
import { CloseCode } from '../constants.js'
import type { Hub } from '../hub/hub.js'
import { encodeEvent, frameText, type EncodedEvent } from '../protocol/server-event.js'
import { componentState, type ComponentState, type RedisClient } from '../redis/client.js'
import type { GatewayStats } from '../stats.js'
import type { Broker } from './broker.js'
import { Publisher } from './publisher.js'
import { createPubSub, type PubSub } from './pubsub.js'
import { SubscriptionSet } from './subscriptions.js'
import { decodeMessage, encodeControlMessage, encodeEventMessage, redisChannels, type ControlMessage } from '../node/wire.js'

export interface RedisBrokerOptions {
  client: RedisClient
  keyPrefix: string
  nodeId: string
  hub: Hub
  catalog: ChannelCatalog
  /** How often the subscriber's liveness is probed; a probe not back by the next one replaces it. */
  probeIntervalMs: number
  /** Every publish (and control message) settles within this; see Publisher. */
  publishTimeoutMs: number
  stats: GatewayStats
  /** Called with each takeover announcement (fencing decides). */
  onTakeover: (userId: string, generation: number) => void
  log: FastifyBaseLogger
}

/**
 * Cluster-mode delivery over Redis pub/sub.
 *
 * - One dedicated subscriber connection per node. It listens on one channel
 *   per user with a socket here (subscribed with the first, dropped with the
 *   last, batched), one per global channel, a control channel and its own
 *   probe channel — plain SUBSCRIBE, never a pattern.
 * - The publishing node serializes once; receivers frame the bytes they got
 *   without re-encoding. Redis echoes every publish back to its sender too, so
 *   local and remote sockets see events in the same order.
 * - Pub/sub is at-most-once: after the subscriber lost its link, every local
 *   socket gets a `resync` event; a subscriber that stops receiving without
 *   noticing (a silently dead TCP link) is found by the probe and replaced.
 */
export class RedisBroker implements Broker {
  readonly #options: RedisBrokerOptions
  readonly #channels: ReturnType<typeof redisChannels>
  readonly #subscriptions: SubscriptionSet
  readonly #probeTimer: NodeJS.Timeout
  readonly #publisher: Publisher
  readonly #onMessage = (channel: string, message: Buffer): void => this.#receive(channel, message)
  #pubsub: PubSub
  #linkLost = false
  /** The probe in flight: `acknowledgedAt` once Redis accepted its PUBLISH. */
  #pendingProbe: { nonce: number, acknowledgedAt: number | undefined } | undefined
  #nonce = 0
  #closed = false

  constructor (options: RedisBrokerOptions) {
    this.#options = options
    this.#channels = redisChannels(options.keyPrefix)
    this.#subscriptions = new SubscriptionSet(
      async (channels) => await this.#pubsub.subscribe(channels),
      async (channels) => await this.#pubsub.unsubscribe(channels),
      (error) => options.log.warn({ err: error }, 'fastify-realtime: SUBSCRIBE failed; retrying')
    )
    this.#pubsub = this.#connectSubscriber()
    this.#publisher = new Publisher({
      client: options.client,
      send: async (channel, message) => await this.#pubsub.publish(channel, message),
      timeoutMs: options.publishTimeoutMs
    })
    const always = [this.#channels.control, this.#channels.node(options.nodeId)]
    for (const channel of options.catalog) if (channel.scope === 'global') always.push(this.#channels.global(channel.name))
    for (const channel of always) this.#subscriptions.want(channel)
    this.#probeTimer = setInterval(() => this.#probe(), options.probeIntervalMs).unref()
  }

  /** The subscriber lost its link: once it is back, every socket here gets `resync`. */
  get linkDown (): boolean {
    return this.#linkLost
  }

  get subscriberState (): ComponentState {
    return componentState(this.#pubsub.subscriber.status)
  }

  async publishToUser (userId: string, channel: string, event: EncodedEvent): Promise<void> {
    await this.#publish(this.#channels.user(userId), encodeEventMessage(channel, event.payload, event.publishedAt))
  }

  async publishToChannel (channel: string, event: EncodedEvent): Promise<void> {
    await this.#publish(this.#channels.global(channel), encodeEventMessage(channel, event.payload, event.publishedAt))
  }

  async disconnectUser (userId: string, code: number, reason: string, finalEvent?: EncodedEvent): Promise<void> {
    const message = encodeControlMessage({ type: 'disconnect', userId, code, reason, finalEvent: finalEvent?.payload.toString() })
    await this.#publish(this.#channels.user(userId), message)
  }

  async revokeToken (tokenHash: string): Promise<void> {
    await this.#publish(this.#channels.control, encodeControlMessage({ type: 'revoke', tokenHash }))
  }

  async announceTakeover (userId: string, generation: number): Promise<void> {
    await this.#publish(this.#channels.user(userId), encodeControlMessage({ type: 'takeover', userId, generation }))
  }

  /** Resolves once this node receives the user's channel. */
  async listen (userId: string): Promise<void> {
    await this.#subscriptions.want(this.#channels.user(userId))
  }

  unlisten (userId: string): void {
    this.#subscriptions.drop(this.#channels.user(userId))
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#subscriptions.close()
    clearInterval(this.#probeTimer)
    this.#publisher.close()
    this.#pubsub.close()
  }

  async #publish (channel: string, message: Buffer): Promise<void> {
    await this.#publisher.publish(channel, message)
  }

  #connectSubscriber (): PubSub {
    const pubsub = createPubSub(this.#options.client)
    pubsub.onMessage(this.#onMessage)
    const subscriber = pubsub.subscriber
    subscriber.on('error', (error: Error) => this.#options.log.warn({ err: error }, 'fastify-realtime: Redis subscriber error'))
    const lost = (): void => { if (!this.#closed) this.#linkLost = true }
    // Events published while the link was down are gone: once every
    // subscription is back, the sockets here are told to resync.
    const back = (): void => {
      if (!this.#linkLost) return
      this.#linkLost = false
      this.#restoreThenResync('subscriber_reconnected')
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

  #receive (redisChannel: string, message: Buffer): void {
    const decoded = decodeMessage(message)
    const { hub, catalog } = this.#options
    if (decoded.kind === 'malformed') {
      this.#options.log.warn({ channel: redisChannel }, 'fastify-realtime: ignored a message not written by this plugin')
      return
    }
    if (decoded.kind === 'control') {
      this.#control(decoded.control)
      return
    }
    const event = { payload: decoded.payload, frame: frameText(decoded.payload), publishedAt: decoded.publishedAt }
    const userId = this.#channels.userOf(redisChannel)
    if (userId === undefined) {
      // Only the channel's own Redis channel may carry a global event.
      if (redisChannel === this.#channels.global(decoded.channel)) hub.deliverToChannel(decoded.channel, event)
      return
    }
    const channel = catalog.get(decoded.channel)
    if (channel !== undefined) hub.deliverToUser(userId, channel.name, channel.alwaysDelivered, event)
  }

  #control (control: ControlMessage): void {
    const { hub } = this.#options
    switch (control.type) {
      case 'takeover':
        this.#options.onTakeover(control.userId, control.generation)
        return
      case 'disconnect': {
        const payload = control.finalEvent === undefined ? undefined : Buffer.from(control.finalEvent)
        hub.disconnectUser(control.userId, control.code, control.reason, payload === undefined ? undefined : { payload, frame: frameText(payload) })
        return
      }
      case 'revoke':
        hub.closeToken(control.tokenHash, CloseCode.TOKEN_REVOKED, 'Access token revoked')
        return
      case 'probe':
        if (this.#pendingProbe?.nonce === control.nonce) this.#pendingProbe = undefined
    }
  }

  /**
   * Publishes a probe to this node's own channel. If the previous probe was
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
    this.#publish(this.#channels.node(this.#options.nodeId), encodeControlMessage({ type: 'probe', nodeId: this.#options.nodeId, nonce: probe.nonce }))
      .then(() => { probe.acknowledgedAt = performance.now() }, () => {
        // A probe that could not be published says Redis is down, not the subscriber.
        if (this.#pendingProbe === probe) this.#pendingProbe = undefined
      })
  }

  #replaceSubscriber (): void {
    this.#options.stats.redisReconnects++
    const dead = this.#pubsub
    this.#pubsub = this.#connectSubscriber()
    // Silence everything but its error log: the dead link must not mark the new one lost or deliver twice.
    for (const event of ['messageBuffer', 'smessageBuffer', 'close', 'ready', '-node', 'subscribersReady', 'reconnecting']) {
      dead.subscriber.removeAllListeners(event)
    }
    dead.close()
    this.#restoreThenResync('subscriber_replaced')
  }

  /** Resyncs once every subscription is back (`reset` waits out failures, retrying). */
  #restoreThenResync (reason: string): void {
    this.#subscriptions.reset().then(() => this.#resync(reason))
  }

  #resync (reason: string): void {
    this.#options.hub.broadcastLocal(encodeEvent('resync', null, { reason }))
  }
}
