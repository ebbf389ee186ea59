import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import { HandshakeMessage } from '../constants.js'
import type { Envelope } from '../http/envelope.js'
import { genTraceId } from '../http/request-id.js'

/**
 * Answers upgrades that arrive while `app.close()` drains the server.
 *
 * By then Fastify has marked itself closing (its router would answer 503 in
 * its own shape) and @fastify/websocket has stopped listening for upgrades, so
 * this listener owns the raw socket: upgrades under the prefix get the
 * handshake table's 503 in the plugin's envelope; others are destroyed, as
 * Node does for an upgrade nobody listens to.
 */
export function createDrainResponder (isUnderPrefix: (url: string) => boolean, log: FastifyBaseLogger) {
  return function answerWhileDraining (raw: IncomingMessage, socket: Duplex): void {
    if (!isUnderPrefix(raw.url as string)) {
      socket.destroy()
      return
    }
    const traceId = genTraceId(raw)
    const body: Envelope<null> = { status_code: 503, message: HandshakeMessage.SHUTTING_DOWN, trace_id: traceId, data: null }
    const json = JSON.stringify(body)
    log.info({ reqId: traceId, reason: 'draining', statusCode: 503 }, 'fastify-realtime: handshake rejected')
    socket.end(
      `HTTP/1.1 503 ${STATUS_CODES[503]}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(json)}\r\n\r\n` + json
    )
  }
}
