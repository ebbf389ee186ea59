import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { FastifyBaseLogger } from 'fastify'
import type { ChannelDefinition } from '../channels/catalog.js'
import { FST_REALTIME_INVALID_OPTION } from '../errors.js'
import { checkChannels, describeFirstError, fillDefaults, normalizeHistory, type NormalizedOptions } from '../options.js'
import {
  ChannelsSchema, HistorySchema, IdempotencySchema, KeyForSchema, KeyPrefixSchema, PublishTimeoutSchema, RedisClientSchema,
  RedisUrlSchema, optionDefaults
} from '../options-schema.js'
import type { RedisClient } from '../redis/client.js'

/**
 * What `createPublisher` accepts: the gateway's own options where they mean
 * the same (pass the gateway's values: the same `keyPrefix`, `channels`,
 * `history` and `idempotency`, so both write the same keys the same way).
 */
const PublisherOptionsSchema = Type.Object({
  redis: Type.Union([RedisUrlSchema, RedisClientSchema]),
  keyPrefix: Type.Optional(KeyPrefixSchema),
  channels: Type.Optional(ChannelsSchema),
  history: Type.Optional(HistorySchema),
  idempotency: Type.Optional(IdempotencySchema),
  publishTimeoutMs: Type.Optional(PublishTimeoutSchema),
  tokens: Type.Optional(Type.Object({ keyFor: Type.Optional(KeyForSchema) }, { additionalProperties: false })),
  logger: Type.Optional(Type.Refine(Type.Unknown(), (value) => typeof (value as { warn?: unknown } | null)?.warn === 'function', () => 'must have a warn method'))
}, { additionalProperties: false })

type SchemaOptions = Static<typeof PublisherOptionsSchema>

export interface PublisherOptions extends Omit<SchemaOptions, 'redis' | 'channels' | 'tokens' | 'logger'> {
  /** A `redis://` URL (the publisher creates the client and quits it on `close()`), or an ioredis Redis or Cluster (borrowed, left open). */
  redis: string | RedisClient
  /** The gateway's application channels (the built-in ones are always there). */
  channels?: Record<string, ChannelDefinition>
  /** The gateway's `tokens.keyFor`, if it has one: `tokens.revoke` deletes that key. */
  tokens?: { keyFor?: (token: string) => string }
  /** Where Redis connection warnings go (default: nowhere). */
  logger?: Pick<FastifyBaseLogger, 'warn'>
}

export interface NormalizedPublisherOptions {
  redis: string | RedisClient
  keyPrefix: string
  channels: Record<string, ChannelDefinition>
  history: NormalizedOptions['history']
  idempotencyWindowSeconds: number
  publishTimeoutMs: number
  keyFor: ((token: string) => string) | undefined
  logger: Pick<FastifyBaseLogger, 'warn'>
}

const checkOptions = Compile(PublisherOptionsSchema)
const silent = { warn: () => {} }

/** @throws FST_REALTIME_INVALID_OPTION naming the first offending option, as the plugin's registration does. */
export function normalizePublisherOptions (raw: PublisherOptions): NormalizedPublisherOptions {
  if (!checkOptions.Check(raw)) {
    const { path, message } = describeFirstError([...checkOptions.Errors(raw)])
    throw new FST_REALTIME_INVALID_OPTION(path, message)
  }
  return {
    redis: raw.redis,
    keyPrefix: raw.keyPrefix ?? optionDefaults.keyPrefix,
    channels: checkChannels(raw.channels ?? {}),
    history: normalizeHistory(raw.history),
    idempotencyWindowSeconds: fillDefaults(raw.idempotency, optionDefaults.idempotency).windowSeconds,
    publishTimeoutMs: raw.publishTimeoutMs ?? optionDefaults.cluster.publishTimeoutMs,
    keyFor: raw.tokens?.keyFor,
    logger: raw.logger ?? silent
  }
}
