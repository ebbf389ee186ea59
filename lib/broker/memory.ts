import type { Channel, ChannelCatalog } from '../channels/catalog.js'
import { CloseCode } from '../constants.js'
import type { Gateway } from '../connection/gateway.js'
import type { EncodedEvent } from '../protocol/server-event.js'
import type { Broker } from './broker.js'

/** Embedded mode: one process, so every command goes straight to the local gateway. */
export class MemoryBroker implements Broker {
  readonly #gateway: Gateway
  readonly #catalog: ChannelCatalog

  constructor (gateway: Gateway, catalog: ChannelCatalog) {
    this.#gateway = gateway
    this.#catalog = catalog
  }

  async publishToUser (userId: string, channel: string, event: EncodedEvent): Promise<void> {
    const { alwaysDelivered } = this.#catalog.get(channel) as Channel
    this.#gateway.deliverToUser(userId, channel, alwaysDelivered, event)
  }

  async publishToChannel (channel: string, event: EncodedEvent): Promise<void> {
    this.#gateway.deliverToChannel(channel, event)
  }

  async disconnectUser (userId: string, code: number, reason: string, finalEvent?: EncodedEvent): Promise<void> {
    this.#gateway.disconnectUser(userId, code, reason, finalEvent)
  }

  async revokeToken (tokenHash: string): Promise<void> {
    this.#gateway.closeToken(tokenHash, CloseCode.TOKEN_REVOKED, 'Access token revoked')
  }

  async close (): Promise<void> {}
}
