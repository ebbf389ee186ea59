// Arm C: bare `ws`, the naive loop: one `send(string)` per client per message.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'
import { runServer } from './common.js'
import { gatewayMessage } from '../lib/payload.js'

const server = createServer()
const wss = new WebSocketServer({ server, perMessageDeflate: false })
const ignore = () => {}
wss.on('connection', (socket) => { socket.on('error', ignore) })
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

runServer({
  port: server.address().port,
  path: '/',
  publish (seq, size) {
    const str = gatewayMessage(seq, size)
    for (const client of wss.clients) client.send(str)
  },
  buffered () {
    let bytes = 0
    for (const client of wss.clients) bytes += client.bufferedAmount
    return bytes
  },
  // The process exits right after; the kernel closes the sockets.
  close () {}
})
