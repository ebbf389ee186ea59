// Shared by the fast versions of `npm run stress` (test/stress/*.test.ts):
// many SDK clients with a home node each, routed to a live node when theirs is
// gone (a load balancer's failover), counting what they receive.
import WebSocket from 'ws'
import { createClient, type Backoff, type RealtimeClient, type Resync } from '../../lib/client/index.js'
import type { RecoveryOutcome } from '../../lib/client/types.js'
import { waitFor } from './cluster.js'

/** The SDK's own backoff algorithm (exponential, full jitter, Math.random), on a scale a test can wait for. */
export const TEST_BACKOFF: Backoff = { minMs: 20, maxMs: 200 }

export interface Member {
  user: string
  home: number
  client: RealtimeClient
  connects: number
  /** Per `data.seq`, how many times it arrived. */
  received: Map<number, number>
  resyncs: Resync[]
  recoveries: Array<Record<string, RecoveryOutcome>>
  /** Open sockets that ended (a disconnect straight from `connected`, without an HTTP status). */
  drops: number
  /** The close codes of those drops. */
  dropCodes: number[]
  closed: boolean
}

export class Fleet {
  readonly members: Member[] = []
  /** The GET every failed connect sent, when it was refused: its status and Retry-After. */
  readonly refusals: Array<{ status: number, retryAfter: string | null }> = []
  /** GETs answered 426: by then the gate would have let the upgrade through (what refused it had passed). */
  gateOpen = 0
  /** Ports of nodes that are gone. */
  readonly dead = new Set<number>()
  readonly #ports: number[]

  constructor (ports: number[]) {
    this.#ports = ports
  }

  #route (url: string): string {
    const parsed = new URL(url)
    const home = Number(parsed.port)
    if (this.dead.has(home)) parsed.port = String(this.#ports.find((port) => !this.dead.has(port)))
    return parsed.toString()
  }

  add (user: string, home: number, getToken: () => Promise<string>, channels: string[]): Member {
    const route = (url: string): string => this.#route(url)
    class Routed extends WebSocket {
      constructor (url: string, protocols?: string | string[]) { super(route(url), protocols) }
    }
    const member: Member = { user, home, client: undefined as unknown as RealtimeClient, connects: 0, received: new Map(), resyncs: [], recoveries: [], drops: 0, dropCodes: [], closed: false }
    member.client = createClient({
      url: `ws://127.0.0.1:${this.#ports[home]}/api/v1/ws`,
      getToken,
      channels,
      backoff: TEST_BACKOFF,
      slowBackoff: TEST_BACKOFF,
      WebSocket: Routed,
      fetch: async (url, init) => {
        const response = await fetch(route(url), init)
        if (response.status === 426) this.gateOpen++
        else this.refusals.push({ status: response.status, retryAfter: response.headers.get('retry-after') })
        return response
      }
    })
    let previous = 'connecting'
    member.client.onState((state) => {
      if (state.state === 'connected') {
        member.connects++
        if (state.recovery !== undefined) member.recoveries.push(state.recovery)
      }
      // Only a socket that was open: a reconnect the client chose (after `resync`) whose
      // getToken() failed, or a refused handshake, never had one.
      if (state.state === 'disconnected' && state.status === undefined && previous === 'connected') {
        member.drops++
        member.dropCodes.push(state.code)
      }
      if (state.state === 'closed') member.closed = true
      previous = state.state
    })
    member.client.on('resync', (resync) => { member.resyncs.push(resync) })
    for (const channel of channels) {
      member.client.on(channel, (event) => {
        const seq = (event.data as { seq: number }).seq
        member.received.set(seq, (member.received.get(seq) ?? 0) + 1)
      })
    }
    this.members.push(member)
    return member
  }

  async connected (what: string, connects = 1): Promise<void> {
    await waitFor(() => this.members.every((member) => member.connects >= connects && member.client.state.state === 'connected'), what, 20_000)
  }

  close (): void {
    for (const member of this.members) member.client.close()
  }
}
