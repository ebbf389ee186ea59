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
  'tokens.issue() needs the built-in token store; it is not available with a custom tokens.resolver',
  500
)
