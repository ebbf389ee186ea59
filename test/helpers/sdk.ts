import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { createClient, type ChannelEvent, type ClientOptions, type ClientState, type RealtimeClient, type Resync } from '../../lib/client/index.js'
import { within } from './outage.js'

/** Backoff in milliseconds and no jitter (random 0: every delay is `minMs`), so tests see exact delays and stay fast. */
export const FAST = { backoff: { minMs: 5, maxMs: 20 }, slowBackoff: { minMs: 40, maxMs: 40 }, random: () => 0, ackDelayMs: 5 }

export interface Watched {
  client: RealtimeClient
  /** Every state the client went through, in order. */
  states: ClientState[]
  /** Every channel event a handler got (for the channels passed to `listen`). */
  events: ChannelEvent[]
  resyncs: Resync[]
  /** The next state (after the ones an earlier `next` returned) that matches; bounded. */
  next: (predicate: (state: ClientState) => boolean, what: string) => Promise<ClientState>
  /** Resolves once `predicate()` holds; bounded. */
  until: (predicate: () => boolean, what: string) => Promise<void>
}

/** A client on `ws` with FAST backoff, watched from its first state on, closed at teardown. */
export function watchClient (t: Test, options: Partial<ClientOptions> & { url: string }, listen: string[] = []): Watched {
  const client = createClient({ WebSocket, ...FAST, ...options })
  t.teardown(() => client.close())
  const states: ClientState[] = []
  const events: ChannelEvent[] = []
  const resyncs: Resync[] = []
  let checks: Array<() => void> = []
  const changed = (): void => { for (const check of checks) check() }
  client.onState((state) => { states.push(state); changed() })
  client.on('resync', (resync) => { resyncs.push(resync); changed() })
  for (const channel of listen) client.on(channel, (event) => { events.push(event); changed() })
  let cursor = 0
  const until = async (predicate: () => boolean, what: string): Promise<void> => {
    if (predicate()) return
    let check = (): void => {}
    // Checked on every state change and event, and every 10 ms for what the client does silently (a refresh).
    const poll = setInterval(() => check(), 10)
    try {
      await within(new Promise<void>((resolve) => {
        check = () => { if (predicate()) resolve() }
        checks.push(check)
      }), 5000, what)
    } finally {
      clearInterval(poll)
      checks = checks.filter((other) => other !== check)
    }
  }
  const next = async (predicate: (state: ClientState) => boolean, what: string): Promise<ClientState> => {
    let found = -1
    await until(() => {
      found = states.findIndex((state, index) => index >= cursor && predicate(state))
      return found !== -1
    }, what)
    cursor = found + 1
    return states[found]
  }
  return { client, states, events, resyncs, next, until }
}

export const isConnected = (state: ClientState): boolean => state.state === 'connected'
export const isDisconnected = (state: ClientState): boolean => state.state === 'disconnected'
export const isClosed = (state: ClientState): boolean => state.state === 'closed'

/**
 * Keeps the TCP socket of every upgrade the server takes (pass `beforeListen`
 * to `startApp`), so `cut()` can drop them all as a network would: the client
 * sees 1006, the server a socket that ended without a close handshake.
 */
export function networkCutter (): { beforeListen: (app: FastifyInstance) => void, cut: () => void } {
  const sockets: Duplex[] = []
  return {
    beforeListen: (app) => { app.server.on('upgrade', (_request, socket: Duplex) => { sockets.push(socket) }) },
    cut: () => { for (const socket of sockets.splice(0)) socket.destroy() }
  }
}
