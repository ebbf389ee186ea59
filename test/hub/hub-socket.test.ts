import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { HubSockets } from '../../lib/hub/hub-socket.js'
import type { Connection } from '../../lib/hub/connection.js'
import { openRaw, frame } from '../helpers/raw-ws.js'

interface Setup {
  sockets: HubSockets
  seen: string[]
  url: string
  server: WebSocketServer
  /** The server's next socket, once `connect()` has opened it. */
  accepted: () => Promise<WebSocket>
  /** A client, open, and the server's socket for it. */
  connect: () => Promise<{ client: WebSocket, socket: WebSocket }>
}

/** A HubSockets recording what reaches it, and a ws server on loopback building its sockets with the hub's class or its own. */
async function setUp (t: Test, ownClass: boolean, clientTracking = false): Promise<Setup> {
  const seen: string[] = []
  const sockets = new HubSockets({
    message: (connection, data, isBinary) => { seen.push(`${connection.id} message ${data.toString()} ${isBinary}`) },
    pong: (connection) => { seen.push(`${connection.id} pong`) },
    close: (connection, code) => { seen.push(`${connection.id} close ${code}`) },
    error: (connection, error) => { seen.push(`${connection.id} error ${(error as Error & { code?: string }).code ?? error.message}`) },
    closing: (connection) => { seen.push(`${connection.id} closing`) }
  })
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', clientTracking, ...(ownClass ? { WebSocket: sockets.WebSocket } : {}) })
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
  const accepted = async (): Promise<WebSocket> => (await once(server, 'connection'))[0] as WebSocket
  const connect = async (): Promise<{ client: WebSocket, socket: WebSocket }> => {
    const upgraded = accepted()
    const client = new WebSocket(url)
    const [socket] = await Promise.all([upgraded, once(client, 'open')])
    return { client, socket }
  }
  return { sockets, seen, url, server, accepted, connect }
}

const connection = (id: string): Connection => ({ id }) as unknown as Connection

async function until (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500 && !condition(); attempt++) await new Promise((resolve) => setTimeout(resolve, 10))
}

for (const ownClass of [true, false]) {
  const kind = ownClass ? 'a socket of the hub\'s class' : 'a socket of another ws server (listeners)'

  t.test(`${kind}: message, pong and close reach the hub with the socket's connection`, async (t) => {
    const { sockets, seen, connect } = await setUp(t, ownClass)
    const { client, socket } = await connect()
    sockets.attach(socket, connection('c1'))
    client.send('hello')
    client.send(Buffer.from('bin'), { binary: true })
    socket.ping()
    await until(() => seen.length >= 3)
    client.close(4000)
    await until(() => seen.length >= (ownClass ? 5 : 4))
    // `closing` (ws about to answer the peer's close frame) comes from the hub's own class only.
    t.same(seen, ['c1 message hello false', 'c1 message bin true', 'c1 pong', ...(ownClass ? ['c1 closing'] : []), 'c1 close 4000'])
    // The hub's own sockets carry no listeners for these events: their listener table stays at its smallest.
    const listeners = ['message', 'pong', 'close', 'error'].map((event) => socket.listenerCount(event))
    t.same(listeners, ownClass ? [0, 0, 0, 0] : [1, 1, 1, 1])
  })

  t.test(`${kind}: a frame ws refuses reaches the hub as an error, then the close`, async (t) => {
    const { sockets, seen, url, accepted } = await setUp(t, ownClass)
    const upgraded = accepted()
    const raw = await openRaw(Number(new URL(url).port), '/')
    const socket = await upgraded
    sockets.attach(socket, connection('c2'))
    // An unmasked client frame: ws refuses it (1002) and emits an error, which must not throw for want of a listener.
    raw.socket.write(frame({ opcode: 0x1, payload: 'x', masked: false }))
    await until(() => seen.length >= (ownClass ? 2 : 1))
    // Whether or not ws has ended the connection already, the peer goes away.
    raw.socket.destroy()
    await until(() => seen.length >= (ownClass ? 3 : 2))
    t.same(seen, [...(ownClass ? ['c2 closing'] : []), 'c2 error WS_ERR_EXPECTED_MASK', 'c2 close 1006'])
  })
}

t.test('an attached socket of the hub\'s class still emits to listeners of its own: ws\'s client tracking, an app\'s', async (t) => {
  const { sockets, seen, server, connect } = await setUp(t, true, true)
  const { client, socket } = await connect()
  sockets.attach(socket, connection('c3'))
  const heard: string[] = []
  socket.on('message', (data) => heard.push(`message ${String(data)}`))
  socket.on('ping', () => heard.push('ping'))
  t.equal(server.clients.size, 1, 'tracked')
  client.ping()
  client.send('both')
  await until(() => heard.length >= 2)
  client.close(1000)
  await until(() => seen.length >= 2 && server.clients.size === 0)
  t.same(heard, ['ping', 'message both'], 'the app\'s listeners heard the message and the ping (an event the hub does not take)')
  t.same(seen, ['c3 message both false', 'c3 closing', 'c3 close 1000'], 'and the hub the message, the close frame ws answers with, and the close')
  t.equal(server.clients.size, 0, 'ws\'s own close listener forgot the socket')
})

t.test('a socket of the hub\'s class not attached (an app\'s own route) emits to its listeners as usual, whatever fields the app sets on it', async (t) => {
  const { seen, connect } = await setUp(t, true)
  const { client, socket } = await connect() as { client: WebSocket, socket: WebSocket & { connection?: unknown } }
  // The hub's connection is a private field: a property of that name is the app's.
  socket.connection = { id: 'app-state' }
  const heard: string[] = []
  socket.on('message', (data) => heard.push(String(data)))
  client.send('mine')
  await until(() => heard.length === 1)
  t.same(heard, ['mine'])
  t.same(seen, [], 'nothing reached the hub')
  client.close()
})
