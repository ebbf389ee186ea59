import type { Once } from './broker.js'

interface OnceRecord {
  /** The first publish's id, or null when it had none. */
  id: string | null
  expiresAt: number
}

const SWEEP_INTERVAL_MS = 1000

/**
 * The idempotency records of embedded mode, with the semantics of the Redis
 * ones: a record lives `windowSeconds` after its publish. Bounded: at most
 * `maxKeys` records, the oldest forgotten first when a new one would exceed
 * it (a repeat of a forgotten publish goes out again). Every record of a node
 * has the same window, so insertion order is expiry order: the sweep stops at
 * the first live record, and eviction takes the first.
 */
export class MemoryOnce {
  readonly #records = new Map<string, OnceRecord>()
  readonly #maxKeys: number
  readonly #sweeper: NodeJS.Timeout

  constructor (maxKeys: number, sweepIntervalMs = SWEEP_INTERVAL_MS) {
    this.#maxKeys = maxKeys
    this.#sweeper = setInterval(() => this.#sweep(), sweepIntervalMs).unref()
  }

  /** Records held: at most `maxKeys`, and none past its window for longer than a sweep interval. */
  get size (): number {
    return this.#records.size
  }

  /** The record of `once.key` while it lives, or undefined. */
  seen (once: Once): { id: string | null } | undefined {
    const record = this.#records.get(once.key)
    return record === undefined || record.expiresAt <= Date.now() ? undefined : { id: record.id }
  }

  record (once: Once, id: string | null): void {
    this.#records.delete(once.key)
    if (this.#records.size >= this.#maxKeys) this.#records.delete(this.#records.keys().next().value as string)
    this.#records.set(once.key, { id, expiresAt: Date.now() + once.windowSeconds * 1000 })
  }

  close (): void {
    clearInterval(this.#sweeper)
  }

  #sweep (): void {
    const now = Date.now()
    for (const [key, record] of this.#records) {
      if (record.expiresAt > now) return
      this.#records.delete(key)
    }
  }
}
