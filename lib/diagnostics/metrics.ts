import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { FST_REALTIME_INVALID_OPTION } from '../errors.js'
import type { GatewayStats } from '../stats.js'

export interface MetricsSources {
  stats: GatewayStats
  /** Sockets open on this node. */
  connections: () => number
}

export interface Metrics {
  registry: Registry
  /** Records one event's publish-to-delivery time. */
  observeDeliveryLatency: (seconds: number) => void
  /** Records one awaited event's publish-to-ack time. */
  observeAckLatency: (seconds: number) => void
  /** Takes this node's metrics off a registry the user passed (the app is closing). */
  remove: () => void
}

/**
 * Prometheus metrics of one node, on the plugin's own registry or on one the
 * user passes. Counters are read from the hub's plain counters when
 * scraped, so the hot path pays for an increment, not for prom-client.
 * @throws FST_REALTIME_INVALID_OPTION when the user's registry already has them (another plugin instance).
 */
export function createMetrics ({ stats, connections }: MetricsSources, userRegistry?: Registry): Metrics {
  const registry = userRegistry ?? new Registry()
  if (userRegistry?.getSingleMetric('realtime_connections') !== undefined) {
    throw new FST_REALTIME_INVALID_OPTION('diagnostics.metricsRegistry', 'it already holds the metrics of another fastify-realtime instance')
  }
  const registers = [registry]
  const mirrored = (name: string, help: string, read: () => number): void => {
    // eslint-disable-next-line no-new
    new Counter({
      name,
      help,
      registers,
      collect () {
        this.reset()
        this.inc(read())
      }
    })
  }

  // eslint-disable-next-line no-new
  new Gauge({ name: 'realtime_connections', help: 'Open WebSocket connections on this node', registers, collect () { this.set(connections()) } })
  mirrored('realtime_connects_total', 'WebSocket connections accepted', () => stats.connects)
  mirrored('realtime_messages_in_total', 'Client messages received', () => stats.messagesIn)
  mirrored('realtime_messages_out_total', 'Messages written to sockets', () => stats.messagesOut)
  mirrored('realtime_publishes_total', 'Events published through app.realtime on this node', () => stats.publishes)
  mirrored('realtime_undelivered_total', 'Events with no recipient on this node', () => stats.undelivered)
  mirrored('realtime_dropped_total', 'Writes skipped because the socket was closing or cut off', () => stats.dropped)
  mirrored('realtime_slow_consumer_cuts_total', 'Sockets terminated for passing the send-buffer cap (4001)', () => stats.slowConsumerCuts)
  mirrored('realtime_redis_reconnects_total', 'Reconnections and replacements of the Redis subscriber', () => stats.redisReconnects)
  mirrored('realtime_subscriber_replacements_total', 'Redis subscribers replaced because their link went silent (liveness probe)', () => stats.subscriberReplacements)
  mirrored('realtime_replayed_events_total', 'Events sent to sockets by recovery (history on)', () => stats.replayed)
  mirrored('realtime_acks_total', 'Acks received from clients on this node (history on)', () => stats.acks)
  mirrored('realtime_ack_timeouts_total', 'Publishes of this node awaiting an ack that ended acked: false', () => stats.ackTimeouts)
  // eslint-disable-next-line no-new
  new Counter({
    name: 'realtime_recoveries_total',
    help: 'Channels a socket asked to recover, by result (recovered, or not_recovered with its reason)',
    labelNames: ['result', 'reason'],
    registers,
    collect () {
      this.reset()
      for (const [result, count] of stats.recoveries) {
        this.inc(result === 'recovered' ? { result, reason: '' } : { result: 'not_recovered', reason: result }, count)
      }
    }
  })
  // eslint-disable-next-line no-new
  new Counter({
    name: 'realtime_closes_total',
    help: 'Socket closes by close code',
    labelNames: ['code'],
    registers,
    collect () {
      this.reset()
      for (const [code, count] of stats.closes) this.inc({ code: String(code) }, count)
    }
  })
  // eslint-disable-next-line no-new
  new Counter({
    name: 'realtime_handshakes_refused_total',
    help: 'Handshakes answered over HTTP instead of upgrading, by status and reason',
    labelNames: ['status', 'reason'],
    registers,
    collect () {
      this.reset()
      for (const { status, reason, count } of stats.refusedHandshakes.values()) this.inc({ status: String(status), reason }, count)
    }
  })
  const latency = new Histogram({
    name: 'realtime_publish_to_delivery_seconds',
    help: 'Time from publish() to the last local socket written, per event and node',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers
  })
  const ackLatency = new Histogram({
    name: 'realtime_publish_to_ack_seconds',
    help: 'Time from publish() with awaitAck to the client\'s ack reaching this node',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers
  })
  const names = registry.getMetricsAsArray().map((metric) => metric.name).filter((name) => name.startsWith('realtime_'))
  return {
    registry,
    observeDeliveryLatency: (seconds) => latency.observe(seconds),
    observeAckLatency: (seconds) => ackLatency.observe(seconds),
    remove: () => { for (const name of names) registry.removeSingleMetric(name) }
  }
}
