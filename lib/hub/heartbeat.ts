import type { Connection } from './connection.js'

/**
 * One timer for all sockets: every `intervalMs` it terminates the sockets that
 * did not answer the previous protocol ping and pings the others. (A timer per
 * socket would cost memory and wake-ups per connection.)
 */
export class Heartbeat {
  readonly #timer: NodeJS.Timeout

  constructor (intervalMs: number, connections: () => Iterable<Connection>, onDead: (connection: Connection) => void) {
    this.#timer = setInterval(() => {
      for (const connection of connections()) {
        if (connection.awaitPong()) connection.socket.ping()
        else onDead(connection)
      }
    }, intervalMs).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }
}
