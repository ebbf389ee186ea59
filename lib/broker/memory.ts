import type { Channel, ChannelCatalog } from '../channels/catalog.js'
import { CloseCode } from '../constants.js'
import type { Hub } from '../hub/hub.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { Broker } from './broker.js'

/** Embedded mode: one process, so every command goes straight to the local hub. */
export class MemoryBroker implements Broker {
  readonly #hub: Hub
  readonly #catalog: ChannelCatalog

  constructor (hub: Hub, catalog: ChannelCatalog) {
    this.#hub = hub
    this.#catalog = catalog
  }

  async publishToUser (userId: string, channel: string, event: EncodedEvent): Promise<void> {
    const { alwaysDelivered } = this.#catalog.get(channel) as Channel
    this.#hub.deliverToUser(userId, channel, alwaysDelivered, event)
  }

  async publishToChannel (channel: string, event: EncodedEvent): Promise<void> {
    this.#hub.deliverToChannel(channel, event)
  }

  async disconnectUser (userId: string, code: number, reason: string, finalEvent?: EncodedEvent): Promise<void> {
    this.#hub.disconnectUser(userId, code, reason, finalEvent)
  }

  async revokeToken (tokenHash: string): Promise<void> {
    this.#hub.closeToken(tokenHash, CloseCode.TOKEN_REVOKED, 'Access token revoked')
  }

  async close (): Promise<void> {}
}
