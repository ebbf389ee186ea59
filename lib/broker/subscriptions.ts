import { promiseWithResolvers } from '../promise-with-resolvers.js'
import { FlushPacer } from '../redis/turn-batch.js'

/**
 * Keeps a subscriber connection's channel set equal to the channels this node
 * needs, in batches: changes made within one turn of the event loop go out as
 * one SUBSCRIBE and one UNSUBSCRIBE, so a reconnect storm of thousands of users
 * costs a handful of round trips. A channel wanted and dropped within the same
 * batch costs nothing. One batch is in flight at a time: what changes while
 * Redis answers goes out in the next one, so batches grow with the load (a
 * node busy with thousands of connects sends a few large SUBSCRIBEs, not one
 * per connect) and an idle node still sends each change at once; with
 * `spacingMs`, a batch also waits until that long after the previous one
 * (FlushPacer). A batch looks only at the channels changed since the last
 * one, so its cost does not grow with the channels already subscribed.
 */
const RETRY_MS = 1000

// A channel's state: bits of one small integer.
/** Some part of the node needs it. */
const WANTED = 1
/** Subscribed on the current connection. */
const ACTIVE = 2

/** What `want` answers for a channel already subscribed: one settled promise for all of them. */
const SUBSCRIBED = Promise.resolve()

export class SubscriptionSet {
  /** Every channel wanted or subscribed, and which (one map, not a set each: a set entry costs a socket ~30 bytes). */
  readonly #channels = new Map<string, number>()
  /** Channels whose wanted and active states may differ: what the next batch looks at. */
  readonly #changed = new Set<string>()
  /** Channels wanted and not subscribed yet: the one promise every want of the channel answers, and what settles it. */
  readonly #pending = new Map<string, { promise: Promise<void>, resolve: () => void }>()
  readonly #subscribe: (channels: string[]) => Promise<unknown>
  readonly #unsubscribe: (channels: string[]) => Promise<unknown>
  readonly #onError: (error: Error) => void
  readonly #pacer: FlushPacer
  #scheduled = false
  /** A batch was sent and not answered yet: the next one waits for it. */
  #inFlight = false
  #closed = false
  /** Counts resets: an answer to a batch sent before the last one is about a connection that is gone. */
  #connection = 0

  constructor (
    subscribe: (channels: string[]) => Promise<unknown>,
    unsubscribe: (channels: string[]) => Promise<unknown>,
    onError: (error: Error) => void,
    { spacingMs = 0 }: { spacingMs?: number } = {}
  ) {
    this.#subscribe = subscribe
    this.#unsubscribe = unsubscribe
    this.#onError = onError
    this.#pacer = new FlushPacer(spacingMs)
  }

  /**
   * Resolves once `channel` is subscribed. A failed SUBSCRIBE is retried until
   * it succeeds, so this waits out an outage rather than failing.
   */
  want (wanted: string): Promise<void> {
    const channel = interned(wanted)
    if ((this.#change(channel, WANTED, 0) & ACTIVE) !== 0) return SUBSCRIBED
    this.#changed.add(channel)
    // Also for a channel already pending: a reset puts every wanted one back in the next batch.
    this.#schedule()
    // Whoever else waits for it (a connect's announcement and its fencing, every socket of a global channel) shares one promise.
    const pending = this.#pending.get(channel)
    if (pending !== undefined) return pending.promise
    const subscribed = promiseWithResolvers<void>()
    this.#pending.set(channel, subscribed)
    return subscribed.promise
  }

  drop (channel: string): void {
    const state = this.#change(channel, 0, WANTED)
    // Whoever waited for it no longer needs it.
    this.#settle(channel)
    if ((state & ACTIVE) !== 0) this.#reconsider(channel)
  }

  /** Stops every batch and retry (the broker is closing). */
  close (): void {
    this.#closed = true
  }

  /**
   * Forgets what the connection had and subscribes everything wanted again
   * (redundant SUBSCRIBEs are harmless); resolves once all of it is back.
   */
  async reset (): Promise<void> {
    this.#connection++
    // The batch in flight was on the connection that is gone: its answer no longer holds the next one back.
    this.#inFlight = false
    const wanted: string[] = []
    for (const channel of this.#channels.keys()) {
      if ((this.#change(channel, 0, ACTIVE) & WANTED) !== 0) wanted.push(channel)
    }
    await Promise.all(wanted.map(async (channel) => await this.want(channel)))
  }

  /**
   * Sets the bits `add` of a channel's state and clears `remove`; answers the
   * state before. A channel neither wanted nor subscribed is forgotten.
   */
  #change (channel: string, add: number, remove: number): number {
    const before = this.#channels.get(channel) ?? 0
    const after = (before | add) & ~remove
    if (after === 0) this.#channels.delete(channel)
    else this.#channels.set(channel, after)
    return before
  }

  /** Puts a channel in the next batch. */
  #reconsider (channel: string): void {
    this.#changed.add(channel)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#scheduled || this.#closed || this.#inFlight) return
    this.#scheduled = true
    this.#pacer.schedule(() => { this.#flush() })
  }

  async #flush (): Promise<void> {
    this.#scheduled = false
    // Scheduled before the broker closed (a paced batch waits up to its spacing).
    if (this.#closed) return
    this.#pacer.flushed()
    const toSubscribe: string[] = []
    const toUnsubscribe: string[] = []
    for (const channel of this.#changed) {
      const state = this.#channels.get(channel) ?? 0
      if (state === WANTED) toSubscribe.push(channel)
      else if (state === ACTIVE) {
        this.#change(channel, 0, ACTIVE)
        toUnsubscribe.push(channel)
      }
    }
    this.#changed.clear()
    if (toSubscribe.length + toUnsubscribe.length === 0) return
    const connection = this.#connection
    this.#inFlight = true
    const work: Array<Promise<unknown>> = []
    if (toUnsubscribe.length > 0) work.push(this.#unsubscribe(toUnsubscribe).catch(this.#onError))
    if (toSubscribe.length > 0) {
      work.push(this.#subscribe(toSubscribe).then(() => {
        // Subscribed on a connection a reset has replaced since: the reset's own batch subscribes them on the new one.
        if (connection !== this.#connection) return
        for (const channel of toSubscribe) {
          const state = this.#change(channel, ACTIVE, 0)
          this.#settle(channel)
          // Dropped while the SUBSCRIBE was in flight: the next batch takes it back.
          if ((state & WANTED) === 0) this.#reconsider(channel)
        }
      }, (error: Error) => {
        // Still wanted: try again shortly rather than stay deaf to these channels.
        this.#onError(error)
        if (connection !== this.#connection) return
        setTimeout(() => { for (const channel of toSubscribe) this.#reconsider(channel) }, RETRY_MS).unref()
      }))
    }
    await Promise.all(work)
    if (connection !== this.#connection) return
    this.#inFlight = false
    if (this.#changed.size > 0) this.#schedule()
  }

  #settle (channel: string): void {
    this.#pending.get(channel)?.resolve()
    this.#pending.delete(channel)
  }
}

/**
 * The string table's copy of `text`: the name an object literal's key gets.
 * ioredis keeps every subscribed channel as a property name of an object,
 * which V8 interns; a channel interned before it is kept here is then one
 * string in memory instead of two (for a user's topic, ~60 bytes a socket).
 */
function interned (text: string): string {
  return Object.keys({ [text]: true })[0] as string
}
