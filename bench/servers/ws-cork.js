// Arm D: bare `ws` with the best known Node technique: one pre-built Buffer
// per message, and each TCP socket corked on its first send in a tick and
// uncorked in `process.nextTick`, so a tick's frames leave in one writev.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'
import { runServer } from './common.js'
import { gatewayMessage } from '../lib/payload.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
const ignore = () => {}
wss.on('connection', (socket) => { socket.on('error', ignore) })
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

let corked = []
function uncorkAll () {
  const sockets = corked
  corked = []
  for (const socket of sockets) socket.uncork()
}

runServer({
  port: server.address().port,
  path: '/',
  publish (seq, size) {
    const buffer = Buffer.from(gatewayMessage(seq, size))
    for (const client of wss.clients) {
      if (client.readyState !== 1) continue
      const socket = client._socket
      if (socket.writableCorked === 0) {
        socket.cork()
        if (corked.push(socket) === 1) process.nextTick(uncorkAll)
      }
      client.send(buffer, { binary: false })
    }
  },
  buffered () {
    let bytes = 0
    for (const client of wss.clients) bytes += client.bufferedAmount
    return bytes
  },
  // The process exits right after; the kernel closes the sockets.
  close () {}
})
