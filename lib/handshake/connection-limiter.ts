import type { Duplex } from 'node:stream'

export type Admission = 'admitted' | 'server-full' | 'address-full'

/**
 * Connection caps checked before the upgrade. A slot is taken when a handshake
 * passes the gate. Until the upgrade completes, the TCP socket's `close` gives
 * it back (an upgrade that fails inside `ws` must not leak it); once the
 * hub holds the socket, `adopt` moves the release to the hub's own
 * shared close handler, so an open connection costs the limiter no listener.
 * 0 disables a cap.
 */
export class ConnectionLimiter {
  readonly #maxConnections: number
  readonly #maxPerAddress: number
  readonly #perAddress = new Map<string, number>()
  #total = 0

  constructor ({ maxConnections, maxConnectionsPerIp }: { maxConnections: number, maxConnectionsPerIp: number }) {
    this.#maxConnections = maxConnections
    this.#maxPerAddress = maxConnectionsPerIp
  }

  /** What `admit` would answer, without taking a slot. */
  check (address: string): Admission {
    if (this.#maxConnections > 0 && this.#total >= this.#maxConnections) return 'server-full'
    if (this.#maxPerAddress > 0 && (this.#perAddress.get(address) ?? 0) >= this.#maxPerAddress) return 'address-full'
    return 'admitted'
  }

  /**
   * Takes a slot for `socket` unless a cap is hit. Returns the release that
   * the socket's `close` runs until `adopt` takes it off.
   */
  admit (socket: Duplex, address: string): Admission | (() => void) {
    const admission = this.check(address)
    if (admission !== 'admitted') return admission
    this.#total++
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1)
    const release = (): void => this.release(address)
    socket.once('close', release)
    return release
  }

  /** The hub owns the socket now and calls `release(address)` when it closes. */
  adopt (socket: Duplex, release: () => void): void {
    socket.removeListener('close', release)
  }

  release (address: string): void {
    this.#total--
    const remaining = (this.#perAddress.get(address) as number) - 1
    if (remaining === 0) this.#perAddress.delete(address)
    else this.#perAddress.set(address, remaining)
  }
}
