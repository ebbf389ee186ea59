/**
 * fastify-realtime/client: the browser, React Native and Node SDK of the
 * gateway. Standalone: nothing here imports the server at runtime (types only).
 */
export { createClient, RealtimeClient, type ChannelName } from './client.js'
export { decideClose, decideStatus, backoffDelay, BACKOFF, SLOW_BACKOFF, type Decision, type Backoff } from './reconnect.js'
export {
  RealtimeClientError, type ClientOptions, type ClientState, type RecoveryOutcome, type ChannelEvent, type ChannelData, type Resync,
  type WebSocketLike, type WebSocketConstructor, type FetchLike
} from './types.js'
