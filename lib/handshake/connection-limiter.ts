import type { Duplex } from 'node:stream'

const kLimiterAddress = Symbol('fastify-realtime.limiterAddress')

interface CountedSocket extends Duplex {
  [kLimiterAddress]?: string
}

export type Admission = 'admitted' | 'server-full' | 'address-full'

/**
 * Connection caps checked before the upgrade. A slot is taken when a handshake
 * passes the gate and given back when its TCP socket closes — whether the
 * upgrade then succeeded, failed inside `ws`, or the socket later closed — so
 * the counts cannot drift. 0 disables a cap.
 */
export class ConnectionLimiter {
  readonly #maxConnections: number
  readonly #maxPerAddress: number
  readonly #perAddress = new Map<string, number>()
  #total = 0
  // One listener shared by every socket (no closure per connection); `this` is the closing socket.
  readonly #onSocketClose: (this: CountedSocket) => void

  constructor ({ maxConnections, maxConnectionsPerIp }: { maxConnections: number, maxConnectionsPerIp: number }) {
    this.#maxConnections = maxConnections
    this.#maxPerAddress = maxConnectionsPerIp
    const release = (address: string): void => this.#release(address)
    this.#onSocketClose = function () {
      release(this[kLimiterAddress] as string)
    }
  }

  /** What `admit` would answer, without taking a slot. */
  check (address: string): Admission {
    if (this.#maxConnections > 0 && this.#total >= this.#maxConnections) return 'server-full'
    if (this.#maxPerAddress > 0 && (this.#perAddress.get(address) ?? 0) >= this.#maxPerAddress) return 'address-full'
    return 'admitted'
  }

  /** Takes a slot for `socket` unless a cap is hit; the slot frees itself when the socket closes. */
  admit (socket: Duplex, address: string): Admission {
    const admission = this.check(address)
    if (admission !== 'admitted') return admission
    this.#total++
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1)
    ;(socket as CountedSocket)[kLimiterAddress] = address
    socket.once('close', this.#onSocketClose)
    return 'admitted'
  }

  #release (address: string): void {
    this.#total--
    const remaining = (this.#perAddress.get(address) as number) - 1
    if (remaining === 0) this.#perAddress.delete(address)
    else this.#perAddress.set(address, remaining)
  }
}
