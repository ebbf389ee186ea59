import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { WebSocket } from 'ws'
import { Disconnect, type Disconnection, closeCodeOfSocketError } from '../constants.js'
import type { Channel, ChannelCatalog } from '../channels/catalog.js'
import { Dispatcher } from './dispatcher.js'
import { Outbox } from './outbox.js'
import { encodeEvent, type EncodedEvent } from '../protocol/server-event.js'
import { notRecovered, type RecoveryOutcome } from '../protocol/recovery.js'
import { ProtocolErrorCode } from '../constants.js'
import type { GatewayStats } from '../stats.js'
import { digestOfHash, tokenDigest } from '../tokens/token-store.js'
import type { Admitted } from '../handshake/gate.js'
import type { ConnectionLimiter } from '../handshake/connection-limiter.js'
import type { Resolution } from '../tokens/resolve-with-deadline.js'
import { Connection } from './connection.js'
import { ExpiryWheel } from './expiry.js'
import { Heartbeat } from './heartbeat.js'
import type { ConnectionIndex } from './connection-index.js'
import { handleClientFrame, refuse, replyError, type ClientMessageContext, type ClientMessageLimits } from './client-messages.js'
import { HistorySession, type HubHistory } from './history-session.js'
import { HubSockets } from './hub-socket.js'

export interface HubLimits extends ClientMessageLimits {
  maxBufferedBytes: number
  fanoutSliceSize: number
  fanoutSliceBytes: number
}

export interface HubOptions {
  catalog: ChannelCatalog
  limits: HubLimits
  heartbeatIntervalMs: number
  shutdownTimeoutMs: number
  stats: GatewayStats
  /** This node's connections; built by the caller so that metrics can count them before the hub exists. */
  connections: ConnectionIndex
  /** Each event's publish-to-delivery time in seconds, once its last local socket was written. */
  onDelivered: (seconds: number) => void
  limiter: ConnectionLimiter
  /** Resolves a token as the handshake does (with its deadline): for `refresh`. */
  resolveToken: (token: string) => Promise<Resolution>
  /**
   * Whether each socket keeps its token for the revocation check. Not where
   * the store resolves by the token's hash: then a heap dump of the node
   * holds no bearer token.
   */
  keepTokens: boolean
  log: FastifyBaseLogger
}

/**
 * The sockets of this node: admits them, answers their messages, delivers
 * events to them, and closes them with the right code. Their events reach it
 * through `sockets` (see hub-socket.ts); per-socket state lives in `Connection`.
 */
export class Hub {
  readonly connections: ConnectionIndex
  /** How sockets' events reach the hub; its `WebSocket` class is for the plugin's ws server. */
  readonly sockets: HubSockets
  readonly #closing = new Set<Connection>()
  readonly #options: HubOptions
  readonly #outbox: Outbox
  readonly #dispatcher: Dispatcher
  readonly #heartbeat: Heartbeat
  readonly #expiry: ExpiryWheel
  readonly #session: ClientMessageContext
  #draining = false
  #drained: (() => void) | undefined
  #listening: ((connection: Connection) => Promise<void> | undefined) | undefined
  #history: HistorySession | undefined

  constructor (options: HubOptions) {
    this.#options = options
    this.connections = options.connections
    this.#outbox = new Outbox({ maxBufferedBytes: options.limits.maxBufferedBytes, onSlowConsumer: (connection) => this.#cutSlowConsumer(connection), stats: options.stats })
    this.#dispatcher = new Dispatcher(this.#outbox, { sockets: options.limits.fanoutSliceSize, bytes: options.limits.fanoutSliceBytes }, (event) => {
      if (event.publishedAt !== undefined) options.onDelivered(Math.max(0, Date.now() - event.publishedAt) / 1000)
    })
    this.#heartbeat = new Heartbeat(options.heartbeatIntervalMs, () => this.connections, (connection) => this.#end(connection, Disconnect.HEARTBEAT_TIMEOUT, true))
    this.#expiry = new ExpiryWheel((connection) => this.close(connection, Disconnect.TOKEN_EXPIRED))
    this.#session = {
      catalog: options.catalog,
      connections: this.connections,
      limits: options.limits,
      reply: (connection, event, channel, data) => { this.#outbox.send(connection, encodeEvent(event, channel, data)) },
      close: (connection, disconnect) => this.close(connection, disconnect),
      subscribeWithHistory: undefined,
      // History off: an ack names nothing (events have no ids) and is ignored.
      ack: () => {},
      refresh: (connection, token) => { connection.queueRefresh(async () => await this.#refresh(connection, token)) }
    }
    const session = this.#session
    const stats = options.stats
    const log = options.log
    this.sockets = new HubSockets({
      message (connection, data, isBinary) {
        stats.messagesIn++
        if (!connection.closed) handleClientFrame(session, connection, data, isBinary)
      },
      pong: (connection) => { connection.ponged() },
      close: (connection, code) => { this.#gone(connection, code) },
      closing: (connection) => { this.#outbox.writeOut(connection) },
      error: (connection, error) => {
        log.debug({ err: error, connectionId: connection.id }, 'fastify-realtime: socket error')
        // `ws` has already sent its close frame (1002, 1007, 1008, 1009) and
        // bounds the wait for the answer with its close timeout.
        this.#end(connection, { code: closeCodeOfSocketError(error), reason: error.message }, false)
      }
    })
  }

  /**
   * Takes over a freshly upgraded socket. Its events reach the hub from here
   * on (set synchronously, before anything can arrive); the `connected` event
   * is the first message.
   */
  accept (socket: WebSocket, request: FastifyRequest, admitted: Admitted): void {
    const transport = request.raw.socket as Socket | undefined
    const connection = new Connection({
      userId: admitted.state.userId,
      token: this.#options.keepTokens ? admitted.token : undefined,
      tokenDigest: tokenDigest(admitted.token),
      expiresAt: admitted.state.expiresAt,
      socket,
      transport,
      remoteAddress: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
      origin: request.headers.origin ?? null,
      holdsSlot: transport !== undefined && admitted.slot !== undefined,
      history: this.#history !== undefined
    })
    request.log.debug({ connectionId: connection.id, userId: connection.userId }, 'fastify-realtime: socket opened')
    // Nothing of the HTTP exchange may outlive the upgrade: @fastify/websocket's
    // per-socket error listener holds the request and reply, and the response
    // stays attached to the TCP socket. Dropping both halves a socket's heap.
    socket.removeAllListeners('error')
    if (transport !== undefined) {
      admitted.response.detachSocket(transport)
      if (admitted.slot !== undefined) this.#options.limiter.adopt(transport, admitted.slot)
    }
    this.sockets.attach(socket, connection)
    this.#options.stats.connects++

    if (this.#draining) {
      this.close(connection, Disconnect.SHUTDOWN)
      return
    }
    const listening = this.#listening?.(connection)
    const history = this.#history
    if (listening !== undefined || history !== undefined) this.#outbox.hold(connection)
    const replaced = this.connections.add(connection)
    // The channels it asked to recover are subscribed before it is announced: `connected` lists them.
    const recover = admitted.recover ?? new Map<string, string>()
    for (const name of recover.keys()) this.connections.subscribe(connection, name, (this.#options.catalog.get(name) as Channel).scope === 'global')
    if (replaced !== undefined) this.close(replaced, Disconnect.REPLACED)
    this.#expiry.add(connection)
    if (history !== undefined) {
      history.announce(connection, listening, admitted.recover !== undefined ? recover : undefined)
      return
    }
    const recovery = admitted.recover === undefined ? undefined : Object.fromEntries([...recover.keys()].map((name) => [name, notRecovered()]))
    if (listening === undefined) this.#announce(connection, recovery)
    else listening.then(() => { if (!connection.closed) this.#announce(connection, recovery) })
  }

  /**
   * A new access token for the socket, resolved like a handshake token. Same
   * user: from now on its expiry (4005) and revocation (4501) follow the new
   * token. Otherwise the socket keeps its token; a bad one counts as an
   * invalid message. The token is never logged or echoed.
   */
  async #refresh (connection: Connection, token: string): Promise<void> {
    const resolution = await this.#options.resolveToken(token)
    if (connection.closed) return
    if (resolution.outcome === 'unavailable') {
      replyError(this.#session, connection, ProtocolErrorCode.TOKEN_STORE_UNAVAILABLE, 'Token store unavailable; try again', null)
      return
    }
    if (resolution.outcome === 'invalid' || resolution.state.userId !== connection.userId) {
      refuse(this.#session, connection, ProtocolErrorCode.INVALID_TOKEN, 'Invalid or expired token', null)
      return
    }
    this.#expiry.remove(connection)
    connection.renew(this.#options.keepTokens ? token : undefined, tokenDigest(token), resolution.state.expiresAt)
    this.#expiry.add(connection)
    this.#outbox.send(connection, encodeEvent('refreshed', null, { expires_at: connection.expiresAt }))
  }

  /** History on: how the hub reads streams and where acks of awaited events go (set by the node before any socket arrives). */
  useHistory (history: HubHistory): void {
    const session = this.#session
    const catchUps = new HistorySession({
      ...history,
      catalog: this.#options.catalog,
      connections: this.connections,
      outbox: this.#outbox,
      session,
      stats: this.#options.stats,
      log: this.#options.log,
      close: (connection, disconnect) => this.close(connection, disconnect),
      connectedData: (connection) => this.#connectedData(connection)
    })
    this.#history = catchUps
    session.subscribeWithHistory = (connection, channel, since) => catchUps.subscribe(connection, channel, since)
    session.ack = (connection, channel, id) => catchUps.ack(connection, channel.name, id)
  }

  /**
   * The node's link to the broker came back after a loss: the stream
   * positions this node learnt from live events are read again.
   */
  forgetStreamPositions (): void {
    this.#history?.forgetPositions()
  }

  /**
   * Cluster mode: a socket's `connected` goes out only once the promise
   * `listening` gives for it resolves, i.e. once this node receives what is
   * published to its user, so every event published after the client saw
   * `connected` reaches it. Whatever is sent to the socket meanwhile follows
   * `connected`. No promise: announce at once.
   */
  announceWhen (listening: (connection: Connection) => Promise<void> | undefined): void {
    this.#listening = listening
  }

  /** `recovery`: per channel listed in the handshake's `recover`, whether it was recovered (absent without one). */
  #announce (connection: Connection, recovery: Record<string, RecoveryOutcome> | undefined): void {
    this.#outbox.release(connection, [encodeEvent('connected', null, {
      ...this.#connectedData(connection),
      ...(recovery === undefined ? {} : { recovery })
    })])
  }

  #connectedData (connection: Connection): Record<string, unknown> {
    return {
      connection_id: connection.id,
      user_id: connection.userId,
      subscriptions: [...connection.subscriptions],
      heartbeat_interval_ms: this.#options.heartbeatIntervalMs,
      expires_at: connection.expiresAt
    }
  }

  /** `app.close()` has begun: no new sockets are accepted. */
  get draining (): boolean {
    return this.#draining
  }

  /** Sends `event` to the user's socket here, if it is subscribed to `channel` (or `alwaysDelivered`). */
  deliverToUser (userId: string, channel: string, alwaysDelivered: boolean, event: EncodedEvent): void {
    const connection = this.connections.forUser(userId)
    if (connection !== undefined && event.position !== undefined) connection.positions?.noteUserTop(event.position)
    if (connection === undefined || (!alwaysDelivered && !connection.subscriptions.includes(channel))) {
      this.#options.stats.undelivered++
      return
    }
    this.#dispatcher.deliver([connection], event, alwaysDelivered ? null : channel)
  }

  /** Sends `event` to every socket here subscribed to the global `channel`. */
  deliverToChannel (channel: string, event: EncodedEvent): void {
    if (event.position !== undefined) this.#history?.noteLive(channel, event.position)
    const targets = this.connections.subscribersOf(channel)
    if (targets.length === 0) this.#options.stats.undelivered++
    else this.#dispatcher.deliver(targets, event, channel)
  }

  /** Sends `event` to every socket here, subscribed or not (a `resync` after events may have been lost). */
  broadcastLocal (event: EncodedEvent): void {
    this.#dispatcher.deliver([...this.connections], event, null)
  }

  /** Closes the user's socket here, after `finalEvent` (if any) has gone out. */
  disconnectUser (userId: string, disconnect: Disconnection, finalEvent?: EncodedEvent): void {
    const connection = this.connections.forUser(userId)
    if (connection === undefined) return
    if (finalEvent !== undefined) this.#dispatcher.deliver([connection], finalEvent, null)
    this.#dispatcher.then(() => this.close(connection, disconnect))
  }

  /**
   * Closes the socket here that authenticated with the token of `tokenHash`,
   * if any: the user's socket, where the user is known (a token belongs to one
   * user, who has one socket here), else whichever socket has it.
   */
  closeToken (tokenHash: string, userId: string | undefined, disconnect: Disconnection): void {
    const connection = this.#holderOf(digestOfHash(tokenHash), userId)
    if (connection === undefined) return
    this.#dispatcher.then(() => this.close(connection, disconnect))
  }

  #holderOf (tokenDigest: string, userId: string | undefined): Connection | undefined {
    if (userId !== undefined) {
      const connection = this.connections.forUser(userId)
      return connection?.tokenDigest === tokenDigest ? connection : undefined
    }
    for (const connection of this.connections) if (connection.tokenDigest === tokenDigest) return connection
    return undefined
  }

  /** Takes `connection` out of the index and starts the close handshake. */
  close (connection: Connection, disconnect: Disconnection): void {
    this.#end(connection, disconnect, false)
  }

  /**
   * Graceful shutdown: no new sockets, 1001 to every open one, then wait for
   * their close handshakes until `shutdownTimeoutMs` and terminate the rest.
   */
  async drain (): Promise<void> {
    this.#draining = true
    this.#heartbeat.stop()
    this.#expiry.stop()
    for (const connection of [...this.connections]) this.close(connection, Disconnect.SHUTDOWN)
    if (this.#closing.size > 0) {
      const done = new Promise<void>((resolve) => { this.#drained = resolve })
      const deadline = setTimeout(() => {
        for (const connection of this.#closing) connection.socket.terminate()
      }, this.#options.shutdownTimeoutMs)
      await done
      clearTimeout(deadline)
    }
    this.#outbox.flush()
  }

  /**
   * The one way a socket leaves: out of the connection index and the expiry wheel,
   * its code recorded once, then a close handshake, or `terminate` for a peer
   * that will not read one (slow consumer, missed heartbeat).
   */
  #end (connection: Connection, { code, reason }: Disconnection, terminate: boolean): void {
    this.connections.remove(connection)
    this.#expiry.remove(connection)
    if (!connection.end(code)) return
    this.#closing.add(connection)
    const entry = { connectionId: connection.id, userId: connection.userId, code, reason }
    if (terminate) this.#options.log.info(entry, 'fastify-realtime: terminating socket')
    else this.#options.log.debug(entry, 'fastify-realtime: closing socket')
    if (terminate) {
      connection.socket.terminate()
    } else if (connection.socket.readyState === WebSocket.OPEN) {
      // What it was sent this turn (a final event, an error) goes ahead of the close frame
      // (sockets of the hub's class report `closing` themselves; this covers any other).
      this.#outbox.writeOut(connection)
      connection.socket.close(code, reason)
    }
    // Otherwise a close handshake is already under way (the peer's, or `ws`
    // refusing a frame); `ws`'s close timeout ends it if the peer never answers.
  }

  #cutSlowConsumer (connection: Connection): void {
    this.#options.stats.slowConsumerCuts++
    this.#end(connection, Disconnect.SLOW_CONSUMER, true)
  }

  #gone (connection: Connection, code: number): void {
    if (connection.holdsSlot) this.#options.limiter.release(connection.remoteAddress)
    this.connections.remove(connection)
    this.#expiry.remove(connection)
    // Recorded as the code the hub chose, or the one it saw; an #end after this is a no-op.
    connection.end(code)
    this.#options.stats.recordClose(connection.closeCode as number)
    this.#closing.delete(connection)
    if (this.#drained !== undefined && this.#closing.size === 0) this.#drained()
  }
}
