import type { FastifyBaseLogger } from 'fastify'
import type { Channel, ChannelCatalog } from '../channels/catalog.js'
import { Disconnect, ProtocolErrorCode, type Disconnection } from '../constants.js'
import { formatId, parseId, type StreamPosition } from '../protocol/recovery.js'
import { encodeEvent, type EncodedEvent } from '../protocol/server-event.js'
import type { GatewayStats } from '../stats.js'
import { replyError, runClientMessage, type ClientMessageContext } from './client-messages.js'
import type { Connection } from './connection.js'
import type { ConnectionIndex } from './connection-index.js'
import type { Outbox } from './outbox.js'
import { catchUp, type CatchUp, type HistoryReader } from './recovery.js'
import { newer } from './stream-positions.js'

/** History on: what the node gives the hub. */
export interface HubHistory {
  read: HistoryReader
  /** Sends a client's ack of an awaited event to the node that published it. */
  forwardAck: (ack: { userId: string, channel: string, id: string, node: string }) => void
}

export interface HistorySessionOptions extends HubHistory {
  catalog: ChannelCatalog
  connections: ConnectionIndex
  outbox: Outbox
  /** The hub's client-message context: the messages that waited run through it. */
  session: ClientMessageContext
  stats: GatewayStats
  log: FastifyBaseLogger
  close: (connection: Connection, disconnect: Disconnection) => void
  /** What every `connected` says of the socket; positions and recovery are added here. */
  connectedData: (connection: Connection) => Record<string, unknown>
}

/**
 * History on: the sockets of this node catching up on their streams. A
 * catch-up is one asynchronous step of a socket (hub.ts holds nothing of it):
 * what is sent to the socket is held and its client messages wait; then its
 * `connected` or `subscribed` goes out with the replay, the socket's stream
 * positions are placed, what was held follows (the positions drop what the
 * replay already carried), and the messages that waited run, in order. It
 * also keeps the newest position of each global stream this node has seen,
 * and takes the acks.
 */
export class HistorySession {
  readonly #options: HistorySessionOptions
  /** The newest position of each global stream this node has received or read. */
  readonly #globalTops = new Map<string, StreamPosition>()

  constructor (options: HistorySessionOptions) {
    this.#options = options
  }

  /**
   * Once this node listens, reads each channel's position (and, for the
   * channels in `recover`, what the socket missed), then sends `connected`
   * with `positions` (and `recovery`) and the replay. A store that cannot
   * answer closes the socket with 4003: it cannot be told where it stands,
   * and reconnecting with `recover` will tell it.
   */
  announce (connection: Connection, listening: Promise<void> | undefined, recover: ReadonlyMap<string, string> | undefined): void {
    this.#step(connection, async () => {
      await listening
      const caughtUp = await this.#catchUp(connection, [...connection.subscriptions], recover ?? new Map())
      const data: Record<string, unknown> = {
        ...this.#options.connectedData(connection),
        positions: Object.fromEntries(Array.from(caughtUp.positions, ([name, position]) => [name, formatId(position)]))
      }
      if (recover !== undefined) data.recovery = Object.fromEntries(caughtUp.outcomes)
      return { first: [encodeEvent('connected', null, data), ...caughtUp.replay], caughtUp }
    }, () => {
      // Nothing may precede `connected`: what was held goes with the socket.
      this.#options.close(connection, Disconnect.HISTORY_UNAVAILABLE)
    })
  }

  /**
   * A `subscribe`, answered with the channel's position and, with `since`,
   * the missed events. The channel is subscribed before its stream is read,
   * so every event after the position reaches the socket; if the store
   * cannot answer, it is unsubscribed again and the client gets
   * `HISTORY_UNAVAILABLE`.
   */
  subscribe (connection: Connection, channel: Channel, since: string | undefined): void {
    const { connections, outbox, session } = this.#options
    const wasSubscribed = connection.subscriptions.includes(channel.name)
    connections.subscribe(connection, channel.name, channel.scope === 'global')
    this.#step(connection, async () => {
      const caughtUp = await this.#catchUp(connection, [channel.name], since === undefined ? new Map() : new Map([[channel.name, since]]))
      const outcome = caughtUp.outcomes.get(channel.name)
      // A channel it already had: the replay may hold events it was sent live, asked for again.
      const from = since === undefined ? undefined : parseId(since)
      if (outcome?.recovered === true) connection.positions?.place(channel.name, from as StreamPosition)
      const data = {
        subscriptions: [...connection.subscriptions],
        position: formatId(caughtUp.positions.get(channel.name) as StreamPosition),
        ...outcome
      }
      return { first: [encodeEvent('subscribed', channel.name, data), ...caughtUp.replay], caughtUp }
    }, () => {
      if (!wasSubscribed) connections.unsubscribe(connection, channel.name)
      // Live events of a channel it did not get are not sent.
      outbox.release(connection, [], undefined, (event) => wasSubscribed || event.position?.channel !== channel.name)
      replyError(session, connection, ProtocolErrorCode.HISTORY_UNAVAILABLE, 'History is unavailable; try again', channel.name)
    })
  }

  /** A client's cumulative ack: the awaited events it covers are reported to the nodes awaiting them. */
  ack (connection: Connection, channel: string, id: string): void {
    const position = parseId(id)
    const positions = connection.positions as NonNullable<Connection['positions']>
    if (position === undefined) return
    this.#options.stats.acks++
    for (const event of positions.ack(channel, position)) {
      this.#options.forwardAck({ userId: connection.userId, channel, id: formatId(event), node: event.ackNode })
    }
  }

  /** A live event of a global stream: its position is now the stream's newest this node has seen. */
  noteLive (channel: string, position: StreamPosition): void {
    this.#globalTops.set(channel, position)
  }

  /**
   * The node's link to the broker came back after a loss: events may have
   * been missed, so the stream positions this node learnt from live events
   * are no longer known to be the newest. The next ones are read.
   */
  forgetPositions (): void {
    this.#globalTops.clear()
    for (const connection of this.#options.connections) connection.positions?.forgetUserTop()
  }

  /** Reads what `channels` need, and records in the node's and the socket's caches the stream positions it learnt. */
  async #catchUp (connection: Connection, channels: string[], since: ReadonlyMap<string, string>): Promise<CatchUp> {
    const { catalog, read, stats } = this.#options
    const positions = connection.positions as NonNullable<Connection['positions']>
    const caughtUp = await catchUp(read, {
      userId: connection.userId,
      channels: channels.map((name) => catalog.get(name) as Channel),
      since,
      userTop: positions.userTop,
      globalTop: (name) => this.#globalTops.get(name)
    })
    if (caughtUp.userTop !== undefined) positions.noteUserTop(caughtUp.userTop)
    // A read's position replaces the cached one only if it is newer: a live event may have come meanwhile.
    for (const [name, top] of caughtUp.globalTops) this.#globalTops.set(name, newer(this.#globalTops.get(name), top))
    for (const outcome of caughtUp.outcomes.values()) stats.recordRecovery(outcome.recovered ? 'recovered' : outcome.reason)
    stats.replayed += caughtUp.replay.length
    return caughtUp
  }

  /** One catch-up step of a socket, as the class says; `failed` answers a step that threw (and releases or drops what was held). */
  #step (connection: Connection, work: () => Promise<{ first: EncodedEvent[], caughtUp: CatchUp }>, failed: () => void): void {
    const { outbox, log } = this.#options
    connection.beginStep()
    outbox.hold(connection)
    work().then(({ first, caughtUp }) => {
      if (connection.closed) return
      outbox.release(connection, first, () => {
        for (const [name, position] of caughtUp.positions) connection.positions?.place(name, position)
      })
      this.#resume(connection)
    }, (error: Error) => {
      if (connection.closed) return
      log.warn({ err: error, connectionId: connection.id }, 'fastify-realtime: history read failed')
      failed()
      this.#resume(connection)
    })
  }

  #resume (connection: Connection): void {
    connection.endStep()
    for (let message = connection.nextWaiting(); message !== undefined && !connection.closed; message = connection.nextWaiting()) {
      runClientMessage(this.#options.session, connection, message)
    }
  }
}
