import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { FORCE_LOGOUT_CHANNEL, SETTINGS_CHANNEL } from '../constants.js'

export type ChannelScope = 'global' | 'user'

/** How an application declares a channel at registration. */
export interface ChannelDefinition {
  scope: ChannelScope
  /** typebox schema for the `data` of every event published on the channel. */
  schema?: TSchema
}

/** A channel as the plugin uses it: name, scope, compiled data check. */
export interface Channel {
  name: string
  scope: ChannelScope
  /** Delivered to the user's socket without a subscription (forced logout). */
  alwaysDelivered: boolean
  /** Returns an error message when `data` fails the channel's schema, otherwise undefined. */
  checkData: (data: unknown) => string | undefined
}

/** The built-in channels: `settings` is global, the rest are per user. */
export const BUILT_IN_CHANNELS: Readonly<Record<string, ChannelDefinition>> = {
  [SETTINGS_CHANNEL]: { scope: 'global' },
  'notification.events': { scope: 'user' },
  'payment_order.events': { scope: 'user' },
  'card.events': { scope: 'user' },
  'card.create.events': { scope: 'user' },
  'card.withdraw.events': { scope: 'user' },
  'kyc.events': { scope: 'user' },
  [FORCE_LOGOUT_CHANNEL]: { scope: 'user' }
}

const acceptAnything = (): undefined => undefined

function compileCheck (schema: TSchema | undefined): Channel['checkData'] {
  if (schema === undefined) return acceptAnything
  const validator = Compile(schema)
  return (data) => {
    if (validator.Check(data)) return undefined
    const [first] = validator.Errors(data)
    return `${first.instancePath === '' ? 'data' : 'data' + first.instancePath.replaceAll('/', '.')} ${first.message}`
  }
}

/** The channel table: the built-in channels plus the application's own. */
export class ChannelCatalog {
  readonly #channels = new Map<string, Channel>()

  constructor (extra: Readonly<Record<string, ChannelDefinition>> = {}) {
    for (const [name, definition] of Object.entries({ ...BUILT_IN_CHANNELS, ...extra })) {
      this.#channels.set(name, {
        name,
        scope: definition.scope,
        alwaysDelivered: name === FORCE_LOGOUT_CHANNEL,
        checkData: compileCheck(definition.schema)
      })
    }
  }

  get (name: string): Channel | undefined {
    return this.#channels.get(name)
  }

  [Symbol.iterator] (): IterableIterator<Channel> {
    return this.#channels.values()
  }
}
