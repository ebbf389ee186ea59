/**
 * The channel declarations the server's `publish` and the client SDK both read.
 * This file imports nothing, so an app that uses only the SDK type-checks
 * without the server's types.
 */

/** The `data` of an event on a channel without a declared type. */
export type EventData = Record<string, unknown>

/**
 * The channels TypeScript knows. Applications add theirs by declaration merging
 * so `publish` checks `data` against the channel's type:
 *
 * ```ts
 * declare module 'fastify-realtime' {
 *   interface RealtimeChannels {
 *     'transfer.events': { scope: 'user', data: Static<typeof TransferSchema> }
 *   }
 * }
 * ```
 */
export interface RealtimeChannels {
  settings: { scope: 'global', data: EventData }
  'notification.events': { scope: 'user', data: EventData }
  'payment_order.events': { scope: 'user', data: EventData }
  'card.events': { scope: 'user', data: EventData }
  'card.create.events': { scope: 'user', data: EventData }
  'card.withdraw.events': { scope: 'user', data: EventData }
  'kyc.events': { scope: 'user', data: EventData }
  'mobile.force.logout': { scope: 'user', data: EventData }
}
