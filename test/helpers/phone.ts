import WebSocket from 'ws'
import { Inbox } from './messages.js'

export interface Phone {
  socket: WebSocket
  /** Every message from the first (`connected`) on. */
  inbox: Inbox
  connected: any
  /** The channel events received so far (not replies), in order. */
  events: () => any[]
  send: (message: unknown) => void
}

const REPLIES = new Set(['connected', 'subscribed', 'unsubscribed', 'pong', 'error', 'resync'])

/**
 * Opens a socket with its inbox attached before anything arrives: messages
 * that follow `connected` in the same TCP read (a replay) are kept too.
 */
export async function openPhone (url: string): Promise<Phone> {
  const socket = new WebSocket(url)
  const inbox = new Inbox(socket)
  await new Promise<void>((resolve, reject) => {
    socket.once('unexpected-response', (_request, response) => reject(new Error(`handshake rejected with ${response.statusCode ?? 0}`)))
    socket.once('error', reject)
    inbox.until(1).then(() => resolve(), reject)
  })
  return {
    socket,
    inbox,
    connected: inbox.messages[0],
    events: () => inbox.messages.filter((message) => !REPLIES.has(message.event)),
    send: (message) => socket.send(JSON.stringify(message))
  }
}
