import { WebSocket } from 'ws'
import type { Connection } from './connection.js'

/** The socket events the hub acts on, each with the socket's connection. */
export interface SocketEvents {
  /** The socket's binaryType is the default 'nodebuffer': every frame arrives as one Buffer. */
  message: (connection: Connection, data: Buffer, isBinary: boolean) => void
  pong: (connection: Connection) => void
  close: (connection: Connection, code: number) => void
  error: (connection: Connection, error: Error) => void
  /**
   * The socket is about to write its close frame (the hub's close, or `ws`
   * answering the peer's close frame or refusing a frame): what the socket
   * was sent must be written first. Only sockets of the hub's class report it.
   */
  closing: (connection: Connection) => void
}

/**
 * How a socket's events reach the hub. The plugin's ws server builds its
 * sockets with `WebSocket`, a subclass that, once a socket is attached to its
 * connection, hands four events straight to `events` instead of
 * emitting them to listeners: an EventEmitter keeps its listeners in a
 * dictionary with room for three event names that doubles at the fourth
 * (about 100 bytes more for every idle socket), and a listener shared by all
 * sockets would need a map from socket to connection (another ~26 bytes).
 * Listeners still hear them where there are any (ws's own, with
 * `clientTracking`; an app's); every other event, and these before the
 * socket is attached, are emitted as usual. It also reports `closing`, which
 * `ws` has no event for: every close frame, the peer's answered included,
 * goes out through `close()`.
 */
export class HubSockets {
  readonly WebSocket: typeof WebSocket
  readonly #events: SocketEvents
  readonly #class: ReturnType<typeof subclass>

  constructor (events: SocketEvents) {
    this.#events = events
    this.#class = subclass(events)
    this.WebSocket = this.#class
  }

  /**
   * From now on the socket's events reach the hub with `connection`. A socket
   * of another class (a ws server registered before the plugin, with options
   * of its own) gets a listener per event, one closure each: such sockets
   * cost the bytes the subclass saves.
   */
  attach (socket: WebSocket, connection: Connection): void {
    if (socket instanceof this.#class) {
      this.#class.attach(socket, connection)
      return
    }
    const events = this.#events
    socket.on('message', (data, isBinary) => { events.message(connection, data as Buffer, isBinary) })
    socket.on('pong', () => { events.pong(connection) })
    socket.on('close', (code) => { events.close(connection, code) })
    socket.on('error', (error) => { events.error(connection, error) })
  }
}

function subclass (events: SocketEvents) {
  return class extends WebSocket {
    /** Private: a socket of the app's own routes is of this class too, and may carry fields of its own. */
    #connection: Connection | undefined = undefined

    static attach (socket: InstanceType<ReturnType<typeof subclass>>, connection: Connection): void {
      socket.#connection = connection
    }

    override emit (event: string | symbol, ...args: any[]): boolean {
      const connection = this.#connection
      if (connection === undefined) return super.emit(event, ...args)
      switch (event) {
        case 'message': events.message(connection, args[0], args[1]); break
        case 'pong': events.pong(connection); break
        case 'close': events.close(connection, args[0]); break
        case 'error': events.error(connection, args[0]); break
        default: return super.emit(event, ...args)
      }
      return this.listenerCount(event) === 0 || super.emit(event, ...args)
    }

    override close (code?: number, data?: string | Buffer): void {
      const connection = this.#connection
      if (connection !== undefined && this.readyState === WebSocket.OPEN) events.closing(connection)
      super.close(code, data)
    }
  }
}
