import type { IncomingMessage } from 'node:http'
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
