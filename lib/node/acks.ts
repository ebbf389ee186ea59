import { promiseWithResolvers } from '../promise-with-resolvers.js'
import { parseId, type StreamPosition } from '../protocol/recovery.js'
import type { AckMessage } from './wire.js'

interface Waiter {
  /** Known once the publish answered; an ack may in theory come first. */
  position: StreamPosition | undefined
  /** The newest ack seen before `position` was known. */
  early: StreamPosition | undefined
  startedAt: number
  done: boolean
  settle: (acked: boolean) => void
}

export interface AckWaitersOptions {
  /** Publish-to-ack seconds of each acked event. */
  onAcked: (seconds: number) => void
  onTimeout: () => void
}

/**
 * The publishes of this node awaiting a client's ack, by user and channel.
 * The node holding the socket reports the client's cumulative ack here (over
 * this node's own topic); an ack covers every awaited event up to its id.
 */
export class AckWaiters {
  readonly #waiting = new Map<string, Set<Waiter>>()
  readonly #options: AckWaitersOptions

  constructor (options: AckWaitersOptions) {
    this.#options = options
  }

  /**
   * Starts waiting before the publish is sent. `known(id, timeoutMs)`, once
   * the publish answered, resolves true at the ack or false after timeoutMs;
   * `cancel()` if the publish failed.
   */
  expect (userId: string, channel: string): { known: (id: string, timeoutMs: number) => Promise<boolean>, cancel: () => void } {
    const key = keyOf(userId, channel)
    let waiters = this.#waiting.get(key)
    if (waiters === undefined) this.#waiting.set(key, waiters = new Set())
    const set = waiters
    let timer: NodeJS.Timeout | undefined
    const { promise: settled, resolve } = promiseWithResolvers<boolean>()
    const remove = (): void => {
      set.delete(waiter)
      if (set.size === 0 && this.#waiting.get(key) === set) this.#waiting.delete(key)
    }
    const waiter: Waiter = {
      position: undefined,
      early: undefined,
      startedAt: performance.now(),
      done: false,
      settle: (acked) => {
        if (waiter.done) return
        waiter.done = true
        clearTimeout(timer)
        remove()
        if (acked) this.#options.onAcked((performance.now() - waiter.startedAt) / 1000)
        else this.#options.onTimeout()
        resolve(acked)
      }
    }
    set.add(waiter)
    return {
      known: async (id, timeoutMs) => {
        const position = parseId(id) as StreamPosition
        waiter.position = position
        if (waiter.done) return await settled
        if (covers(waiter.early, position)) waiter.settle(true)
        else if (timeoutMs <= 0) waiter.settle(false)
        else timer = setTimeout(() => waiter.settle(false), timeoutMs)
        return await settled
      },
      cancel: remove
    }
  }

  /** A client acked everything up to `ack.id` on its channel. */
  acked (ack: AckMessage): void {
    const waiters = this.#waiting.get(keyOf(ack.userId, ack.channel))
    const position = parseId(ack.id)
    if (waiters === undefined || position === undefined) return
    for (const waiter of [...waiters]) {
      if (waiter.position === undefined) {
        if (waiter.early === undefined || covers(position, waiter.early)) waiter.early = position
      } else if (covers(position, waiter.position)) {
        waiter.settle(true)
      }
    }
  }

  /** The app is closing: every wait ends unacked. */
  close (): void {
    for (const waiters of this.#waiting.values()) for (const waiter of [...waiters]) waiter.settle(false)
  }
}

function keyOf (userId: string, channel: string): string {
  return `${channel}\n${userId}`
}

/** An ack at `ack` covers `event`: same stream life, not before it. */
function covers (ack: StreamPosition | undefined, event: StreamPosition): boolean {
  return ack !== undefined && ack.epoch === event.epoch && ack.offset >= event.offset
}
