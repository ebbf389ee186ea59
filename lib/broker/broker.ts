import type { EncodedEvent } from '../protocol/server-event.js'

/**
 * Carries publishes and control commands to the node(s) holding the sockets.
 * The embedded broker hands them straight to this node's hub; the Redis
 * broker (cluster mode) routes them through Redis pub/sub to every node.
 */
export interface Broker {
  /** An event for one user, on a user-scoped channel. */
  publishToUser (userId: string, channel: string, event: EncodedEvent): Promise<void>
  /** An event for every subscriber of a global channel. */
  publishToChannel (channel: string, event: EncodedEvent): Promise<void>
  /** Close the user's socket with `code`, after `finalEvent` if given. */
  disconnectUser (userId: string, code: number, reason: string, finalEvent?: EncodedEvent): Promise<void>
  /** Close every socket that authenticated with the token of `tokenHash` (4501). */
  revokeToken (tokenHash: string): Promise<void>
  close (): Promise<void>
}
