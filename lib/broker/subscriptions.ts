/**
 * Keeps a subscriber connection's channel set equal to the channels this node
 * needs, in batches: changes made within one turn of the event loop go out as
 * one SUBSCRIBE and one UNSUBSCRIBE, so a reconnect storm of thousands of users
 * costs a handful of round trips. A channel wanted and dropped within the same
 * batch costs nothing.
 */
export class SubscriptionSet {
  readonly #wanted = new Set<string>()
  readonly #active = new Set<string>()
  readonly #waiters = new Map<string, Array<{ resolve: () => void, reject: (error: Error) => void }>>()
  readonly #subscribe: (channels: string[]) => Promise<unknown>
  readonly #unsubscribe: (channels: string[]) => Promise<unknown>
  #scheduled = false

  constructor (subscribe: (channels: string[]) => Promise<unknown>, unsubscribe: (channels: string[]) => Promise<unknown>) {
    this.#subscribe = subscribe
    this.#unsubscribe = unsubscribe
  }

  /** Channels currently subscribed (for a replacement connection to restore). */
  get active (): string[] {
    return [...this.#active]
  }

  /** Resolves once `channel` is subscribed. */
  async want (channel: string): Promise<void> {
    this.#wanted.add(channel)
    if (this.#active.has(channel)) return
    await new Promise<void>((resolve, reject) => {
      const waiting = this.#waiters.get(channel)
      if (waiting === undefined) this.#waiters.set(channel, [{ resolve, reject }])
      else waiting.push({ resolve, reject })
      this.#schedule()
    })
  }

  drop (channel: string): void {
    this.#wanted.delete(channel)
    if (this.#active.has(channel)) this.#schedule()
  }

  /** Forgets what the old connection had: everything wanted is subscribed again on the next flush. */
  reset (): void {
    this.#active.clear()
    if (this.#wanted.size > 0) this.#schedule()
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => { this.#flush().catch(() => {}) })
  }

  async #flush (): Promise<void> {
    this.#scheduled = false
    const toSubscribe = [...this.#wanted].filter((channel) => !this.#active.has(channel))
    const toUnsubscribe = [...this.#active].filter((channel) => !this.#wanted.has(channel))
    for (const channel of toUnsubscribe) this.#active.delete(channel)
    const work: Array<Promise<unknown>> = []
    if (toUnsubscribe.length > 0) work.push(this.#unsubscribe(toUnsubscribe).catch(() => {}))
    if (toSubscribe.length > 0) {
      work.push(this.#subscribe(toSubscribe).then(() => {
        for (const channel of toSubscribe) {
          this.#active.add(channel)
          this.#settle(channel)
          // Dropped while the SUBSCRIBE was in flight: the next batch takes it back.
          if (!this.#wanted.has(channel)) this.#schedule()
        }
      }, (error: Error) => {
        for (const channel of toSubscribe) this.#settle(channel, error)
      }))
    }
    await Promise.all(work)
  }

  #settle (channel: string, error?: Error): void {
    const waiting = this.#waiters.get(channel)
    this.#waiters.delete(channel)
    for (const waiter of waiting ?? []) {
      if (error === undefined) waiter.resolve()
      else waiter.reject(error)
    }
  }
}
