import type { RealtimeChannels } from '../channels/declarations.js'
import type { Backoff } from './reconnect.js'

/** What the SDK needs of a WebSocket: the browser's, React Native's, Node's (22+) global one, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  // `any` events, so the browser's, React Native's and ws's handler types all fit without a cast.
  onopen: ((event: any) => void) | null
  /** `event.data`: a string for a text frame. */
  onmessage: ((event: any) => void) | null
  /** `event.code`, `event.reason`. */
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** What the SDK needs of `fetch` (the GET that asks why a connect failed). */
export type FetchLike = (url: string, init: { headers: Record<string, string> }) => Promise<{
  status: number
  headers: { get: (name: string) => string | null }
  json: () => Promise<unknown>
}>

export interface ClientOptions {
  /** The WebSocket URL, `wss://api.example.com/api/v1/ws` (a query of its own is kept). */
  url: string
  /** A fixed access token. Without `getToken`, a 4005 or a 401 ends the client (`closed`). */
  token?: string
  /** Called for the first connect, before reconnecting after 4005 or a 401, and before the token expires (refresh in place). */
  getToken?: () => Promise<string> | string
  /** `query` (default): `?token=`. `protocol`: a `Sec-WebSocket-Protocol` entry (the server needs `tokens.protocolPrefix`). */
  tokenTransport?: 'query' | 'protocol'
  /** The server's `tokens.protocolPrefix`; default `bearer.`. */
  protocolPrefix?: string
  /** The real subprotocol offered beside the token entry (a browser fails a 101 that selects none); default `realtime.v1`. */
  protocol?: string
  /** Channels to subscribe besides the server's auto-subscribed ones. */
  channels?: string[]
  /**
   * Where the app left off in an earlier run (what `client.positions()` gave, kept in storage): the first connect
   * recovers from there, and the channels are subscribed.
   */
  positions?: Record<string, string>
  /** Normal reconnect backoff; default 500 ms → 20 s. */
  backoff?: Backoff
  /** Backoff after 4006 or 429; default 5 s → 60 s. */
  slowBackoff?: Backoff
  /** A connect that has not brought `connected` by then is dropped and retried, and the GET that asks why gives up; default 10 s. */
  connectTimeoutMs?: number
  /**
   * Off unless set: when the socket heard nothing for this long it sends a ping, and when it then hears nothing for as
   * long again it reconnects (a link that died silently; the server's heartbeat pings are invisible in a browser).
   */
  pingIntervalMs?: number
  /** Acks are sent this long after the first unacked event was handled, one per channel; default 100 ms. */
  ackDelayMs?: number
  /** Default: the global `WebSocket` (browsers, React Native, Node 22+); pass `ws` on Node 20. */
  WebSocket?: WebSocketConstructor
  /** Default: the global `fetch`. */
  fetch?: FetchLike
  /** For tests: a number in [0, 1). */
  random?: () => number
  /** For tests: unix ms. */
  now?: () => number
}

/** The data type of a channel, from the `RealtimeChannels` declarations the server uses. */
export type ChannelData<C extends string> = C extends keyof RealtimeChannels ? RealtimeChannels[C]['data'] : Record<string, unknown>

/** One event of a channel, as the server sent it. `id` is there while the server runs with `history`. */
export interface ChannelEvent<C extends string = string> {
  event: string
  channel: C
  data: ChannelData<C>
  id?: string
}

/**
 * Why the app must refetch a channel's state over HTTP: it was answered
 * `recovered: false` (`too_old`, `epoch_changed`, `history_off`), the server
 * said it may have missed events (its `resync` reason), or a `recover` was
 * refused (`refused`).
 */
export interface Resync {
  channel: string
  reason: string
}

/** Whether a channel's missed events were recovered (`replayed` of them), or why not. */
export interface RecoveryOutcome {
  recovered: boolean
  replayed?: number
  reason?: string
}

export type ClientState =
  | { state: 'connecting' }
  /** `recovery`: after a connect that listed channels to recover, what the server answered for each. */
  | { state: 'connected', connectionId: string, userId: string, recovery?: Record<string, RecoveryOutcome> }
  /** `status`/`reason` of the GET when the connect failed before `open` (the socket then shows 1006). */
  | { state: 'disconnected', code: number, reason: string, status?: number, delayMs: number }
  | { state: 'closed', code: number, reason: string, status?: number }

/** A subscribe, unsubscribe or ping the server refused (its error code), or one the client could not finish (`CLOSED`, `DISCONNECTED`). */
export class RealtimeClientError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'RealtimeClientError'
    this.code = code
  }
}
