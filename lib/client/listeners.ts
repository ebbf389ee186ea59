import { RealtimeClientError } from './types.js'

export type Handler = (value: any) => void
const NONE: Handler[] = []

/** The app's handlers, by key: a channel, or ` state` and ` resync` (a space, which no channel name has). */
export class Listeners {
  readonly #handlers = new Map<string, Handler[]>()

  /** Returns the function that removes the handler. */
  add (key: string, handler: Handler): () => void {
    this.#handlers.set(key, [...this.#handlers.get(key) ?? [], handler])
    return () => { this.#handlers.set(key, this.#handlers.get(key)!.filter((other) => other !== handler)) }
  }

  /**
   * Calls every handler of `key`; false if one threw. The error is thrown again
   * from a microtask: the app sees it as uncaught, and the socket's own message
   * dispatch, which it would otherwise unwind (`ws` then stops reading), goes on.
   */
  emit (key: string, value: unknown): boolean {
    let ok = true
    // An index loop over the handlers as they are (arrays are replaced, never changed): nothing allocated per event.
    const handlers = this.#handlers.get(key) ?? NONE
    for (let i = 0; i < handlers.length; i++) {
      try {
        handlers[i](value)
      } catch (error) {
        ok = false
        queueMicrotask(() => { throw error })
      }
    }
    return ok
  }
}

interface Waiter { resolve: (value: any) => void, reject: (error: Error) => void }

/** The promises of subscribe, unsubscribe and ping, by `<request> <channel>` (`ping ` for pings). */
export class Waiters {
  readonly #waiters = new Map<string, Waiter[]>()

  async wait (key: string): Promise<any> {
    return await new Promise((resolve, reject) => { this.#waiters.set(key, [...this.#waiters.get(key) ?? [], { resolve, reject }]) })
  }

  /** Settles every waiter of `key` (pings: the oldest, as pongs come one per ping). */
  settle (key: string, value?: unknown, error?: Error): void {
    const waiters = this.#waiters.get(key)
    if (waiters === undefined) return
    const settled = key === 'ping ' ? waiters.splice(0, 1) : waiters.splice(0)
    if (waiters.length === 0) this.#waiters.delete(key)
    for (const waiter of settled) error === undefined ? waiter.resolve(value) : waiter.reject(error)
  }

  /** Settles every waiter whose key starts with `prefix`. */
  settleAll (prefix: string, error?: RealtimeClientError): void {
    for (const key of [...this.#waiters.keys()]) if (key.startsWith(prefix)) this.settle(key, undefined, error)
  }
}
