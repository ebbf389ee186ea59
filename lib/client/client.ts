import type { RealtimeChannels } from '../channels/declarations.js'
import { BACKOFF, SLOW_BACKOFF, backoffDelay, decideClose, decideStatus, type Backoff, type Decision } from './reconnect.js'
import { Listeners, Waiters, type Handler } from './listeners.js'
import { RefreshTimer } from './refresh-timer.js'
import { askWhy, connectRequest } from './transport.js'
import {
  RealtimeClientError, type ChannelEvent, type ClientOptions, type ClientState, type FetchLike, type RecoveryOutcome, type Resync,
  type WebSocketConstructor, type WebSocketLike
} from './types.js'

/** A channel the server's declarations name, or any other string (its data is then a plain object). */
export type ChannelName = (keyof RealtimeChannels & string) | (string & {})

interface ServerMessage { event?: unknown, channel?: unknown, data?: any, id?: unknown }
/** Per channel listed in `recover`, as `connected.data.recovery` answers it. */
type Recovery = Record<string, RecoveryOutcome>

const OPEN = 1
/** Refusals of a subscribe or unsubscribe that another try can overcome: the SDK tries again (after a backoff delay) instead of giving up. */
const TRANSIENT = new Set(['RATE_LIMITED', 'HISTORY_UNAVAILABLE'])
const NORMAL = 1000
const ABNORMAL = 1006

/**
 * One user's connection to the gateway: reconnects by the close-code table,
 * resubscribes and recovers what it missed, acks after the handlers ran, and
 * refreshes its token in place. Create it with `createClient`.
 */
export class RealtimeClient {
  readonly #options: ClientOptions
  readonly #WebSocket: WebSocketConstructor
  readonly #fetch: FetchLike | undefined
  readonly #random: () => number
  readonly #backoff: Backoff
  readonly #slowBackoff: Backoff
  #ws: WebSocketLike | null = null
  #state: ClientState = { state: 'connecting' }
  #token: string | undefined
  #needToken: boolean
  /** The channels the app wants; the server's auto-subscribed ones join on the first connect. */
  readonly #wanted: Set<string>
  /** Per channel, the id of the last event its handlers finished, or the position the server gave. */
  readonly #positions: Map<string, string>
  readonly #acks = new Map<string, string>()
  /** The channels this socket has, as the server last said. */
  #subscribed = new Set<string>()
  /** The requests on this socket that await a reply, in order: replies come in the order of requests. */
  #sent: Array<{ event: string, channel: string }> = []
  readonly #waiters = new Waiters()
  readonly #listeners = new Listeners()
  readonly #refreshTimer: RefreshTimer
  #ackTimer: ReturnType<typeof setTimeout> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #connectTimer: ReturnType<typeof setTimeout> | undefined
  #probeTimer: ReturnType<typeof setInterval> | undefined
  #syncTimer: ReturnType<typeof setTimeout> | undefined
  /** Something arrived since the last probe tick; and whether the probe's ping is still unanswered. */
  #heard = false
  #probing = false
  #attempt = 0
  #connectedOnce = false
  #refreshing = ''
  /** The server said events may have been lost (`resync`, history on) and the reconnect with recover has not brought `connected` yet. */
  #resyncPending = false

  constructor (options: ClientOptions) {
    const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WebSocket === undefined) throw new TypeError('No WebSocket: pass options.WebSocket (e.g. the ws package on Node 20)')
    if (options.token === undefined && options.getToken === undefined) throw new TypeError('Pass options.token or options.getToken')
    const fetch = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch
    this.#options = options
    this.#WebSocket = WebSocket
    // Called as a plain function: a browser's fetch throws when `this` is not the window.
    this.#fetch = fetch && ((url, init) => fetch(url, init))
    this.#random = options.random ?? Math.random
    this.#backoff = options.backoff ?? BACKOFF
    this.#slowBackoff = options.slowBackoff ?? SLOW_BACKOFF
    this.#refreshTimer = new RefreshTimer(options.now ?? Date.now, () => { this.#refresh() })
    this.#token = options.token
    this.#needToken = options.getToken !== undefined && options.token === undefined
    this.#positions = new Map(Object.entries(options.positions ?? {}))
    this.#wanted = new Set([...options.channels ?? [], ...this.#positions.keys()])
    // A microtask later, so listeners added right after createClient see `connecting` and every message.
    queueMicrotask(() => { this.#connect() })
  }

  /** The current state; `onState` tells every change. */
  get state (): ClientState {
    return this.#state
  }

  /** Per channel, the id of the last event its handlers finished (or the server's position): store it to recover from after a restart. */
  positions (): Record<string, string> {
    return Object.fromEntries(this.#positions)
  }

  /** Calls `listener` on every state change; returns the function that stops it. */
  onState (listener: (state: ClientState) => void): () => void {
    return this.#listeners.add(' state', listener)
  }

  /**
   * `on(channel, handler)`: every event of the channel. The event's id counts as
   * processed (position, ack) once every handler has returned; if one throws,
   * the event stays unprocessed (it comes again with the next recovery, unless a
   * later event of the channel is processed first) and the error is rethrown
   * from a microtask.
   * `on('resync', handler)`: the channels whose missed events could not be
   * recovered; the app refetches their state. Returns the function that stops it.
   */
  on (event: 'resync', handler: (resync: Resync) => void): () => void
  on<C extends ChannelName> (channel: C, handler: (event: ChannelEvent<C>) => void): () => void
  on (channel: string, handler: Handler): () => void {
    return this.#listeners.add(channel === 'resync' ? ' resync' : channel, handler)
  }

  /** Subscribes a channel, now and after every reconnect; settles with the server's `subscribed` or `error`. */
  async subscribe (channel: ChannelName): Promise<void> {
    this.#wanted.add(channel)
    const done = this.#wait('subscribe ' + channel)
    if (this.#subscribed.has(channel)) this.#waiters.settle('subscribe ' + channel)
    else this.#sync()
    return await done
  }

  /** Unsubscribes a channel; settles with the server's `unsubscribed` or `error` (at once when the socket does not have it). A subscribe still pending rejects with `UNSUBSCRIBED`. */
  async unsubscribe (channel: ChannelName): Promise<void> {
    this.#wanted.delete(channel)
    this.#positions.delete(channel)
    this.#waiters.settle('subscribe ' + channel, undefined, new RealtimeClientError('UNSUBSCRIBED', 'Unsubscribed before the server confirmed'))
    if (!this.#subscribed.has(channel) && !this.#inFlight('subscribe', channel)) return
    const done = this.#wait('unsubscribe ' + channel)
    this.#sync()
    return await done
  }

  /** Resolves with the server's `pong` data. */
  async ping (): Promise<{ timestamp: number }> {
    if (this.#state.state !== 'connected') throw new RealtimeClientError('DISCONNECTED', 'Not connected')
    const done = this.#wait('ping ')
    this.#request('ping', '')
    return await done
  }

  /**
   * While a reconnect waits for its backoff, connects now: for when the app
   * knows the network is back (a browser's `online` event, React Native's
   * NetInfo). Otherwise does nothing.
   */
  reconnect (): void {
    if (this.#state.state !== 'disconnected') return
    clearTimeout(this.#retryTimer)
    this.#connect()
  }

  /** Closes the socket for good (state `closed`, code 1000); pending subscribes reject with `CLOSED`. */
  close (): void {
    this.#finish(NORMAL, 'Closed by the client')
  }

  /** Closed for good: by close(), or a close code or status that ends the session. */
  get #closed (): boolean {
    return this.#state.state === 'closed'
  }

  #setState (state: ClientState): void {
    this.#state = state
    this.#listeners.emit(' state', state)
  }

  async #wait (key: string): Promise<any> {
    if (this.#closed) throw new RealtimeClientError('CLOSED', 'The client is closed')
    return await this.#waiters.wait(key)
  }

  #request (event: string, channel: string, extra?: Record<string, string>): void {
    this.#sent.push({ event, channel })
    this.#send({ event, channel: channel === '' ? undefined : channel, ...extra })
  }

  #inFlight (event: string, channel: string): boolean {
    return this.#sent.some((request) => request.event === event && request.channel === channel)
  }

  /** Sends what brings the socket's channels to the ones the app wants, except what is on its way already. */
  #sync (): void {
    if (this.#state.state !== 'connected') return
    for (const channel of this.#subscribed) {
      if (!this.#wanted.has(channel) && !this.#inFlight('unsubscribe', channel)) this.#request('unsubscribe', channel)
    }
    for (const channel of this.#wanted) {
      if (!this.#subscribed.has(channel) && !this.#inFlight('subscribe', channel)) this.#request('subscribe', channel)
    }
  }

  #send (message: object): void {
    if (this.#ws?.readyState === OPEN) this.#ws.send(JSON.stringify(message))
  }

  async #connect (): Promise<void> {
    // close() before the first connect's microtask ran.
    if (this.#closed) return
    this.#setState({ state: 'connecting' })
    if (this.#needToken) {
      try {
        this.#token = await this.#options.getToken!()
        this.#needToken = false
      } catch {
        return this.#after('retry', ABNORMAL, 'getToken failed')
      }
    }
    if (this.#closed) return
    const options = this.#options
    const recover = [...this.#positions].map(([channel, id]) => channel + '@' + id).join(',')
    const request = connectRequest(options.url, this.#token!, recover, options.tokenTransport ?? 'query',
      options.protocolPrefix ?? 'bearer.', options.protocol ?? 'realtime.v1')
    const ws = new this.#WebSocket(request.url, request.protocols)
    this.#ws = ws
    let opened = false
    ws.onopen = () => { opened = true }
    ws.onmessage = (event) => {
      if (this.#ws !== ws) return
      this.#heard = true
      this.#message(event.data)
    }
    // `ws` throws an error event nobody listens to; the close event that follows says what happened.
    ws.onerror = () => {}
    const ended = (code: number, reason: string): void => {
      this.#drop()
      if (opened) this.#after(decideClose(code), code, reason)
      else this.#refused(request.url, request.headers, recover, code, reason)
    }
    // Whoever replaces or closes a socket takes its onclose first: a close event here is always the current socket's.
    ws.onclose = (event) => { ended(event.code, event.reason) }
    // A network that swallows the handshake (or a server that never says `connected`) would leave the socket connecting for minutes.
    this.#connectTimer = setTimeout(() => this.#abandon('Connect timeout'), options.connectTimeoutMs ?? 10_000)
  }

  /** Ends the current socket without waiting for a close handshake its peer may never answer, as a 1006. */
  #abandon (reason: string): void {
    const ws = this.#ws!
    const onclose = ws.onclose!
    ws.onclose = null
    ws.close()
    onclose({ code: ABNORMAL, reason })
  }

  /**
   * The server's heartbeat pings are invisible to a browser, so a link that died
   * silently (a NAT that forgot the flow) shows only when the client sends: with
   * `pingIntervalMs`, a socket that heard nothing for an interval gets a ping,
   * and one that then hears nothing for another is given up.
   */
  #probe (): void {
    if (this.#heard) {
      this.#heard = false
      this.#probing = false
    } else if (this.#probing) {
      this.#abandon('No pong')
    } else {
      this.#probing = true
      this.#request('ping', '')
    }
  }

  /** The connect failed before `open`: the GET of the same URL says why. */
  async #refused (url: string, headers: Record<string, string>, recover: string, code: number, reason: string): Promise<void> {
    const answer = this.#fetch && await askWhy(this.#fetch, url, headers, this.#options.connectTimeoutMs ?? 10_000)
    if (answer === undefined) return this.#after('retry', code, reason)
    const decision = decideStatus(answer.status, recover !== '')
    if (decision === 'reset') {
      for (const channel of this.#positions.keys()) this.#listeners.emit(' resync', { channel, reason: 'refused' })
      this.#positions.clear()
    }
    this.#after(decision, code, answer.reason, answer.status, answer.retryAfterMs)
  }

  #after (decision: Decision, code: number, reason: string, status?: number, retryAfterMs = 0): void {
    if (this.#closed) return
    if (decision === 'token' && this.#options.getToken === undefined) decision = 'stop'
    if (decision === 'stop') return this.#finish(code, reason, status)
    if (decision === 'token') this.#needToken = true
    const delayMs = Math.max(retryAfterMs, backoffDelay(this.#attempt++, decision === 'slow' ? this.#slowBackoff : this.#backoff, this.#random))
    // Before the state is told: a listener that calls close() clears it.
    this.#retryTimer = setTimeout(() => { this.#connect() }, delayMs)
    this.#setState(status === undefined ? { state: 'disconnected', code, reason, delayMs } : { state: 'disconnected', code, reason, status, delayMs })
  }

  /** Forgets the socket and what belonged to it; the channels and positions stay for the next one. */
  #drop (): WebSocketLike | null {
    const ws = this.#ws
    this.#ws = null
    this.#sent = []
    this.#acks.clear()
    clearTimeout(this.#ackTimer)
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#retryTimer)
    clearInterval(this.#probeTimer)
    clearTimeout(this.#syncTimer)
    this.#refreshTimer.cancel()
    this.#ackTimer = this.#syncTimer = undefined
    this.#subscribed = new Set()
    this.#waiters.settleAll('ping ', new RealtimeClientError('DISCONNECTED', 'The connection dropped'))
    this.#waiters.settleAll('unsubscribe ')
    return ws
  }

  #finish (code: number, reason: string, status?: number): void {
    if (this.#closed) return
    const ws = this.#drop()
    if (ws !== null) {
      ws.onclose = null
      ws.close(NORMAL)
    }
    this.#waiters.settleAll('', new RealtimeClientError('CLOSED', 'The client is closed'))
    this.#setState(status === undefined ? { state: 'closed', code, reason } : { state: 'closed', code, reason, status })
  }

  #message (raw: unknown): void {
    // The server sends text only: a binary frame (bytes on Node, a Blob in a browser) is nobody's reply.
    if (typeof raw !== 'string') return
    let message: ServerMessage
    try {
      message = JSON.parse(raw)
    } catch {
      return
    }
    switch (message.event) {
      case 'connected': return this.#connected(message.data)
      case 'resync': return this.#resync(message.data)
      case 'subscribed':
      case 'unsubscribed':
      case 'pong':
      case 'refreshed':
      case 'error': return this.#reply(message)
    }
    if (typeof message.channel === 'string') this.#event(message as ChannelEvent)
  }

  #connected (data: { connection_id: string, user_id: string, subscriptions: string[], positions?: Record<string, string>, recovery?: Recovery, expires_at?: number }): void {
    const reconnected = this.#connectedOnce
    const recovery = data.recovery ?? {}
    clearTimeout(this.#connectTimer)
    if (this.#options.pingIntervalMs !== undefined) {
      this.#heard = this.#probing = false
      clearInterval(this.#probeTimer)
      this.#probeTimer = setInterval(() => this.#probe(), this.#options.pingIntervalMs)
    }
    this.#connectedOnce = true
    this.#resyncPending = false
    this.#attempt = 0
    if (!reconnected) for (const channel of data.subscriptions) this.#wanted.add(channel)
    for (const [channel, id] of Object.entries(data.positions ?? {})) {
      // A channel whose missed events are being replayed keeps its own id: it moves on as their handlers finish.
      const replaying = (recovery[channel]?.replayed ?? 0) > 0
      if (this.#wanted.has(channel) && !replaying) this.#positions.set(channel, id)
    }
    this.#subscribed = new Set(data.subscriptions)
    this.#setState({ state: 'connected', connectionId: data.connection_id, userId: data.user_id, ...(data.recovery === undefined ? {} : { recovery: data.recovery }) })
    if (this.#closed) return // a listener closed the client
    for (const channel of data.subscriptions) if (this.#wanted.has(channel)) this.#waiters.settle('subscribe ' + channel)
    this.#sync()
    for (const [channel, answer] of Object.entries(recovery)) {
      if (!answer.recovered) this.#listeners.emit(' resync', { channel, reason: answer.reason })
    }
    // Without history there is nothing to recover from: every channel may have missed events while the socket was down.
    if (reconnected && data.positions === undefined && data.recovery === undefined) {
      for (const channel of this.#wanted) this.#listeners.emit(' resync', { channel, reason: 'history_off' })
    }
    if (this.#options.getToken !== undefined && data.expires_at !== undefined) this.#refreshTimer.schedule(data.expires_at)
  }

  /** The server may have missed events for this socket: reconnecting with `recover` fetches them, or says which channel cannot. */
  #resync (data: { reason: string }): void {
    if (this.#positions.size === 0) {
      for (const channel of this.#wanted) this.#listeners.emit(' resync', { channel, reason: data.reason })
      return
    }
    // One reconnect per gap: the replay from the positions it recovers from covers whatever a later resync reports.
    if (this.#resyncPending) return
    this.#resyncPending = true
    // Not at once: a node that lost its Redis link tells all its sockets together, and they should not all come back in the same instant.
    this.#retryTimer = setTimeout(() => {
      const ws = this.#drop()!
      ws.onclose = null
      ws.close(NORMAL)
      this.#connect()
    }, backoffDelay(0, this.#backoff, this.#random))
  }

  #reply (message: ServerMessage): void {
    const request = this.#sent.shift()
    const channel = message.channel as string
    switch (message.event) {
      case 'subscribed':
        this.#subscribed.add(channel)
        if (this.#wanted.has(channel) && typeof message.data.position === 'string') this.#positions.set(channel, message.data.position)
        this.#waiters.settle('subscribe ' + channel)
        return this.#sync() // unsubscribed meanwhile
      case 'unsubscribed':
        this.#subscribed.delete(channel)
        this.#waiters.settle('unsubscribe ' + channel)
        return this.#sync() // subscribed again meanwhile
      case 'pong': return this.#waiters.settle('ping ', message.data)
      case 'refreshed':
        this.#token = this.#refreshing
        return this.#refreshTimer.schedule(message.data.expires_at)
    }
    if (request === undefined) return
    if (request.event === 'refresh') return this.#refreshTimer.retry()
    const { code, message: text } = message.data as { code: string, message: string }
    if (request.event !== 'ping' && TRANSIENT.has(code)) {
      this.#syncTimer ??= setTimeout(() => {
        this.#syncTimer = undefined
        this.#sync()
      }, backoffDelay(0, this.#backoff, this.#random))
      return
    }
    if (request.event === 'subscribe') {
      // Refused for good: the channel is not the app's any more, nor recovered on the next connect.
      this.#wanted.delete(request.channel)
      this.#positions.delete(request.channel)
    }
    this.#waiters.settle(request.event + ' ' + request.channel, undefined, new RealtimeClientError(code, text))
  }

  #event (event: ChannelEvent): void {
    const position = this.#positions.get(event.channel)
    // Handling it would move the position past events that may be missing, and the recover would start after them. The
    // replay from the position brings it again, in order.
    if (this.#resyncPending && position !== undefined) return
    // Another epoch: the stream lost its history (Redis restarted empty, flushed), and the new life's earlier events may have
    // been published before this socket's node listened again. Moving on silently would start the next recover after them.
    if (typeof event.id === 'string' && position !== undefined && this.#wanted.has(event.channel) && !sameEpoch(position, event.id)) {
      this.#listeners.emit(' resync', { channel: event.channel, reason: 'epoch_changed' })
    }
    if (!this.#listeners.emit(event.channel, event) || typeof event.id !== 'string') return
    if (this.#wanted.has(event.channel)) this.#positions.set(event.channel, event.id)
    this.#acks.set(event.channel, event.id)
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), this.#options.ackDelayMs ?? 100)
  }

  #flushAcks (): void {
    this.#ackTimer = undefined
    for (const [channel, id] of this.#acks) this.#send({ event: 'ack', channel, id })
    this.#acks.clear()
  }

  /** Refreshes the token in place, on the same socket. */
  async #refresh (): Promise<void> {
    const ws = this.#ws
    let token: string
    try {
      token = await this.#options.getToken!()
    } catch {
      return this.#refreshTimer.retry()
    }
    if (ws !== this.#ws) return
    this.#refreshing = token
    this.#request('refresh', '', { token })
  }
}

/** Whether two event ids (`<epoch>:<offset>`) belong to the same stream life: compared in place, as this runs for every event. */
function sameEpoch (a: string, b: string): boolean {
  const end = a.lastIndexOf(':')
  if (end !== b.lastIndexOf(':')) return false
  for (let index = 0; index < end; index++) if (a.charCodeAt(index) !== b.charCodeAt(index)) return false
  return true
}

/** Creates a client and starts connecting. */
export function createClient (options: ClientOptions): RealtimeClient {
  return new RealtimeClient(options)
}
