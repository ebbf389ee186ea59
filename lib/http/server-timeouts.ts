import type { Server } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'

/**
 * Warns, at registration, when the server leaves half-open handshakes to
 * Node's defaults. Nothing of the plugin runs before a request's headers are
 * complete, so only the server's own timeouts bound a client that opens
 * connections and never finishes them: Fastify's `connectionTimeout` (socket
 * idle) and `requestTimeout` (whole request, for one that trickles bytes),
 * both 0 unless set. Left unset, each such connection is held until Node's
 * `headersTimeout` (60 s, checked every 30 s) and counts towards no cap.
 */
export function warnIfHalfOpenUnbounded (server: Server & { connectionsCheckingInterval?: number }, log: FastifyBaseLogger): void {
  // Node's HTTP/1 server only: an HTTP/2 server (Fastify's `http2`) has none of these timeouts.
  if (typeof server.requestTimeout !== 'number') return
  const unset: string[] = []
  if (!(server.timeout > 0)) unset.push('connectionTimeout')
  if (!(server.requestTimeout > 0)) unset.push('requestTimeout')
  if (unset.length === 0) return
  log.warn({ unset }, 'fastify-realtime: a client that never finishes the headers of its handshake holds its connection until ' +
    `Node's headersTimeout (${server.headersTimeout} ms, checked every ${server.connectionsCheckingInterval} ms): set Fastify's ${unset.join(' and ')} ` +
    '(see README, "Bounded half-open handshakes")')
}
