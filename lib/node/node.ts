import type { FastifyBaseLogger } from 'fastify'
import type { Broker } from '../broker/broker.js'
import type { ChannelCatalog } from '../channels/catalog.js'
import { Disconnect, type Disconnection } from '../constants.js'
import type { Connection } from '../hub/connection.js'
import type { Hub } from '../hub/hub.js'
import { encodeEvent, frameText, type EncodedEvent } from '../protocol/server-event.js'
import { parseId } from '../protocol/recovery.js'
import type { RedisClient } from '../redis/client.js'
import type { GatewayStats } from '../stats.js'
import { AckWaiters } from './acks.js'
import { Fencing } from './fencing.js'
import { Generations } from './generations.js'
import { LocalPresence, RedisPresence, type Presence } from './presence.js'
import { Sender, type OutgoingEvent } from './sender.js'
import { decodeMessage, encodeAckMessage, topicsFor, type ControlMessage, type WireMessage } from './wire.js'

const LEAVE_TIMEOUT_MS = 1000

export interface NodeOptions {
  hub: Hub
  broker: Broker
  catalog: ChannelCatalog
  keyPrefix: string
  nodeId: string
  /** Cluster mode: the Redis that fencing and presence live in, and how often they are maintained. */
  cluster: { redis: RedisClient, heartbeatIntervalMs: number } | undefined
  /** History on: events are kept in streams (through the broker) and carry ids. */
  history: boolean
  /** How long a publish's idempotency record lives. */
  idempotencyWindowSeconds: number
  stats: GatewayStats
  /** Publish-to-ack seconds of each awaited event acked. */
  onAcked: (seconds: number) => void
  log: FastifyBaseLogger
}

export type { OutgoingEvent }

/**
 * The one place that gives messages their meaning, on both sides of the
 * broker. Publishing: events and control commands are written in the wire
 * format (wire.ts) to the topic of their user, their global channel, or every
 * node. Receiving: what the broker hands over is decoded into calls on this
 * node's hub, and never sent back up. In between it decides which topics this
 * node listens to (every global channel, the control topic, and the topic of
 * each user with a socket here) and, in cluster mode, keeps one socket per
 * user across nodes (fencing) and presence in Redis.
 *
 * Embedded mode runs the same code over the loopback broker.
 */
export class RealtimeNode {
  readonly nodeId: string
  readonly presence: Presence
  readonly #hub: Hub
  readonly #broker: Broker
  readonly #catalog: ChannelCatalog
  readonly #topics: ReturnType<typeof topicsFor>
  readonly #log: FastifyBaseLogger
  readonly #sender: Sender
  readonly #acks: AckWaiters
  readonly #ownTopic: string
  readonly #cluster: { redis: RedisClient, presence: RedisPresence, fencing: Fencing, maintenance: NodeJS.Timeout, relist: () => void } | undefined

  constructor (options: NodeOptions) {
    const { hub, broker } = options
    this.nodeId = options.nodeId
    this.#hub = hub
    this.#broker = broker
    this.#catalog = options.catalog
    this.#topics = topicsFor(options.keyPrefix)
    this.#log = options.log
    this.#sender = new Sender({ broker, keyPrefix: options.keyPrefix, history: options.history, idempotencyWindowSeconds: options.idempotencyWindowSeconds })
    this.#ownTopic = this.#topics.node(options.nodeId)
    this.#acks = new AckWaiters({ onAcked: options.onAcked, onTimeout: () => { options.stats.ackTimeouts++ } })
    this.#cluster = options.cluster === undefined ? undefined : this.#joinCluster(options, options.cluster)
    this.presence = this.#cluster?.presence ?? new LocalPresence(hub.connections, options.nodeId)

    broker.onMessage((topic, message) => this.#receive(topic, message))
    broker.onResubscribed((reason) => {
      hub.forgetStreamPositions()
      hub.broadcastLocal(encodeEvent('resync', null, { reason }))
    })
    const always = [this.#topics.control, this.#ownTopic]
    for (const channel of options.catalog) if (channel.scope === 'global') always.push(this.#topics.global(channel.name))
    // Resolves once every one is subscribed (a failed SUBSCRIBE is retried, never rejected). With
    // history, positions of global streams are only right once this node receives their events.
    const listeningToAll = Promise.all(always.map(async (topic) => await broker.subscribe(topic)))
    // While the broker's link is down, waiting would hold a socket's
    // `connected` until it is back; every socket here gets `resync` then instead.
    const listen = options.history
      ? async (userId: string) => { await Promise.all([listeningToAll, this.#listen(userId)]) }
      : (userId: string) => this.#listen(userId)
    hub.announceWhen((connection) => broker.linkDown ? undefined : listen(connection.userId))
    if (options.history) {
      hub.useHistory({
        read: {
          user: async (userId, since) => await broker.read(this.#topics.userStream(userId), since),
          global: async (channel, since) => await broker.read(this.#topics.globalStream(channel), since)
        },
        forwardAck: ({ node, ...ack }) => {
          broker.publish(this.#topics.node(node), encodeAckMessage(ack))
            .catch((error: Error) => this.#log.debug({ err: error }, 'fastify-realtime: could not forward an ack'))
        }
      })
    }
    hub.connections.listen({
      added: (connection) => this.#opened(connection),
      removed: (connection) => this.#closed(connection)
    })
  }

  /**
   * Publishes an event to a user's socket, wherever it is; resolves with its
   * id (null while history is off). A repeat of `idempotencyKey` resolves the
   * first one's id and sends nothing.
   */
  async publishToUser (userId: string, channel: string, event: OutgoingEvent, idempotencyKey?: string): Promise<string | null> {
    return (await this.#sender.send(channel, userId, event, idempotencyKey)).id
  }

  /**
   * History on: publishes to a user and waits until the user's client acks
   * the event (or a later one on the channel), on whichever node its socket
   * is, for at most `timeoutMs`. No node holding a socket of the user: false
   * at once. A repeat of `idempotencyKey` resolves the first one's id alone:
   * its ack went to the node that published it, if it came at all.
   */
  async publishAwaitingAck (userId: string, channel: string, event: OutgoingEvent, timeoutMs: number, idempotencyKey?: string): Promise<{ id: string | null, acked?: boolean }> {
    const wait = this.#acks.expect(userId, channel)
    let sent
    try {
      sent = await this.#sender.send(channel, userId, event, idempotencyKey, this.nodeId)
    } catch (error) {
      wait.cancel()
      throw error
    }
    if ('repeated' in sent) {
      wait.cancel()
      return { id: sent.id }
    }
    const id = sent.id as string
    const offline = sent.receivers === undefined ? this.#hub.connections.forUser(userId) === undefined : sent.receivers === 0
    return { id, acked: await wait.known(id, offline ? 0 : timeoutMs) }
  }

  async publishToChannel (channel: string, event: OutgoingEvent, idempotencyKey?: string): Promise<string | null> {
    return (await this.#sender.send(channel, undefined, event, idempotencyKey)).id
  }

  /** Closes the user's socket, wherever it is, after `finalEvent` (on `finalEvent.channel`) if given. */
  async disconnectUser (userId: string, disconnect: Disconnection, finalEvent?: OutgoingEvent & { channel: string }): Promise<void> {
    await this.#sender.disconnectUser(userId, disconnect, finalEvent)
  }

  /** Closes every socket that authenticated with the token of `tokenHash` (the user `userId`'s, if known), on every node (4501). */
  async revokeToken (tokenHash: string, userId: string | undefined): Promise<void> {
    await this.#sender.revokeToken(tokenHash, userId)
  }

  async stop (): Promise<void> {
    this.#acks.close()
    const cluster = this.#cluster
    if (cluster !== undefined) {
      clearInterval(cluster.maintenance)
      cluster.redis.off('ready', cluster.relist)
      // Bounded: a borrowed client may queue forever while Redis is down; the TTL cleans up anyway.
      await Promise.race([cluster.presence.leave().catch(() => {}), new Promise((resolve) => setTimeout(resolve, LEAVE_TIMEOUT_MS).unref())])
    }
    await this.#broker.close()
  }

  /** Resolves once this node receives what is published to the user (the broker's promise, handed on). */
  #listen (userId: string): Promise<void> {
    return this.#broker.subscribe(this.#topics.user(userId))
  }

  #opened (connection: Connection): void {
    if (this.#cluster === undefined) return
    this.#cluster.presence.opened(connection)
    this.#cluster.fencing.claim(connection).catch(() => {})
  }

  #closed (connection: Connection): void {
    this.#cluster?.presence.closed(connection)
    this.#cluster?.fencing.closed(connection)
    if (this.#hub.connections.forUser(connection.userId) !== undefined) return
    this.#broker.unsubscribe(this.#topics.user(connection.userId))
  }

  #receive (topic: string, message: Buffer): void {
    const decoded = decodeMessage(message)
    if (decoded.kind === 'malformed') {
      this.#log.warn({ channel: topic }, 'fastify-realtime: ignored a message not written by this plugin')
      return
    }
    if (decoded.kind === 'control') {
      this.#obey(decoded.control)
      return
    }
    if (decoded.kind === 'ack') {
      if (topic === this.#ownTopic) this.#acks.acked(decoded.ack)
      return
    }
    const event = toEncodedEvent(decoded)
    const userId = this.#topics.userOf(topic)
    if (userId === undefined) {
      // Only the channel's own topic may carry a global event.
      if (topic === this.#topics.global(decoded.channel)) this.#hub.deliverToChannel(decoded.channel, event)
      return
    }
    const channel = this.#catalog.get(decoded.channel)
    if (channel !== undefined) this.#hub.deliverToUser(userId, channel.name, channel.alwaysDelivered, event)
  }

  #obey (control: ControlMessage): void {
    switch (control.type) {
      case 'takeover':
        this.#cluster?.fencing.onAnnounced(control.userId, control.generation)
        return
      case 'disconnect': {
        const payload = control.finalEvent === undefined ? undefined : Buffer.from(control.finalEvent)
        const finalEvent = payload === undefined ? undefined : { payload, frame: frameText(payload), publishedAt: control.publishedAt }
        this.#hub.disconnectUser(control.userId, { code: control.code, reason: control.reason }, finalEvent)
        return
      }
      case 'revoke':
        this.#hub.closeToken(control.tokenHash, control.userId, Disconnect.TOKEN_REVOKED)
    }
  }

  /**
   * Cluster mode: fencing of one socket per user across nodes, presence in
   * Redis, and one maintenance timer (every heartbeat interval) that
   * refreshes presence and repairs lost takeover announcements.
   */
  #joinCluster (options: NodeOptions, { redis, heartbeatIntervalMs }: { redis: RedisClient, heartbeatIntervalMs: number }) {
    const { hub, keyPrefix, log } = options
    const fencing = new Fencing({
      generations: new Generations(redis, keyPrefix),
      hub,
      listen: (userId) => this.#listen(userId),
      announce: async (userId, generation) => await this.#sender.control(this.#topics.user(userId), { type: 'takeover', userId, generation }),
      log
    })
    const presence = new RedisPresence({ redis, keyPrefix, nodeId: options.nodeId, connections: hub.connections, ttlMs: 2 * heartbeatIntervalMs, log })
    const maintenance = setInterval(() => {
      Promise.all([presence.refresh(), fencing.repair()])
        .catch((error: Error) => log.debug({ err: error }, 'fastify-realtime: cluster maintenance failed'))
    }, heartbeatIntervalMs).unref()
    const relist = (): void => {
      presence.refresh().catch((error: Error) => log.debug({ err: error }, 'fastify-realtime: presence refresh failed'))
    }
    relist()
    // Redis may be back empty (restarted without persistence), and writes made
    // while it was away were lost: relist this node's sockets as soon as the
    // link is back, not at the next maintenance tick a heartbeat interval away.
    redis.on('ready', relist)
    return { redis, presence, fencing, maintenance, relist }
  }
}

/** An event from the wire, ready for the hub: framed once, with its stream position when it has an id. */
function toEncodedEvent (decoded: Extract<WireMessage, { kind: 'event' }>): EncodedEvent {
  const event: EncodedEvent = { payload: decoded.payload, frame: frameText(decoded.payload), publishedAt: decoded.publishedAt }
  const position = decoded.id === undefined ? undefined : parseId(decoded.id)
  if (position !== undefined) event.position = { ...position, channel: decoded.channel, ackNode: decoded.ackNode ?? '' }
  return event
}
