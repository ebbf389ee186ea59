import type { ChannelCatalog } from '../channels/catalog.js'
import { Disconnect, FORCE_LOGOUT_CHANNEL, FORCE_LOGOUT_EVENT, MAX_AWAIT_ACK_MS, MAX_EVENT_NAME_LENGTH } from '../constants.js'
import type { ConnectionInfo } from '../hub/connection.js'
import type { Hub } from '../hub/hub.js'
import {
  FST_REALTIME_AWAIT_ACK_UNSUPPORTED, FST_REALTIME_INVALID_ARGUMENT, FST_REALTIME_INVALID_DATA, FST_REALTIME_UNKNOWN_CHANNEL,
  FST_REALTIME_USER_ID_FORBIDDEN, FST_REALTIME_USER_ID_REQUIRED
} from '../errors.js'
import { serializeEvent } from '../protocol/server-event.js'
import type { GatewayStats, StatsSnapshot } from '../stats.js'
import type { OutgoingEvent, RealtimeNode } from './node.js'
import type { PresenceEntry } from './presence.js'
import { hashToken, checkToken, normalizeUserId, type TokenState, type TokenStore } from '../tokens/token-store.js'

import type { EventData, RealtimeChannels } from '../channels/declarations.js'

export type { RealtimeChannels }

export type UserId = string | number

/** What a publish resolves with. */
export interface PublishResult {
  /** The event's id in its stream; `null` while history is off. */
  id: string | null
  /** With `awaitAck`: whether the user's client acknowledged the event (or a later one on the channel) in time. */
  acked?: boolean
}

export interface PublishOptions {
  /** Required for user-scoped channels, refused for global ones. */
  userId?: UserId
  /**
   * History on, user channels: resolve once the user's client acks the event,
   * or with `acked: false` after `timeoutMs` (at once when the user has no socket).
   */
  awaitAck?: { timeoutMs: number }
}

/** The typed helper of one channel: `channels['kyc.events'].publish(userId, event, data)`. */
export type ChannelHelper<C extends keyof RealtimeChannels> = RealtimeChannels[C]['scope'] extends 'user'
  ? { publish: (userId: UserId, event: string, data: RealtimeChannels[C]['data'], options?: Pick<PublishOptions, 'awaitAck'>) => Promise<PublishResult> }
  : { publish: (event: string, data: RealtimeChannels[C]['data']) => Promise<PublishResult> }

export interface RealtimeTokens {
  /** Mints a random token (256 bits) for `userId` and stores its state. */
  issue: (userId: UserId, options: { ttlSeconds: number }) => Promise<string>
  /** The token stops working for new connections, and its open sockets close with 4501. */
  revoke: (token: string) => Promise<void>
  /** The state of a live token, or `null` if it is unknown, expired or revoked. */
  resolve: (token: string) => Promise<TokenState | null>
}

export interface Realtime {
  /**
   * Publishes one event; resolves once the broker took it (in cluster mode:
   * Redis accepted it). In cluster mode it rejects within
   * `cluster.publishTimeoutMs` with `FST_REALTIME_REDIS_UNAVAILABLE` when
   * nothing was sent, or `FST_REALTIME_OUTCOME_UNKNOWN` when it may still arrive.
   */
  publish: {
    <C extends keyof RealtimeChannels>(channel: C, event: string, data: RealtimeChannels[C]['data'], options?: PublishOptions): Promise<PublishResult>
    <C extends string>(channel: C extends keyof RealtimeChannels ? never : C, event: string, data: EventData, options?: PublishOptions): Promise<PublishResult>
  }
  /** A typed helper per channel, keyed by channel name. */
  channels: { [C in keyof RealtimeChannels]: ChannelHelper<C> }
  /** Sends MOBILE_USER_FORCE_LOGOUT_EVENT on `mobile.force.logout`, then closes the user's socket with 4502. */
  forceLogout: (userId: UserId, data?: EventData) => Promise<void>
  /** Closes the user's socket with `code` (1000 or 4000–4999; default 1000). */
  disconnect: (userId: UserId, options?: { code?: number, reason?: string }) => Promise<void>
  tokens: RealtimeTokens
  /** Users with a socket on this node. */
  connectedUsers: () => string[]
  /** The connections of this node, as diagnostics show them (never a token). */
  connections: () => ConnectionInfo[]
  /** Counters of this node since it started. */
  stats: () => StatsSnapshot
  /** This node's id (in cluster-wide listings and Redis keys). */
  nodeId: string
  /** Cluster-wide views, read from Redis in cluster mode (this process in embedded mode). */
  presence: {
    connectedUsers: () => Promise<string[]>
    connections: () => Promise<PresenceEntry[]>
  }
}

export interface RealtimeParts {
  catalog: ChannelCatalog
  node: RealtimeNode
  hub: Hub
  store: TokenStore
  stats: GatewayStats
  history: boolean
}

/** Builds `app.realtime`: argument checks and encoding here, delivery through the node. */
export function buildRealtimeApi ({ catalog, node, hub, store, stats, history }: RealtimeParts): Realtime {
  const { presence, nodeId } = node
  async function publish (channelName: string, event: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const channel = catalog.get(channelName)
    if (channel === undefined) throw new FST_REALTIME_UNKNOWN_CHANNEL(String(channelName))
    checkEventName(event)
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new FST_REALTIME_INVALID_DATA(channel.name, 'data must be an object')
    }
    const problem = channel.checkData(data)
    if (problem !== undefined) throw new FST_REALTIME_INVALID_DATA(channel.name, problem)
    if (channel.scope === 'global' && options.userId !== undefined) throw new FST_REALTIME_USER_ID_FORBIDDEN(channel.name)
    if (channel.scope === 'user' && options.userId === undefined) throw new FST_REALTIME_USER_ID_REQUIRED(channel.name)
    const userId = options.userId === undefined ? undefined : normalizeUserId(options.userId)
    const awaitAck = options.awaitAck === undefined ? undefined : checkAwaitAck(options.awaitAck, channel.scope, history)
    const encoded = encode(channel.name, event, data)
    stats.publishes++
    if (userId === undefined) return { id: await node.publishToChannel(channel.name, encoded) }
    if (awaitAck === undefined) return { id: await node.publishToUser(userId, channel.name, encoded) }
    return await node.publishAwaitingAck(userId, channel.name, encoded, awaitAck)
  }

  const channels: Record<string, unknown> = {}
  for (const channel of catalog) {
    channels[channel.name] = channel.scope === 'user'
      ? { publish: async (userId: UserId, event: string, data: EventData, options?: Pick<PublishOptions, 'awaitAck'>) => await publish(channel.name, event, data, { ...options, userId }) }
      : { publish: async (event: string, data: EventData) => await publish(channel.name, event, data) }
  }

  return {
    publish: publish as Realtime['publish'],
    channels: channels as Realtime['channels'],
    async forceLogout (userId, data = {}) {
      const id = normalizeUserId(userId)
      const event = encode(FORCE_LOGOUT_CHANNEL, FORCE_LOGOUT_EVENT, { ...data, mobile_user_id: mobileUserId(id), is_force_logout: true })
      await node.disconnectUser(id, Disconnect.FORCED_LOGOUT, { ...event, channel: FORCE_LOGOUT_CHANNEL })
    },
    async disconnect (userId, { code = 1000, reason = '' } = {}) {
      const id = normalizeUserId(userId)
      if (code !== 1000 && (!Number.isInteger(code) || code < 4000 || code > 4999)) {
        throw new FST_REALTIME_INVALID_ARGUMENT('code', 'must be 1000 or an application code 4000-4999')
      }
      if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
        throw new FST_REALTIME_INVALID_ARGUMENT('reason', 'must be a string of at most 123 bytes')
      }
      await node.disconnectUser(id, { code, reason })
    },
    tokens: {
      issue: async (userId, options) => await store.issue(userId, options),
      async revoke (token) {
        await store.revoke(checkToken(token))
        await node.revokeToken(hashToken(token))
      },
      resolve: async (token) => await store.resolve(token)
    },
    connectedUsers: () => hub.connections.userIds(),
    connections: () => Array.from(hub.connections, (connection) => connection.describe()),
    stats: () => stats.snapshot(),
    nodeId,
    presence: {
      connectedUsers: async () => await presence.connectedUsers(),
      connections: async () => await presence.connections()
    }
  }
}

function encode (channel: string, event: string, data: object): OutgoingEvent {
  try {
    return { json: serializeEvent(event, channel, data), publishedAt: Date.now() }
  } catch (error) {
    throw new FST_REALTIME_INVALID_DATA(channel, `not serializable to JSON (${(error as Error).message})`)
  }
}

/** The ack timeout, once `awaitAck` is known to be possible and well-formed. */
function checkAwaitAck (awaitAck: { timeoutMs: number }, scope: 'user' | 'global', history: boolean): number {
  if (!history) throw new FST_REALTIME_AWAIT_ACK_UNSUPPORTED('history is off (acks name events by their ids)')
  if (scope === 'global') throw new FST_REALTIME_AWAIT_ACK_UNSUPPORTED('a global channel has no one client to ack')
  const timeoutMs = (awaitAck as { timeoutMs?: unknown } | null)?.timeoutMs
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_AWAIT_ACK_MS) {
    throw new FST_REALTIME_INVALID_ARGUMENT('awaitAck.timeoutMs', `must be an integer of 1 to ${MAX_AWAIT_ACK_MS} (ms)`)
  }
  return timeoutMs
}

function checkEventName (event: unknown): void {
  if (typeof event !== 'string' || event.length === 0 || event.length > MAX_EVENT_NAME_LENGTH) {
    throw new FST_REALTIME_INVALID_ARGUMENT('event', `must be a string of 1 to ${MAX_EVENT_NAME_LENGTH} characters`)
  }
}

/** The mobile apps expect `mobile_user_id` as a number when the id is numeric. */
function mobileUserId (userId: string): string | number {
  const numeric = Number(userId)
  return /^\d+$/.test(userId) && Number.isSafeInteger(numeric) && String(numeric) === userId ? numeric : userId
}
