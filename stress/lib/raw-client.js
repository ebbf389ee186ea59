// A bare `ws` client for the churn cycles (cheaper than the SDK over 10,000
// connects): connect, wait for a message, close.
import WebSocket from 'ws'

export class RawClient {
  #messages = []
  #waiter = null

  constructor (url) {
    this.socket = new WebSocket(url)
    this.socket.on('message', (data) => {
      this.#messages.push(JSON.parse(data.toString()))
      this.#waiter?.()
    })
    this.closed = new Promise((resolve) => { this.socket.once('close', (code) => { this.#waiter?.(); resolve(code) }) })
    this.socket.on('error', () => {})
  }

  /** The first message not yet taken that matches `predicate`; fails on close or after `timeoutMs`. */
  async next (predicate, what, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const index = this.#messages.findIndex(predicate)
      if (index !== -1) return this.#messages.splice(index, 1)[0]
      if (this.socket.readyState >= WebSocket.CLOSING) throw new Error(`socket closed waiting for ${what}`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.#waiter = () => { clearTimeout(timer); resolve() }
      })
      this.#waiter = null
    }
  }

  send (message) {
    this.socket.send(JSON.stringify(message))
  }

  /** Closes with 1000 and resolves with the code the client saw. */
  async close () {
    this.socket.close(1000)
    return await this.closed
  }

  /** Messages received and not taken. */
  get rest () {
    return this.#messages
  }
}
