// Arm E (and its 2-node variant with --redis): Socket.IO 4, WebSocket
// transport only, no compression, `io.emit` for broadcasts; with --redis the
// nodes share @socket.io/redis-adapter.
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { runServer, serverOptions } from './common.js'
import { benchData, SOCKETIO_ENVELOPE_BYTES } from '../lib/payload.js'

const options = serverOptions()
const clustered = options.redis !== undefined
const server = createServer()
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  // No engine.io pings during a run.
  pingInterval: 3_600_000,
  pingTimeout: 3_600_000
})
let pub, sub
if (clustered) {
  pub = new Redis(options.redis)
  sub = pub.duplicate()
  io.adapter(createAdapter(pub, sub, { key: `${options.keyPrefix}sio` }))
  // Per-user delivery: each socket joins its user's room (the load generator sends `{ user }` as auth).
  io.on('connection', (socket) => {
    const user = socket.handshake.auth?.user
    if (typeof user === 'string') socket.join(user)
  })
}
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

runServer({
  port: server.address().port,
  path: '/socket.io/?EIO=4&transport=websocket',
  publish (seq, size) {
    io.emit('bench', benchData(seq, size, SOCKETIO_ENVELOPE_BYTES))
  },
  publishTo (user, seq, size) {
    io.to(`user-${user}`).emit('bench', benchData(seq, size, SOCKETIO_ENVELOPE_BYTES))
  },
  /** What the ws sockets hold plus the packets engine.io queued while a write was in flight. */
  buffered () {
    let bytes = 0
    for (const client of Object.values(io.engine.clients)) {
      bytes += client.transport?.socket?.bufferedAmount ?? 0
      for (const packet of client.writeBuffer) bytes += packet.data?.length ?? 0
    }
    return bytes
  },
  // The process exits right after; the kernel closes the sockets.
  close () {
    pub?.disconnect()
    sub?.disconnect()
  }
})
