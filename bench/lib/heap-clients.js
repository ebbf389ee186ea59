// The client side of `heap-per-socket.js`, a child process so that its
// sockets are not in the measured heap. Commands over IPC:
// `{ connect: [token, …] }` opens one socket per token (100 in flight) and
// answers once each has received its first message (`connected`);
// `{ close: true }` closes them all and answers once each is closed.
import { WebSocket } from 'ws'

const [port, path] = process.argv.slice(2)
let sockets = []

function open (token) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}?token=${encodeURIComponent(token)}`)
    socket.once('message', () => resolve())
    socket.once('error', reject)
    sockets.push(socket)
  })
}

process.on('message', async (command) => {
  try {
    if (command.connect !== undefined) {
      for (let i = 0; i < command.connect.length; i += 100) await Promise.all(command.connect.slice(i, i + 100).map(open))
    } else if (command.close === true) {
      await Promise.all(sockets.map((socket) => new Promise((resolve) => { socket.once('close', resolve); socket.close() })))
      sockets = []
    }
    process.send({ ok: true })
  } catch (error) {
    process.send({ ok: false, error: String(error) })
  }
})
