import type { ChannelCatalog } from '../channels/catalog.js'
import type { ConnectionInfo } from '../hub/connection.js'
import type { Hub } from '../hub/hub.js'
import type { GatewayStats, StatsSnapshot } from '../stats.js'
import type { RealtimeNode } from './node.js'
import type { PresenceEntry } from './presence.js'
import { buildPublishApi, type PublishApi, type UserId } from './publish-api.js'
import type { TokenState, TokenStore } from '../tokens/token-store.js'

import type { RealtimeChannels } from '../channels/declarations.js'

export type { RealtimeChannels }
export type { ChannelHelper, PublishOptions, PublishResult, UserId } from './publish-api.js'

export interface RealtimeTokens {
  /** Mints a random token (256 bits) for `userId` and stores its state. */
  issue: (userId: UserId, options: { ttlSeconds: number }) => Promise<string>
  /** The token stops working for new connections, and its open sockets close with 4501. */
  revoke: (token: string) => Promise<void>
  /** The state of a live token, or `null` if it is unknown, expired or revoked. */
  resolve: (token: string) => Promise<TokenState | null>
}

export interface Realtime extends Omit<PublishApi, 'revoke'> {
  tokens: RealtimeTokens
  /** Users with a socket on this node. */
  connectedUsers: () => string[]
  /** The connections of this node, as diagnostics show them (never a token). */
  connections: () => ConnectionInfo[]
  /** Counters of this node since it started. */
  stats: () => StatsSnapshot
  /** This node's id (in cluster-wide listings and Redis keys). */
  nodeId: string
  /** Cluster-wide views, read from Redis in cluster mode (this process in embedded mode). */
  presence: {
    connectedUsers: () => Promise<string[]>
    connections: () => Promise<PresenceEntry[]>
  }
}

export interface RealtimeParts {
  catalog: ChannelCatalog
  node: RealtimeNode
  hub: Hub
  store: TokenStore
  stats: GatewayStats
  history: boolean
}

/** Builds `app.realtime`: the publishing calls (checks and encoding in publish-api.ts) through the node, and this node's views. */
export function buildRealtimeApi ({ catalog, node, hub, store, stats, history }: RealtimeParts): Realtime {
  const { presence, nodeId } = node
  const { revoke, ...publishing } = buildPublishApi({
    catalog,
    target: node,
    history,
    forgetToken: async (token) => await store.revoke(token),
    onPublish: () => { stats.publishes++ }
  })
  return {
    ...publishing,
    tokens: {
      issue: async (userId, options) => await store.issue(userId, options),
      revoke,
      resolve: async (token) => await store.resolve(token)
    },
    connectedUsers: () => hub.connections.userIds(),
    connections: () => Array.from(hub.connections, (connection) => connection.describe()),
    stats: () => stats.snapshot(),
    nodeId,
    presence: {
      connectedUsers: async () => await presence.connectedUsers(),
      connections: async () => await presence.connections()
    }
  }
}
