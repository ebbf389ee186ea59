/**
 * Counters of what the gateway did since it started, per node. Close codes are
 * the ones the gateway decided (4001 for a slow consumer it terminated) or,
 * for closes it did not start, the ones it saw.
 */
export class GatewayStats {
  connects = 0
  messagesIn = 0
  messagesOut = 0
  publishes = 0
  /** Events that had no local recipient (user not connected here or not subscribed). */
  undelivered = 0
  slowConsumerCuts = 0
  /** Writes skipped because the socket was closing or cut off. */
  dropped = 0
  redisReconnects = 0
  /** Subscribers replaced because their link went silent (also counted in `redisReconnects`). */
  subscriberReplacements = 0
  /** History on: acks received from clients on this node. */
  acks = 0
  /** History on: awaited publishes of this node that ended `acked: false` (timeout, or the user had no socket). */
  ackTimeouts = 0
  /** History on: events sent to sockets by recovery. */
  replayed = 0
  readonly closes = new Map<number, number>()
  /** History on: recovered channels (`recovered`), and unrecovered ones by reason. */
  readonly recoveries = new Map<string, number>()
  /** Handshakes the gate answered over HTTP instead of upgrading, by status and reason. */
  readonly refusedHandshakes = new Map<string, { status: number, reason: string, count: number }>()

  recordClose (code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1)
  }

  recordRefusedHandshake (status: number, reason: string): void {
    const key = `${status} ${reason}`
    const entry = this.refusedHandshakes.get(key)
    if (entry === undefined) this.refusedHandshakes.set(key, { status, reason, count: 1 })
    else entry.count++
  }

  recordRecovery (result: string): void {
    this.recoveries.set(result, (this.recoveries.get(result) ?? 0) + 1)
  }

  snapshot (): StatsSnapshot {
    return {
      connects: this.connects,
      messages_in: this.messagesIn,
      messages_out: this.messagesOut,
      publishes: this.publishes,
      undelivered: this.undelivered,
      slow_consumer_cuts: this.slowConsumerCuts,
      dropped: this.dropped,
      redis_reconnects: this.redisReconnects,
      acks: this.acks,
      ack_timeouts: this.ackTimeouts,
      replayed: this.replayed,
      closes: Object.fromEntries(this.closes),
      recoveries: Object.fromEntries(this.recoveries),
      handshakes_refused: this.#refusedByStatus()
    }
  }

  #refusedByStatus (): Record<string, number> {
    const byStatus: Record<string, number> = {}
    for (const { status, count } of this.refusedHandshakes.values()) byStatus[status] = (byStatus[status] ?? 0) + count
    return byStatus
  }
}

export interface StatsSnapshot {
  connects: number
  messages_in: number
  messages_out: number
  publishes: number
  undelivered: number
  slow_consumer_cuts: number
  dropped: number
  redis_reconnects: number
  acks: number
  ack_timeouts: number
  replayed: number
  closes: Record<string, number>
  recoveries: Record<string, number>
  /** Handshakes answered over HTTP instead of upgrading (401, 403, 429, 503, …), by status. */
  handshakes_refused: Record<string, number>
}
