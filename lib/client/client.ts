import type { RealtimeChannels } from '../node/realtime-api.js'
import { BACKOFF, SLOW_BACKOFF, backoffDelay, decideClose, decideStatus, type Decision } from './reconnect.js'
import { askWhy, connectRequest } from './transport.js'
import {
  RealtimeClientError, type ChannelEvent, type ClientOptions, type ClientState, type FetchLike, type Resync,
  type WebSocketConstructor, type WebSocketLike
} from './types.js'

/** A channel the server's declarations name, or any other string (its data is then a plain object). */
export type ChannelName = (keyof RealtimeChannels & string) | (string & {})

interface Waiter { resolve: (value: any) => void, reject: (error: Error) => void }
type Handler = (value: any) => void
interface ServerMessage { event?: unknown, channel?: unknown, data?: any, id?: unknown }
/** Per channel listed in `recover`, as `connected.data.recovery` answers it. */
type Recovery = Record<string, { recovered: boolean, replayed?: number, reason?: string }>

const OPEN = 1
const NONE: Handler[] = []
const NORMAL = 1000
const ABNORMAL = 1006
/** setTimeout fires at once for delays past 2^31 − 1 ms (a token valid for a month). */
const MAX_TIMER_MS = 2 ** 31 - 1

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
  readonly #now: () => number
  #ws: WebSocketLike | null = null
  #state: ClientState = { state: 'connecting' }
  #token: string | undefined
  #needToken: boolean
  /** The channels the app wants; the server's auto-subscribed ones join on the first connect. */
  readonly #wanted: Set<string>
  /** Per channel, the id of the last event its handlers finished, or the position the server gave. */
  readonly #positions = new Map<string, string>()
  readonly #acks = new Map<string, string>()
  /** The requests on this socket that await a reply, in order: replies come in the order of requests. */
  #sent: Array<{ event: string, channel: string }> = []
  readonly #waiters = new Map<string, Waiter[]>()
  readonly #handlers = new Map<string, Handler[]>()
  #ackTimer: ReturnType<typeof setTimeout> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #connectTimer: ReturnType<typeof setTimeout> | undefined
  #refreshTimer: ReturnType<typeof setTimeout> | undefined
  #attempt = 0
  #connectedOnce = false
  #closed = false
  #expiresAt = 0
  #refreshing = ''

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
    this.#now = options.now ?? Date.now
    this.#token = options.token
    this.#needToken = options.getToken !== undefined && options.token === undefined
    this.#wanted = new Set(options.channels)
    // A microtask later, so listeners added right after createClient see `connecting` and every message.
    queueMicrotask(() => { this.#connect() })
  }

  /** The current state; `onState` tells every change. */
  get state (): ClientState {
    return this.#state
  }

  /** Calls `listener` on every state change; returns the function that stops it. */
  onState (listener: (state: ClientState) => void): () => void {
    return this.#listen(' state', listener)
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
    return this.#listen(channel === 'resync' ? ' resync' : channel, handler)
  }

  /** Subscribes a channel, now and after every reconnect; settles with the server's `subscribed` or `error`. */
  async subscribe (channel: ChannelName): Promise<void> {
    this.#wanted.add(channel)
    const done = this.#wait('subscribe ' + channel)
    if (this.#state.state === 'connected') this.#request('subscribe', channel)
    return await done
  }

  /** Unsubscribes a channel; settles with the server's `unsubscribed` or `error` (at once while disconnected). A subscribe still pending rejects with `UNSUBSCRIBED`. */
  async unsubscribe (channel: ChannelName): Promise<void> {
    this.#wanted.delete(channel)
    this.#positions.delete(channel)
    this.#settle('subscribe ' + channel, undefined, new RealtimeClientError('UNSUBSCRIBED', 'Unsubscribed before the server confirmed'))
    if (this.#state.state !== 'connected') return
    const done = this.#wait('unsubscribe ' + channel)
    this.#request('unsubscribe', channel)
    return await done
  }

  /** Resolves with the server's `pong` data. */
  async ping (): Promise<{ timestamp: number }> {
    if (this.#state.state !== 'connected') throw new RealtimeClientError('DISCONNECTED', 'Not connected')
    const done = this.#wait('ping ')
    this.#request('ping', '')
    return await done
  }

  /** Closes the socket for good (state `closed`, code 1000); pending subscribes reject with `CLOSED`. */
  close (): void {
    this.#finish(NORMAL, 'Closed by the client')
  }

  #listen (key: string, handler: Handler): () => void {
    this.#handlers.set(key, [...this.#handlers.get(key) ?? [], handler])
    return () => { this.#handlers.set(key, this.#handlers.get(key)!.filter((h) => h !== handler)) }
  }

  /**
   * Calls every handler of `key`; false if one threw. The error is thrown again
   * from a microtask: the app sees it as uncaught, and the socket's own message
   * dispatch, which it would otherwise unwind (`ws` then stops reading), goes on.
   */
  #emit (key: string, value: unknown): boolean {
    let ok = true
    // An index loop over the handlers as they are (arrays are replaced, never changed): nothing allocated per event.
    const handlers = this.#handlers.get(key) ?? NONE
    for (let i = 0; i < handlers.length; i++) {
      try {
        handlers[i](value)
      } catch (error) {
        ok = false
        queueMicrotask(() => { throw error })
      }
    }
    return ok
  }

  #setState (state: ClientState): void {
    this.#state = state
    this.#emit(' state', state)
  }

  async #wait (key: string): Promise<any> {
    if (this.#closed) throw new RealtimeClientError('CLOSED', 'The client is closed')
    return await new Promise((resolve, reject) => { this.#waiters.set(key, [...this.#waiters.get(key) ?? [], { resolve, reject }]) })
  }

  /** Settles every waiter of `key`, or, for pings, the oldest. */
  #settle (key: string, value?: unknown, error?: Error): void {
    const waiters = this.#waiters.get(key)
    if (waiters === undefined) return
    const settled = key === 'ping ' ? waiters.splice(0, 1) : waiters.splice(0)
    if (waiters.length === 0) this.#waiters.delete(key)
    for (const waiter of settled) error === undefined ? waiter.resolve(value) : waiter.reject(error)
  }

  #request (event: string, channel: string, extra?: Record<string, string>): void {
    this.#sent.push({ event, channel })
    this.#send({ event, channel: channel === '' ? undefined : channel, ...extra })
  }

  #send (message: object): void {
    if (this.#ws?.readyState === OPEN) this.#ws.send(JSON.stringify(message))
  }

  async #connect (): Promise<void> {
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
    ws.onmessage = (event) => { if (this.#ws === ws) this.#message(event.data) }
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
    this.#connectTimer = setTimeout(() => {
      ws.onclose = null
      ws.close()
      ended(ABNORMAL, 'Connect timeout')
    }, options.connectTimeoutMs ?? 10_000)
  }

  /** The connect failed before `open`: the GET of the same URL says why. */
  async #refused (url: string, headers: Record<string, string>, recover: string, code: number, reason: string): Promise<void> {
    const answer = this.#fetch && await askWhy(this.#fetch, url, headers, this.#options.connectTimeoutMs ?? 10_000)
    if (answer === undefined) return this.#after('retry', code, reason)
    let decision = decideStatus(answer.status)
    if (answer.status === 400 && recover !== '') {
      // A recover the server refuses (a channel it no longer knows, more than it allows): start over without positions.
      for (const channel of this.#positions.keys()) this.#emit(' resync', { channel, reason: 'refused' })
      this.#positions.clear()
      decision = 'retry'
    }
    this.#after(decision, code, answer.reason, answer.status, answer.retryAfterMs)
  }

  #after (decision: Decision, code: number, reason: string, status?: number, retryAfterMs = 0): void {
    if (this.#closed) return
    if (decision === 'token' && this.#options.getToken === undefined) decision = 'stop'
    if (decision === 'stop') return this.#finish(code, reason, status)
    if (decision === 'token') this.#needToken = true
    const backoff = decision === 'slow' ? this.#options.slowBackoff ?? SLOW_BACKOFF : this.#options.backoff ?? BACKOFF
    const delayMs = Math.max(retryAfterMs, backoffDelay(this.#attempt++, backoff, this.#random))
    this.#setState(status === undefined ? { state: 'disconnected', code, reason, delayMs } : { state: 'disconnected', code, reason, status, delayMs })
    this.#retryTimer = setTimeout(() => { this.#connect() }, delayMs)
  }

  /** Forgets the socket and what belonged to it; the channels and positions stay for the next one. */
  #drop (): WebSocketLike | null {
    const ws = this.#ws
    this.#ws = null
    this.#sent = []
    this.#acks.clear()
    clearTimeout(this.#ackTimer)
    clearTimeout(this.#refreshTimer)
    clearTimeout(this.#connectTimer)
    this.#ackTimer = undefined
    const gone = new RealtimeClientError('DISCONNECTED', 'The connection dropped')
    this.#settle('ping ', undefined, gone)
    for (const key of [...this.#waiters.keys()]) if (key.startsWith('unsubscribe ')) this.#settle(key)
    return ws
  }

  #finish (code: number, reason: string, status?: number): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retryTimer)
    const ws = this.#drop()
    if (ws !== null) {
      ws.onclose = null
      ws.close(NORMAL)
    }
    const closed = new RealtimeClientError('CLOSED', 'The client is closed')
    for (const key of [...this.#waiters.keys()]) this.#settle(key, undefined, closed)
    this.#setState(status === undefined ? { state: 'closed', code, reason } : { state: 'closed', code, reason, status })
  }

  #message (raw: unknown): void {
    let message: ServerMessage
    try {
      message = JSON.parse(raw as string)
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
    this.#connectedOnce = true
    this.#attempt = 0
    if (!reconnected) for (const channel of data.subscriptions) this.#wanted.add(channel)
    for (const [channel, id] of Object.entries(data.positions ?? {})) {
      // A channel whose missed events are being replayed keeps its own id: it moves on as their handlers finish.
      const replaying = (recovery[channel]?.replayed ?? 0) > 0
      if (this.#wanted.has(channel) && !replaying) this.#positions.set(channel, id)
    }
    this.#setState({ state: 'connected', connectionId: data.connection_id, userId: data.user_id })
    for (const channel of data.subscriptions) {
      if (this.#wanted.has(channel)) this.#settle('subscribe ' + channel)
      else this.#request('unsubscribe', channel)
    }
    for (const channel of this.#wanted) if (!data.subscriptions.includes(channel)) this.#request('subscribe', channel)
    for (const [channel, answer] of Object.entries(recovery)) {
      if (!answer.recovered) this.#emit(' resync', { channel, reason: answer.reason })
    }
    // Without history there is nothing to recover from: every channel may have missed events while the socket was down.
    if (reconnected && data.positions === undefined && data.recovery === undefined) {
      for (const channel of this.#wanted) this.#emit(' resync', { channel, reason: 'history_off' })
    }
    this.#scheduleRefresh(data.expires_at)
  }

  /** The server may have missed events for this socket: reconnecting with `recover` fetches them, or says which channel cannot. */
  #resync (data: { reason: string }): void {
    if (this.#positions.size === 0) {
      for (const channel of this.#wanted) this.#emit(' resync', { channel, reason: data.reason })
      return
    }
    const ws = this.#drop()!
    ws.onclose = null
    ws.close(NORMAL)
    this.#connect()
  }

  #reply (message: ServerMessage): void {
    const request = this.#sent.shift()
    const channel = message.channel as string
    switch (message.event) {
      case 'subscribed':
        if (this.#wanted.has(channel) && typeof message.data.position === 'string') this.#positions.set(channel, message.data.position)
        return this.#settle('subscribe ' + channel)
      case 'unsubscribed':
        if (!this.#wanted.has(channel)) this.#positions.delete(channel)
        return this.#settle('unsubscribe ' + channel)
      case 'pong': return this.#settle('ping ', message.data)
      case 'refreshed':
        this.#token = this.#refreshing
        return this.#scheduleRefresh(message.data.expires_at)
    }
    if (request === undefined) return
    if (request.event === 'refresh') return this.#refreshLater()
    if (request.event === 'subscribe') this.#wanted.delete(request.channel)
    this.#settle(request.event + ' ' + request.channel, undefined, new RealtimeClientError(message.data.code, message.data.message))
  }

  #event (event: ChannelEvent): void {
    if (!this.#emit(event.channel, event) || typeof event.id !== 'string') return
    if (this.#wanted.has(event.channel)) this.#positions.set(event.channel, event.id)
    this.#acks.set(event.channel, event.id)
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), this.#options.ackDelayMs ?? 100)
  }

  #flushAcks (): void {
    this.#ackTimer = undefined
    for (const [channel, id] of this.#acks) this.#send({ event: 'ack', channel, id })
    this.#acks.clear()
  }

  /** Refreshes the token in place before it expires: a third of the time left ahead, at most a minute. */
  #scheduleRefresh (expiresAt: number | undefined): void {
    clearTimeout(this.#refreshTimer)
    if (this.#options.getToken === undefined || typeof expiresAt !== 'number') return
    this.#expiresAt = expiresAt
    const left = expiresAt * 1000 - this.#now()
    this.#refreshTimer = setTimeout(() => { this.#refresh() }, Math.min(MAX_TIMER_MS, Math.max(0, left - Math.min(60_000, left / 3))))
  }

  async #refresh (): Promise<void> {
    const ws = this.#ws
    let token: string
    try {
      token = await this.#options.getToken!()
    } catch {
      return this.#refreshLater()
    }
    if (ws !== this.#ws) return
    this.#refreshing = token
    this.#request('refresh', '', { token })
  }

  /** A refresh that failed is tried again halfway to the expiry; past it, the server's 4005 leads to a reconnect with a new token. */
  #refreshLater (): void {
    const left = this.#expiresAt * 1000 - this.#now()
    if (left > 1000) this.#refreshTimer = setTimeout(() => { this.#refresh() }, Math.min(MAX_TIMER_MS, left / 2))
  }
}

/** Creates a client and starts connecting. */
export function createClient (options: ClientOptions): RealtimeClient {
  return new RealtimeClient(options)
}
