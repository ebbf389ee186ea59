import type WebSocket from 'ws'

/**
 * Collects every message a client socket receives, parsed, from the moment it
 * is attached; `next(n)` waits until `n` more have arrived.
 */
export class Inbox {
  readonly messages: any[] = []
  #waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (socket: WebSocket) {
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()))
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.messages.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
  }

  /** Resolves once `count` messages in all have arrived; returns them. */
  async until (count: number): Promise<any[]> {
    if (this.messages.length < count) await new Promise<void>((resolve) => this.#waiters.push({ count, resolve }))
    return this.messages.slice(0, count)
  }
}
