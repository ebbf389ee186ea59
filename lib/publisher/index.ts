/**
 * `fastify-realtime/publisher`: publish to the gateway's sockets from a
 * process that does not run it (README "Publishing from a worker").
 */
export { createPublisher, type RealtimePublisher } from './publisher.js'
export type { PublisherOptions } from './options.js'
export type { ChannelHelper, PublishOptions, PublishResult, UserId } from '../node/publish-api.js'
export type { RealtimeChannels, EventData } from '../channels/declarations.js'
export type { ChannelDefinition, ChannelScope } from '../channels/catalog.js'
export * as errors from '../errors.js'
