/**
 * Every number and code that crosses the wire lives here, so the protocol can be
 * read (and changed) in one place.
 */

/** WebSocket close codes sent by the gateway. 4000–4499: the client may reconnect with backoff; 4500–4999: it must not without a new user action. */
export const CloseCode = {
  /** Server shutting down (sent to every socket on `app.close()`). */
  GOING_AWAY: 1001,
  /** A frame that breaks the WebSocket protocol (sent by `ws`). */
  PROTOCOL_ERROR: 1002,
  /** Recorded, never sent: the socket ended without a close handshake (missed heartbeat, transport error). */
  ABNORMAL_CLOSURE: 1006,
  /** A text frame that is not UTF-8 (sent by `ws`). */
  INVALID_PAYLOAD: 1007,
  /** A message in more fragments or TCP reads than allowed (sent by `ws`). */
  POLICY_VIOLATION: 1008,
  /** Inbound frame above the payload limit. */
  MESSAGE_TOO_BIG: 1009,
  /** Send buffer over its cap: the client was not reading. */
  SLOW_CONSUMER: 4001,
  /** Events may have been missed; reconnect and resync state over HTTP. */
  RESYNC_NEEDED: 4003,
  /** The access token expired while connected. */
  TOKEN_EXPIRED: 4005,
  /** Sustained flood of client messages. */
  RATE_LIMITED: 4006,
  /** Replaced by a newer connection of the same user. */
  REPLACED: 4500,
  /** The access token was revoked. */
  TOKEN_REVOKED: 4501,
  /** The backend forced a logout. */
  FORCED_LOGOUT: 4502,
  /** Repeated invalid messages. */
  PROTOCOL_VIOLATION: 4503
} as const
export type CloseCodeValue = typeof CloseCode[keyof typeof CloseCode]

/** How the gateway ends a socket: the close code, and the reason sent with it (or logged, for a socket it terminates). */
export interface Disconnection {
  readonly code: number
  readonly reason: string
}

/** Every way the gateway itself ends a socket; nothing else spells a close code or reason. */
export const Disconnect = {
  SHUTDOWN: { code: CloseCode.GOING_AWAY, reason: 'Server shutting down' },
  /** Terminated: it did not answer the previous ping. */
  HEARTBEAT_TIMEOUT: { code: CloseCode.ABNORMAL_CLOSURE, reason: 'heartbeat timeout' },
  MESSAGE_TOO_BIG: { code: CloseCode.MESSAGE_TOO_BIG, reason: 'Message too big' },
  /** Terminated: its peer does not read. */
  SLOW_CONSUMER: { code: CloseCode.SLOW_CONSUMER, reason: 'slow consumer' },
  TOKEN_EXPIRED: { code: CloseCode.TOKEN_EXPIRED, reason: 'Access token expired' },
  RATE_LIMITED: { code: CloseCode.RATE_LIMITED, reason: 'Rate limited' },
  REPLACED: { code: CloseCode.REPLACED, reason: 'Replaced by a newer connection' },
  TOKEN_REVOKED: { code: CloseCode.TOKEN_REVOKED, reason: 'Access token revoked' },
  FORCED_LOGOUT: { code: CloseCode.FORCED_LOGOUT, reason: 'Forced logout' },
  PROTOCOL_VIOLATION: { code: CloseCode.PROTOCOL_VIOLATION, reason: 'Too many invalid messages' },
  /** History on: the store could not say where the socket stands; reconnecting with `recover` will. */
  HISTORY_UNAVAILABLE: { code: CloseCode.RESYNC_NEEDED, reason: 'History unavailable; reconnect with recover' }
} as const satisfies Record<string, Disconnection>

/**
 * The close code `ws` sent when it refused a client frame, by the `code` of
 * the error it reports; any other `WS_ERR_*` is a protocol error (1002).
 */
const WS_REFUSALS: Record<string, CloseCodeValue> = {
  WS_ERR_INVALID_UTF8: CloseCode.INVALID_PAYLOAD,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: CloseCode.POLICY_VIOLATION,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: CloseCode.MESSAGE_TOO_BIG,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: CloseCode.MESSAGE_TOO_BIG
}

/** The close code a socket error ends the socket with, as its peer sees it. */
export function closeCodeOfSocketError (error: Error & { code?: string }): CloseCodeValue {
  const code = error.code ?? ''
  if (!code.startsWith('WS_ERR_')) return CloseCode.ABNORMAL_CLOSURE
  return WS_REFUSALS[code] ?? CloseCode.PROTOCOL_ERROR
}

/** `code` values of `{"event":"error"}` replies to client messages. */
export const ProtocolErrorCode = {
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  UNKNOWN_EVENT: 'UNKNOWN_EVENT',
  UNKNOWN_CHANNEL: 'UNKNOWN_CHANNEL',
  RATE_LIMITED: 'RATE_LIMITED',
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  /** History on: the store did not answer a `subscribe`'s read; the channel stays unsubscribed. */
  HISTORY_UNAVAILABLE: 'HISTORY_UNAVAILABLE',
  /** A `refresh` with a token that is unknown, expired, revoked, or another user's. */
  INVALID_TOKEN: 'INVALID_TOKEN',
  /** A `refresh` the token store could not answer in time. */
  TOKEN_STORE_UNAVAILABLE: 'TOKEN_STORE_UNAVAILABLE'
} as const
export type ProtocolErrorCodeValue = typeof ProtocolErrorCode[keyof typeof ProtocolErrorCode]

/** Exact `message` strings of the handshake answers (README's handshake table). */
export const HandshakeMessage = {
  DISABLED: 'WebSocket is disabled',
  SHUTTING_DOWN: 'Server is shutting down',
  ORIGIN_NOT_ALLOWED: 'Origin not allowed',
  MISSING_TOKEN: 'Missing access token',
  INVALID_TOKEN: 'Invalid or expired token',
  TOKEN_STORE_UNAVAILABLE: 'Token store unavailable',
  SERVER_FULL: 'Too many connections on this server',
  TOO_MANY_FROM_ADDRESS: 'Too many connections from this address',
  /** Over `limits.handshakesPerSecond`. */
  TOO_MANY_HANDSHAKES: 'Too many handshakes on this server',
  UPGRADE_REQUIRED: 'WebSocket upgrade required',
  /** An upgrade request to one of the plugin's HTTP routes. */
  NOT_A_WEBSOCKET_ROUTE: 'This route does not accept WebSocket upgrades',
  /** `recover` is not `<channel>@<id>,…` of known channels, each once. */
  INVALID_RECOVER: 'Invalid recover parameter: expected <channel>@<id>,… of known channels',
  /** `recover` lists more channels than a socket may hold. */
  TOO_MANY_TO_RECOVER: 'Too many channels to recover',
  /** `Sec-WebSocket-Protocol` offered only the token entry: the 101 would select none, and a browser fails that. */
  TOKEN_ONLY_PROTOCOL: 'Offer a subprotocol besides the access token',
  /** What `ws` would refuse after the gate, answered by the gate in the error shape. */
  INVALID_KEY: 'Missing or invalid Sec-WebSocket-Key header',
  UNSUPPORTED_VERSION: 'Unsupported Sec-WebSocket-Version: 13 expected',
  INVALID_PROTOCOL_LIST: 'Invalid Sec-WebSocket-Protocol header'
} as const

/** The global settings channel. */
export const SETTINGS_CHANNEL = 'settings'
/** The channels every socket is subscribed to on connect. */
export const AUTO_SUBSCRIBED: readonly string[] = [SETTINGS_CHANNEL]
/** The channel force-logout events travel on; delivered without a subscription. */
export const FORCE_LOGOUT_CHANNEL = 'mobile.force.logout'
/** The event name the mobile apps expect for a forced logout. */
export const FORCE_LOGOUT_EVENT = 'MOBILE_USER_FORCE_LOGOUT_EVENT'

/** The longest event name `publish` takes (characters). */
export const MAX_EVENT_NAME_LENGTH = 128
/** The longest `awaitAck.timeoutMs` (an hour). */
export const MAX_AWAIT_ACK_MS = 3_600_000
/** The most items one `POST {prefix}/publish` batch takes. */
export const MAX_PUBLISH_BATCH = 100
/** The longest `idempotencyKey` a publish takes (characters). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256
