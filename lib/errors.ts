import createError from '@fastify/error'

/**
 * Every error the plugin throws or rejects with. Codes are stable and listed in
 * README.md; messages are `util.format` templates.
 */

export const FST_REALTIME_INVALID_OPTION = createError<'FST_REALTIME_INVALID_OPTION', [string, string]>(
  'FST_REALTIME_INVALID_OPTION',
  'Invalid fastify-realtime option "%s": %s',
  500,
  TypeError
)

export const FST_REALTIME_REDIS_UNAVAILABLE = createError<'FST_REALTIME_REDIS_UNAVAILABLE', [string]>(
  'FST_REALTIME_REDIS_UNAVAILABLE',
  'Redis is unavailable: %s',
  503
)

export const FST_REALTIME_OUTCOME_UNKNOWN = createError<'FST_REALTIME_OUTCOME_UNKNOWN', [string]>(
  'FST_REALTIME_OUTCOME_UNKNOWN',
  'Redis may have received the command; its outcome is unknown: %s',
  503
)

export const FST_REALTIME_TOKEN_STORE_TIMEOUT = createError<'FST_REALTIME_TOKEN_STORE_TIMEOUT', [number]>(
  'FST_REALTIME_TOKEN_STORE_TIMEOUT',
  'Token store did not answer within %d ms',
  503
)

export const FST_REALTIME_INVALID_ARGUMENT = createError<'FST_REALTIME_INVALID_ARGUMENT', [string, string]>(
  'FST_REALTIME_INVALID_ARGUMENT',
  'Invalid argument "%s": %s',
  400,
  TypeError
)

export const FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED = createError(
  'FST_REALTIME_TOKEN_ISSUE_UNSUPPORTED',
  'tokens.issue() cannot write this token layout: it needs the default layout, or tokens.format beside a custom tokens.parse (a custom tokens.resolver cannot issue at all)',
  500
)

export const FST_REALTIME_UNKNOWN_CHANNEL = createError<'FST_REALTIME_UNKNOWN_CHANNEL', [string]>(
  'FST_REALTIME_UNKNOWN_CHANNEL',
  'Unknown channel "%s"',
  400
)

export const FST_REALTIME_USER_ID_REQUIRED = createError<'FST_REALTIME_USER_ID_REQUIRED', [string]>(
  'FST_REALTIME_USER_ID_REQUIRED',
  'Channel "%s" is user-scoped: publish needs { userId }',
  400
)

export const FST_REALTIME_USER_ID_FORBIDDEN = createError<'FST_REALTIME_USER_ID_FORBIDDEN', [string]>(
  'FST_REALTIME_USER_ID_FORBIDDEN',
  'Channel "%s" is global: publish takes no userId',
  400
)

export const FST_REALTIME_INVALID_DATA = createError<'FST_REALTIME_INVALID_DATA', [string, string]>(
  'FST_REALTIME_INVALID_DATA',
  'Invalid data for channel "%s": %s',
  400
)

export const FST_REALTIME_AWAIT_ACK_UNSUPPORTED = createError<'FST_REALTIME_AWAIT_ACK_UNSUPPORTED', [string]>(
  'FST_REALTIME_AWAIT_ACK_UNSUPPORTED',
  'awaitAck is not possible here: %s',
  400
)

export const FST_REALTIME_BATCH_HALTED = createError<'FST_REALTIME_BATCH_HALTED', [number, string]>(
  'FST_REALTIME_BATCH_HALTED',
  'Not published: the item at index %d of the batch failed with %s, and the items after it wait for it',
  503
)
