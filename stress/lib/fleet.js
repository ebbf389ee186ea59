// Many SDK clients (fastify-realtime/client, the built one, on `ws`) in the
// orchestrator's process, each with a home node. A client whose node is dead
// reaches the next live one, as through a load balancer: the SDK keeps one URL,
// the WebSocket and fetch it is given route it.
import WebSocket from 'ws'
import { createClient } from 'fastify-realtime/client'
import { sleep } from '../../bench/lib/rpc.js'

export class Fleet {
  /** Every GET the SDKs sent after a failed connect that was refused: `{ status, retryAfter }`. */
  refusals = []
  /** GETs answered 426: by then the gate would have let the upgrade through (what refused it had passed). */
  gateOpen = 0
  members = []

  constructor (cluster) {
    this.cluster = cluster
    const route = (url) => {
      const parsed = new URL(url)
      parsed.port = String(cluster.route(Number(parsed.port)))
      return parsed.toString()
    }
    this.WebSocket = class RoutedWebSocket extends WebSocket {
      constructor (url, protocols) { super(route(url), protocols) }
    }
    this.fetch = async (url, init) => {
      const response = await fetch(route(url), init)
      if (response.status === 426) this.gateOpen++
      else this.refusals.push({ status: response.status, retryAfter: response.headers.get('retry-after') })
      return response
    }
  }

  /**
   * A client of `user` (a fixed `token`, or `getToken`) homed on node `home`, subscribing
   * `channels`; what it receives on them is counted per event `data.seq`, and
   * kept in arrival order in `timeline` (each `data.seq`, and `'resync'` for a resync).
   */
  add ({ user, token, getToken, home, channels = [] }) {
    const member = { user, home, connects: 0, states: [], changedAt: 0, received: new Map(), timeline: [], ids: [], resyncs: [], recoveries: [], closed: null }
    member.client = createClient({ url: this.cluster.url(home), token, getToken, channels, WebSocket: this.WebSocket, fetch: this.fetch })
    member.client.onState((state) => {
      member.changedAt = Date.now()
      // A disconnect with a status is a handshake the server refused; without one, an open socket that ended.
      member.states.push(state.state === 'disconnected' ? (state.status === undefined ? `dropped ${state.code}` : `refused ${state.status}`) : state.state)
      if (state.state === 'connected') {
        member.connects++
        if (state.recovery !== undefined) member.recoveries.push(state.recovery)
      }
      if (state.state === 'closed') member.closed = state
    })
    member.client.on('resync', (resync) => {
      member.resyncs.push(resync)
      member.timeline.push('resync')
    })
    for (const channel of channels) {
      member.client.on(channel, (event) => {
        const seq = event.data.seq
        member.received.set(seq, (member.received.get(seq) ?? 0) + 1)
        member.timeline.push(seq)
        if (event.id !== undefined) member.ids.push(event.id)
      })
    }
    this.members.push(member)
    return member
  }

  /** Adds `specs` in waves of `wave`, each wave connected before the next starts (a bounded handshake rate). */
  async addAll (specs, wave = 200, timeoutMs = 60_000) {
    for (let start = 0; start < specs.length; start += wave) {
      const added = specs.slice(start, start + wave).map((spec) => this.add(spec))
      await until(() => added.every((member) => member.connects >= 1), `wave ${start / wave} to connect`, timeoutMs)
    }
  }

  /** Resolves once every client is connected and none changed state for `quietMs` (a `resync` makes the SDK reconnect after a jittered delay). */
  async quiet (what, quietMs = 1500, timeoutMs = 30_000) {
    await until(() => this.members.every((member) => member.client.state.state === 'connected' && Date.now() - member.changedAt >= quietMs), what, timeoutMs)
  }

  connected () {
    return this.members.filter((member) => member.client.state.state === 'connected').length
  }

  close () {
    for (const member of this.members) member.client.close()
  }
}

/** Resolves once `predicate()` holds (polled every 50 ms), or fails with `what` after `timeoutMs`. */
export async function until (predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}
