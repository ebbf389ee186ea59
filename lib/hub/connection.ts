import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { SETTINGS_CHANNEL } from '../constants.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import { MessageRateLimit } from './message-rate-limit.js'

export interface ConnectionInit {
  id: string
  userId: string
  /** Kept to resolve again (revocation check); never logged, listed or sent. */
  token: string
  tokenHash: string
  expiresAt: number
  socket: WebSocket
  /** The TCP socket under `socket`, for corked writes; absent for `injectWS` sockets. */
  transport: Socket | undefined
  remoteAddress: string
  userAgent: string | null
  origin: string | null
  bucket: MessageRateLimit
}

/**
 * One live socket and everything the gateway tracks about it. Owned by the
 * registry; the `ws` object itself carries nothing of ours.
 */
export class Connection {
  readonly id: string
  readonly userId: string
  readonly token: string
  readonly tokenHash: string
  readonly expiresAt: number
  readonly socket: WebSocket
  readonly transport: Socket | undefined
  readonly remoteAddress: string
  readonly userAgent: string | null
  readonly origin: string | null
  readonly connectedAt = Date.now()
  /** A short array, not a Set: a handful of channels at most, and a Set costs a socket ~200 bytes more. */
  readonly subscriptions: string[] = [SETTINGS_CHANNEL]
  readonly bucket: MessageRateLimit
  lastPongAt: number
  messagesIn = 0
  messagesOut = 0
  /** Replied to the last protocol ping (or none sent yet). */
  alive = true
  /** Inside a corked write batch of the outbox. */
  corked = false
  /**
   * What was sent to the socket before its `connected` went out (cluster
   * mode: until this node listens on the user's channel); it follows `connected`.
   */
  held: { events: EncodedEvent[], bytes: number } | undefined = undefined
  /** Left the registry; nothing more is sent to it. */
  closed = false
  /** Cluster mode: the per-user generation this socket claimed (newest wins across nodes). */
  generation: number | undefined = undefined
  /** Holds a connection slot of the limiter, given back when the socket is gone. */
  holdsSlot = false
  /** The code the gateway closed (or cut) this socket with, once it has. */
  closeCode: number | undefined = undefined
  /** The second whose expiry bucket holds this connection. */
  expiryBucket = 0
  /** Recent invalid messages, for the protocol-violation rule. */
  invalidMessages = 0
  invalidWindowStartedAt = performance.now()
  /** Messages refused by the rate limit since the last accepted one. */
  rateLimitedInARow = 0

  constructor (init: ConnectionInit) {
    this.id = init.id
    this.userId = init.userId
    this.token = init.token
    this.tokenHash = init.tokenHash
    this.expiresAt = init.expiresAt
    this.socket = init.socket
    this.transport = init.transport
    this.remoteAddress = init.remoteAddress
    this.userAgent = init.userAgent
    this.origin = init.origin
    this.bucket = init.bucket
    this.lastPongAt = this.connectedAt
  }

  /** Bytes accepted for sending that the peer has not taken yet. */
  get bufferedBytes (): number {
    return this.socket.bufferedAmount
  }

  /** The diagnostic view (SPEC's connection fields); never includes the token. */
  describe (): ConnectionInfo {
    return {
      connection_id: this.id,
      user_id: this.userId,
      connected_at: new Date(this.connectedAt).toISOString(),
      remote_address: this.remoteAddress,
      user_agent: this.userAgent,
      origin: this.origin,
      subscriptions: [...this.subscriptions],
      last_pong_at: new Date(this.lastPongAt).toISOString(),
      messages_in: this.messagesIn,
      messages_out: this.messagesOut,
      buffered_bytes: this.bufferedBytes
    }
  }
}

export interface ConnectionInfo {
  connection_id: string
  user_id: string
  connected_at: string
  remote_address: string
  user_agent: string | null
  origin: string | null
  subscriptions: string[]
  last_pong_at: string
  messages_in: number
  messages_out: number
  buffered_bytes: number
}
