import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import websocket, { type WebsocketPluginOptions } from '@fastify/websocket'
import { HandshakeMessage } from '../constants.js'
import { sendError } from './envelope.js'

/**
 * An upgrade request as HTTP defines it (RFC 9110 §7.8) and as Node's parser
 * flags it: Node hands such a request to the server's `upgrade` listeners, with
 * the socket out of its HTTP parser.
 */
export function isUpgradeRequest (raw: IncomingMessage): boolean {
  return raw.headers.upgrade !== undefined && /\bupgrade\b/i.test(raw.headers.connection ?? '')
}

/**
 * Registers @fastify/websocket for an app that did not, without its routes
 * changing. @fastify/websocket wraps the handler of every route declared after
 * it, so that an upgrade request to a route without a WebSocket handler is
 * upgraded (101) and then closed without a code. The app asked for none of
 * that: each route without `wsHandler` or `websocket: true` gets its own
 * handler back and answers an upgrade request as it answers a GET.
 */
export async function registerWebsocket (fastify: FastifyInstance, options: WebsocketPluginOptions): Promise<void> {
  // onRoute hooks run in the order they were added, on the same options object.
  const httpHandlers = new WeakMap<RouteOptions, RouteOptions['handler']>()
  fastify.addHook('onRoute', (route) => {
    if (route.wsHandler === undefined && route.websocket !== true) httpHandlers.set(route, route.handler)
  })
  await fastify.register(websocket, options)
  fastify.addHook('onRoute', (route) => {
    const handler = httpHandlers.get(route)
    if (handler !== undefined) route.handler = handler
  })
}

/**
 * The `onSend` hook that makes every answer to an upgrade request (and every
 * answer of the WebSocket route, as the handshake table says) end its
 * connection. Node has taken the socket out of its HTTP parser and
 * @fastify/websocket destroys it after the answer, so a keep-alive answer
 * would invite a proxy to send the next request into a closing socket.
 */
export function createUpgradeAnswerCloser (handshakeUrl: string) {
  return function closeAfterUpgradeAnswer (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void): void {
    if (isUpgradeRequest(request.raw) || request.routeOptions.url === handshakeUrl) reply.header('connection', 'close')
    done(null, payload)
  }
}

/** The `onRequest` hook of the plugin's HTTP routes: only the WebSocket route upgrades. */
export async function refuseUpgrade (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (isUpgradeRequest(request.raw)) sendError(request, reply, 400, HandshakeMessage.NOT_A_WEBSOCKET_ROUTE)
}

/**
 * A listener of the server's `upgrade` event that ends every upgrade socket
 * once an HTTP answer on it has gone out. Node hands an upgrade request's
 * socket to the `upgrade` listeners alone, out of its HTTP server's care:
 * @fastify/websocket ends it after an answer its own hooks saw, but not after
 * Fastify's 400 for a URL it cannot decode, nor when it cannot answer at all
 * (an upgrade pipelined behind a response still going out: that response is
 * the socket's, and the upgrade is never served). Left open, such a socket is
 * held until the client leaves, and `app.close()` waits for it forever.
 *
 * A socket that becomes a WebSocket gets its 101 written by `ws` directly;
 * the answer object on it never finishes and is detached by the hub.
 */
export function endAnsweredUpgrade (_raw: IncomingMessage, socket: Duplex): void {
  // After the other `upgrade` listeners ran: by then the answer (if any) is assigned to the socket.
  process.nextTick(() => {
    // `_httpMessage` is how Node links a socket to the response written on it (`ServerResponse#assignSocket`).
    const answer = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
    if (answer === null || answer === undefined) return
    if (answer.writableFinished) socket.destroy()
    else answer.once('finish', () => socket.destroy())
  })
}
