// The native anchor: Bun's built-in WebSocket server (uWebSockets underneath),
// what a user could pick instead of Node. Broadcasts with `server.publish` on
// a topic every socket subscribes to when it opens, so the fan-out runs in
// native code. Runs under Bun (installed on demand, bench/lib/bun.js), and
// speaks the same IPC commands as the Node servers (Bun's `process.send`
// works with a Node parent's 'ipc' stdio).
import { dlopen, FFIType, ptr } from 'bun:ffi'
import { runServer } from './common.js'
import { gatewayMessage, setClockOffset } from '../lib/payload.js'

// Bun's process.hrtime counts from its own start, not CLOCK_MONOTONIC as Node's (and the load generator's) does:
// the offset is read once from clock_gettime, the closest of a few tries, so every stamp reads the shared clock.
setClockOffset(monotonicOffset())

const TOPIC = 'settings'
const sockets = new Set()
const server = globalThis.Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch (request, server) {
    if (server.upgrade(request)) return undefined
    return new Response('WebSocket only', { status: 426 })
  },
  websocket: {
    perMessageDeflate: false,
    // No pings and no idle cut during a run (the other arms' heartbeats are off too).
    idleTimeout: 0,
    sendPings: false,
    open (ws) {
      sockets.add(ws)
      ws.subscribe(TOPIC)
    },
    message () {},
    close (ws) { sockets.delete(ws) }
  }
})

runServer({
  port: server.port,
  path: '/',
  publish (seq, size) {
    server.publish(TOPIC, gatewayMessage(seq, size))
  },
  /** What uWS holds for sockets whose kernel buffer is full. */
  buffered () {
    let bytes = 0
    for (const ws of sockets) bytes += ws.getBufferedAmount()
    return bytes
  },
  // The process exits right after; the kernel closes the sockets.
  close () {}
})

/** CLOCK_MONOTONIC minus process.hrtime.bigint(), in ns (the pair read closest together of 20). */
function monotonicOffset () {
  const CLOCK_MONOTONIC = 1
  const { symbols, close } = dlopen('libc.so.6', { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } })
  const timespec = new BigInt64Array(2)
  const pointer = ptr(timespec)
  let best
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = process.hrtime.bigint()
    symbols.clock_gettime(CLOCK_MONOTONIC, pointer)
    const after = process.hrtime.bigint()
    const offset = timespec[0] * 1_000_000_000n + timespec[1] - (before + after) / 2n
    if (best === undefined || after - before < best.width) best = { width: after - before, offset }
  }
  close()
  return best.offset
}
