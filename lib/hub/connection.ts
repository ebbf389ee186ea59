import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { AUTO_SUBSCRIBED } from '../constants.js'
import { randomInt32 } from '../random-ids.js'
import type { ClientMessage } from '../protocol/client-message.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import { MessageRateLimit } from './message-rate-limit.js'
import { StreamPositions } from './stream-positions.js'
import { WALL_CLOCK_ORIGIN, monotonicMs, wallClockMs } from './clock.js'

export interface ConnectionInit {
  userId: string
  /**
   * Kept to resolve again (revocation check) where the token store cannot
   * resolve by the hash alone (a custom key layout); never logged, listed or sent.
   */
  token: string | undefined
  /** The token's SHA-256 (`tokenDigest`). */
  tokenDigest: string
  expiresAt: number
  socket: WebSocket
  /** The TCP socket under `socket`, written directly (one write per turn); absent for `injectWS` sockets. */
  transport: Socket | undefined
  remoteAddress: string
  userAgent: string | null
  origin: string | null
  holdsSlot: boolean
  /** History on: the socket tracks its position in each stream. */
  history: boolean
}

// The bits of Connection.#flags.
/** Replied to the last protocol ping (or none sent yet). */
const ALIVE = 1
/** History on: a catch-up step is under way. */
const STEPPING = 2
/** Holds a connection slot of the limiter. */
const HOLDS_SLOT = 4

/** What a socket's own messages need: counted and limited from the first one on. */
class Inbound {
  messages = 0
  messageRateLimit: MessageRateLimit | undefined = undefined
  ackRateLimit: MessageRateLimit | undefined = undefined
  invalidMessages = 0
  /** Whole ms of `performance.now()`; the window opens at the first invalid message. */
  invalidWindowStartedAt = 0
  /** Refreshes of the socket's token run one after the other, in the order they arrived. */
  refreshing: Promise<void> | undefined = undefined
}

/**
 * One live socket and everything the hub tracks about it. Its state changes
 * only through its own methods, each called by the one part that owns that
 * piece (named on the method); the `ws` object carries only this, in a
 * private field of the hub's socket class (hub-socket.ts).
 *
 * Closed means one thing: the hub ended it, or its peer did. From then on it
 * is out of the connection index and nothing more is sent to it.
 */
export class Connection {
  /**
   * The id: 8 random bytes (not the request id, which a client may choose;
   * connection ids must be unique), kept as two 32-bit integers, which the
   * object holds in place, and written out in hex when asked for: as a
   * 16-character string it would cost every socket 16 bytes more.
   */
  readonly #idHigh: number
  readonly #idLow: number
  readonly userId: string
  readonly socket: WebSocket
  readonly transport: Socket | undefined
  readonly remoteAddress: string
  readonly userAgent: string | null
  readonly origin: string | null
  /** Times: ms since `WALL_CLOCK_ORIGIN`, small integers (see clock.ts). */
  readonly #connectedAt = wallClockMs()
  /** History on: its position per channel, acks, awaited events (owned by the hub and the outbox). */
  readonly positions: StreamPositions | undefined
  /**
   * A short array, not a Set: a handful of channels at most, and a Set costs a
   * socket ~200 bytes more. Replaced, never changed in place, so every socket
   * that has not subscribed or unsubscribed yet shares the auto-subscribed one.
   */
  #subscriptions: readonly string[] = AUTO_SUBSCRIBED
  #lastPongAt: number
  #messagesOut = 0
  /** The booleans, as bits of one small integer (a field each would cost 8 bytes). */
  #flags: number
  #held: { events: EncodedEvent[], bytes: number } | undefined = undefined
  #generation: number | undefined = undefined
  #closeCode: number | undefined = undefined
  #expiryBucket = 0
  /** History on: an asynchronous step (catching up) is under way; client messages wait in order. */
  #waiting: ClientMessage[] | undefined = undefined
  #token: string | undefined
  #tokenDigest: string
  #expiresAt: number
  /** What the socket's own messages need, from its first one on: an idle socket has none. */
  #inbound: Inbound | undefined = undefined
  /**
   * The outbox's: the frames written to the socket this turn of the event
   * loop (one, or several in order), handed to its TCP socket in one write
   * when the turn ends.
   */
  outgoing: Buffer | Buffer[] | undefined = undefined
  /** The dispatcher's: the last queued delivery job this socket was written ahead of the queue through (-1: none). */
  caughtUpThrough = -1

  constructor (init: ConnectionInit) {
    this.#idHigh = randomInt32()
    this.#idLow = randomInt32()
    this.userId = init.userId
    this.#token = ownCopy(init.token)
    this.#tokenDigest = init.tokenDigest
    this.#expiresAt = init.expiresAt
    this.socket = init.socket
    this.transport = init.transport
    this.remoteAddress = init.remoteAddress
    this.userAgent = init.userAgent
    this.origin = init.origin
    this.#flags = ALIVE | (init.holdsSlot ? HOLDS_SLOT : 0)
    this.positions = init.history ? new StreamPositions() : undefined
    this.#lastPongAt = this.#connectedAt
  }

  get id (): string {
    return hex32(this.#idHigh) + hex32(this.#idLow)
  }

  /** Holds a connection slot of the limiter, given back when the socket is gone. */
  get holdsSlot (): boolean {
    return (this.#flags & HOLDS_SLOT) !== 0
  }

  /** When the socket connected (ms since the epoch). */
  get connectedAt (): number {
    return WALL_CLOCK_ORIGIN + this.#connectedAt
  }

  /** Kept only where the revocation check needs it (see ConnectionInit); never logged, listed or sent. */
  get token (): string | undefined {
    return this.#token
  }

  get tokenDigest (): string {
    return this.#tokenDigest
  }

  /** When the socket's token expires (unix seconds): it is closed with 4005 then. */
  get expiresAt (): number {
    return this.#expiresAt
  }

  /** Hub: the client refreshed its token; expiry and revocation follow the new one. */
  renew (token: string | undefined, tokenDigest: string, expiresAt: number): void {
    this.#token = ownCopy(token)
    this.#tokenDigest = tokenDigest
    this.#expiresAt = expiresAt
  }

  /**
   * Client messages: the bucket of its inbound messages (`burst` at once,
   * refilled at `perSecond`). Created at the first message, full, as it would
   * be had it been created at the handshake: an idle socket has none.
   */
  messageRateLimit (burst: number, perSecond: number): MessageRateLimit {
    const inbound = this.#ownInbound()
    inbound.messageRateLimit ??= new MessageRateLimit(burst, perSecond)
    return inbound.messageRateLimit
  }

  /**
   * Client messages: acks have a bucket of their own (`perSecond` big and
   * refilled as fast), created at the first ack, so a client acking every
   * event is not rate limited.
   */
  ackRateLimit (perSecond: number): MessageRateLimit {
    const inbound = this.#ownInbound()
    inbound.ackRateLimit ??= new MessageRateLimit(perSecond, perSecond)
    return inbound.ackRateLimit
  }

  /** Hub: runs `refresh` after the refreshes before it. */
  queueRefresh (refresh: () => Promise<void>): void {
    const inbound = this.#ownInbound()
    inbound.refreshing = (inbound.refreshing ?? Promise.resolve()).then(refresh)
  }

  #ownInbound (): Inbound {
    this.#inbound ??= new Inbound()
    return this.#inbound
  }

  get subscriptions (): readonly string[] {
    return this.#subscriptions
  }

  get closed (): boolean {
    return this.#closeCode !== undefined
  }

  /** The code the hub closed (or cut) this socket with, or the one its peer closed it with. */
  get closeCode (): number | undefined {
    return this.#closeCode
  }

  /** Cluster mode: the per-user generation this socket claimed (newest wins across nodes). */
  get generation (): number | undefined {
    return this.#generation
  }

  get messagesIn (): number {
    return this.#inbound?.messages ?? 0
  }

  get messagesOut (): number {
    return this.#messagesOut
  }

  get lastPongAt (): number {
    return WALL_CLOCK_ORIGIN + this.#lastPongAt
  }

  /** Hub: records how it ended; false if it had ended already (the first code stands). */
  end (code: number): boolean {
    if (this.#closeCode !== undefined) return false
    this.#closeCode = code
    return true
  }

  /** Connection index: adds a channel; false if it was there. */
  addSubscription (channel: string): boolean {
    if (this.#subscriptions.includes(channel)) return false
    this.#subscriptions = [...this.#subscriptions, channel]
    return true
  }

  /** Connection index. */
  removeSubscription (channel: string): void {
    if (this.#subscriptions.includes(channel)) this.#subscriptions = this.#subscriptions.filter((subscribed) => subscribed !== channel)
  }

  /** Heartbeat: false if the previous ping went unanswered; otherwise a pong is expected now. */
  awaitPong (): boolean {
    if ((this.#flags & ALIVE) === 0) return false
    this.#flags &= ~ALIVE
    return true
  }

  /** Heartbeat (the socket's pong). */
  ponged (): void {
    this.#flags |= ALIVE
    this.#lastPongAt = wallClockMs()
  }

  /** Client messages. */
  countIn (): void {
    this.#ownInbound().messages++
  }

  /**
   * Client messages: counts an invalid message within a window of `windowMs`
   * (opened by the first one) and returns how many the window holds now.
   */
  countInvalid (windowMs: number, now = monotonicMs()): number {
    const inbound = this.#ownInbound()
    if (inbound.invalidMessages === 0 || now - inbound.invalidWindowStartedAt > windowMs) {
      inbound.invalidWindowStartedAt = now
      inbound.invalidMessages = 0
    }
    return ++inbound.invalidMessages
  }

  /** Written to this turn of the event loop (by the outbox, not yet handed to the TCP socket). */
  get writtenThisTurn (): boolean {
    return this.outgoing !== undefined
  }

  /** Outbox. */
  countOut (): void {
    this.#messagesOut++
  }

  /**
   * Outbox: what was sent to the socket before its `connected` went out
   * (cluster mode: until this node listens on the user's topic); it follows
   * `connected`. Undefined once announced (or in embedded mode, at once).
   */
  get held (): { events: EncodedEvent[], bytes: number } | undefined {
    return this.#held
  }

  /** Outbox: starts holding (true) or stops and hands back what was held. */
  hold (holding: boolean): EncodedEvent[] {
    const events = this.#held?.events ?? []
    this.#held = holding ? { events: [], bytes: 0 } : undefined
    return events
  }

  /** Hub: a catch-up step is under way, or messages that arrived during one still wait: new ones queue behind. */
  get busy (): boolean {
    return this.#waiting !== undefined
  }

  /** Hub: a catch-up step begins. */
  beginStep (): void {
    this.#flags |= STEPPING
    this.#waiting ??= []
  }

  /** Hub: the step ended. */
  endStep (): void {
    this.#flags &= ~STEPPING
  }

  /** Client messages: a message that arrived while busy, handled after what is before it. */
  wait (message: ClientMessage): void {
    (this.#waiting as ClientMessage[]).push(message)
  }

  /** Hub: the next waiting message, or undefined during a step or once none waits (then the socket is no longer busy). */
  nextWaiting (): ClientMessage | undefined {
    if ((this.#flags & STEPPING) !== 0 || this.#waiting === undefined) return undefined
    const next = this.#waiting.shift()
    if (next === undefined) this.#waiting = undefined
    return next
  }

  /** Fencing. */
  claimed (generation: number): void {
    this.#generation = generation
  }

  /** Expiry wheel: the second whose bucket holds this connection. */
  get expiryBucket (): number {
    return this.#expiryBucket
  }

  /** Expiry wheel. */
  placeInExpiryBucket (second: number): void {
    this.#expiryBucket = second
  }

  /** Bytes accepted for sending that the peer has not taken yet. */
  get bufferedBytes (): number {
    return this.socket.bufferedAmount
  }

  /** The diagnostic view (README "`/connections`"); never includes the token. */
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
      buffered_bytes: this.bufferedBytes,
      ...(this.positions === undefined ? {} : { acked: this.positions.acked() })
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
  /** History on: the last id the client acknowledged, per channel. */
  acked?: Record<string, string>
}

/** A 32-bit integer as 8 hex digits (its two's complement, for a negative one). */
function hex32 (value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0')
}

/**
 * A copy of `text` that holds nothing else: a token cut out of the request URL
 * (or a client message) is a slice that would keep the whole string alive for
 * as long as the socket lives. (UTF-16 round-trips every JavaScript string.)
 */
function ownCopy (text: string | undefined): string | undefined {
  return text === undefined ? undefined : Buffer.from(text, 'utf16le').toString('utf16le')
}
