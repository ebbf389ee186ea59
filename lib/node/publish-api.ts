import type { ChannelCatalog } from '../channels/catalog.js'
import type { EventData, RealtimeChannels } from '../channels/declarations.js'
import {
  Disconnect, FORCE_LOGOUT_CHANNEL, FORCE_LOGOUT_EVENT, MAX_AWAIT_ACK_MS, MAX_EVENT_NAME_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH,
  type Disconnection
} from '../constants.js'
import {
  FST_REALTIME_AWAIT_ACK_UNSUPPORTED, FST_REALTIME_INVALID_ARGUMENT, FST_REALTIME_INVALID_DATA, FST_REALTIME_UNKNOWN_CHANNEL,
  FST_REALTIME_USER_ID_FORBIDDEN, FST_REALTIME_USER_ID_REQUIRED
} from '../errors.js'
import { serializeEvent } from '../protocol/server-event.js'
import { checkToken, hashToken, normalizeUserId } from '../tokens/token-store.js'
import type { OutgoingEvent } from './sender.js'

export type UserId = string | number

/** What a publish resolves with. */
export interface PublishResult {
  /** The event's id in its stream; `null` while history is off. A repeat of an idempotent publish: the first one's. */
  id: string | null
  /** With `awaitAck`: whether the user's client acknowledged the event (or a later one on the channel) in time. Absent for a repeat. */
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
  /**
   * Makes a retry harmless: a publish with the key of one made within
   * `idempotency.windowSeconds` (to the same user and channel, or the same
   * global channel) sends nothing and resolves the first one's id.
   */
  idempotencyKey?: string
}

/** The typed helper of one channel: `channels['kyc.events'].publish(userId, event, data)`. */
export type ChannelHelper<C extends keyof RealtimeChannels> = RealtimeChannels[C]['scope'] extends 'user'
  ? { publish: (userId: UserId, event: string, data: RealtimeChannels[C]['data'], options?: Pick<PublishOptions, 'awaitAck' | 'idempotencyKey'>) => Promise<PublishResult> }
  : { publish: (event: string, data: RealtimeChannels[C]['data'], options?: Pick<PublishOptions, 'idempotencyKey'>) => Promise<PublishResult> }

/** The calls that send to the sockets of a deployment: on `app.realtime`, and on the standalone publisher. */
export interface PublishApi {
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
  /** Forgets the token in the token store, then closes its open sockets with 4501. */
  revoke: (token: string) => Promise<void>
}

/** Where the checked calls go: a gateway node, or the standalone publisher's sender. */
export interface PublishTarget {
  publishToUser: (userId: string, channel: string, event: OutgoingEvent, idempotencyKey?: string) => Promise<string | null>
  publishToChannel: (channel: string, event: OutgoingEvent, idempotencyKey?: string) => Promise<string | null>
  /** Absent where no ack can come back (the standalone publisher). */
  publishAwaitingAck?: (userId: string, channel: string, event: OutgoingEvent, timeoutMs: number, idempotencyKey?: string) => Promise<PublishResult>
  disconnectUser: (userId: string, disconnect: Disconnection, finalEvent?: OutgoingEvent & { channel: string }) => Promise<void>
  /** `userId`: whose token it was, where the token store knew it (the nodes then look at that user's socket only). */
  revokeToken: (tokenHash: string, userId: string | undefined) => Promise<void>
}

export interface PublishApiParts {
  catalog: ChannelCatalog
  target: PublishTarget
  history: boolean
  /** Why `awaitAck` cannot work here at all, when `target` has no `publishAwaitingAck`. */
  noAcks?: string
  /** Forgets a token in the token store; resolves with the user whose token it was, where the store knew it. */
  forgetToken: (token: string) => Promise<string | undefined>
  /** Each publish that passed the checks. */
  onPublish: () => void
}

/** Builds the calls: every argument check and the encoding here, delivery through `target`. */
export function buildPublishApi ({ catalog, target, history, noAcks, forgetToken, onPublish }: PublishApiParts): PublishApi {
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
    const key = options.idempotencyKey === undefined ? undefined : checkIdempotencyKey(options.idempotencyKey)
    const awaitAck = options.awaitAck === undefined ? undefined : checkAwaitAck(options.awaitAck, channel.scope, history, noAcks)
    const encoded = encode(channel.name, event, data)
    onPublish()
    if (userId === undefined) return { id: await target.publishToChannel(channel.name, encoded, key) }
    if (awaitAck === undefined) return { id: await target.publishToUser(userId, channel.name, encoded, key) }
    // checkAwaitAck refused awaitAck where there is no publishAwaitingAck.
    return await (target.publishAwaitingAck as NonNullable<PublishTarget['publishAwaitingAck']>)(userId, channel.name, encoded, awaitAck, key)
  }

  const channels: Record<string, unknown> = {}
  for (const channel of catalog) {
    channels[channel.name] = channel.scope === 'user'
      ? { publish: async (userId: UserId, event: string, data: EventData, options?: PublishOptions) => await publish(channel.name, event, data, { ...options, userId }) }
      : { publish: async (event: string, data: EventData, options?: PublishOptions) => await publish(channel.name, event, data, { ...options, userId: undefined }) }
  }

  return {
    publish: publish as PublishApi['publish'],
    channels: channels as PublishApi['channels'],
    async forceLogout (userId, data = {}) {
      const id = normalizeUserId(userId)
      const event = encode(FORCE_LOGOUT_CHANNEL, FORCE_LOGOUT_EVENT, { ...data, mobile_user_id: mobileUserId(id), is_force_logout: true })
      await target.disconnectUser(id, Disconnect.FORCED_LOGOUT, { ...event, channel: FORCE_LOGOUT_CHANNEL })
    },
    async disconnect (userId, { code = 1000, reason = '' } = {}) {
      const id = normalizeUserId(userId)
      if (code !== 1000 && (!Number.isInteger(code) || code < 4000 || code > 4999)) {
        throw new FST_REALTIME_INVALID_ARGUMENT('code', 'must be 1000 or an application code 4000-4999')
      }
      if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
        throw new FST_REALTIME_INVALID_ARGUMENT('reason', 'must be a string of at most 123 bytes')
      }
      await target.disconnectUser(id, { code, reason })
    },
    async revoke (token) {
      // The store answers whose token it was: each node then finds the socket by its user.
      const userId = await forgetToken(checkToken(token))
      await target.revokeToken(hashToken(token), userId)
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
function checkAwaitAck (awaitAck: { timeoutMs: number }, scope: 'user' | 'global', history: boolean, noAcks: string | undefined): number {
  if (noAcks !== undefined) throw new FST_REALTIME_AWAIT_ACK_UNSUPPORTED(noAcks)
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

function checkIdempotencyKey (key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new FST_REALTIME_INVALID_ARGUMENT('idempotencyKey', `must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`)
  }
  return key
}

/** The mobile apps expect `mobile_user_id` as a number when the id is numeric. */
function mobileUserId (userId: string): string | number {
  const numeric = Number(userId)
  return /^\d+$/.test(userId) && Number.isSafeInteger(numeric) && String(numeric) === userId ? numeric : userId
}
