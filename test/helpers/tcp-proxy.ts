import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'

/** One client connection through the proxy and its upstream twin. */
interface Link {
  client: Socket
  upstream: Socket
  /** The client sent `SUBSCRIBE` (any case; SSUBSCRIBE, PSUBSCRIBE and UNSUBSCRIBE contain it too). */
  subscriber: boolean
  /** Bytes are no longer forwarded in either direction; both sockets stay open. */
  blackholed: boolean
  /** Commands still reach Redis, its replies no longer reach the client. */
  muted: boolean
  /** The end of the previous client chunk, so a command name split across chunks is still seen. */
  tail: string
}

/** What a test can see of a link. */
export interface LinkInfo {
  subscriber: boolean
  blackholed: boolean
}

const SUBSCRIBE = /subscribe/i
const TAIL_LENGTH = 'SUBSCRIBE'.length - 1

/**
 * A TCP proxy on a free loopback port in front of a Redis server, able to kill
 * a subscriber's link silently: `blackholeSubscribers()` stops forwarding the
 * bytes of every connection that ever sent SUBSCRIBE, in both directions,
 * without closing anything. The client keeps an open, idle socket, as behind a
 * NAT or firewall that dropped the flow's state; nothing tells it the link is
 * dead. `muteReplies()` and `cutMuted()` lose the replies of the publishing
 * connections, then drop them with commands in flight that Redis already ran.
 */
export class TcpProxy {
  readonly #server: Server
  readonly #links = new Set<Link>()
  readonly #targetPort: number
  readonly #targetHost: string

  private constructor (targetPort: number, targetHost: string) {
    this.#targetPort = targetPort
    this.#targetHost = targetHost
    this.#server = createServer((client) => this.#accept(client))
  }

  static async start (targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost)
    proxy.#server.listen(0, '127.0.0.1')
    await once(proxy.#server, 'listening')
    return proxy
  }

  get port (): number {
    return (this.#server.address() as { port: number }).port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** The client connections open through the proxy now. */
  links (): LinkInfo[] {
    return [...this.#links].map(({ subscriber, blackholed }) => ({ subscriber, blackholed }))
  }

  /** Silently cuts every open connection that has sent SUBSCRIBE; returns how many it cut. */
  blackholeSubscribers (): number {
    let count = 0
    for (const link of this.#links) {
      if (link.subscriber && !link.blackholed) {
        link.blackholed = true
        count++
      }
    }
    return count
  }

  /**
   * Stops forwarding Redis' replies on every open connection that never sent
   * SUBSCRIBE (the clients that publish); their commands still reach Redis,
   * which runs them. Returns how many it muted.
   */
  muteReplies (): number {
    let count = 0
    for (const link of this.#links) {
      if (!link.subscriber && !link.muted) {
        link.muted = true
        count++
      }
    }
    return count
  }

  /** Destroys every muted connection, as a link that dies with commands in flight; returns how many. */
  cutMuted (): number {
    let count = 0
    for (const link of this.#links) {
      if (link.muted) {
        link.client.destroy()
        count++
      }
    }
    return count
  }

  /** Stops listening and destroys every connection through the proxy. */
  async close (): Promise<void> {
    for (const link of this.#links) {
      link.client.destroy()
      link.upstream.destroy()
    }
    this.#links.clear()
    const closed = once(this.#server, 'close')
    this.#server.close()
    await closed
  }

  #accept (client: Socket): void {
    const upstream = connect(this.#targetPort, this.#targetHost)
    const link: Link = { client, upstream, subscriber: false, blackholed: false, muted: false, tail: '' }
    this.#links.add(link)
    client.on('data', (chunk: Buffer) => {
      if (!link.subscriber) {
        const text = link.tail + chunk.toString('latin1')
        link.subscriber = SUBSCRIBE.test(text)
        link.tail = text.slice(-TAIL_LENGTH)
      }
      if (!link.blackholed) upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!link.blackholed && !link.muted) client.write(chunk)
    })
    // The client leaving always ends the upstream side, so Redis drops the
    // connection's subscriptions. Redis leaving reaches the client only while
    // the link is healthy: a blackholed link stays silent.
    const clientGone = (): void => {
      this.#links.delete(link)
      upstream.destroy()
    }
    const upstreamGone = (): void => {
      if (!link.blackholed) client.destroy()
    }
    client.on('error', clientGone)
    client.on('close', clientGone)
    upstream.on('error', upstreamGone)
    upstream.on('close', upstreamGone)
  }
}
