import type WebSocket from 'ws'
import { connect } from './client.js'
import type { Inbox } from './messages.js'

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

/** Opens a socket (`connect`, whose inbox keeps everything from `connected` on), as a phone. */
export async function openPhone (url: string): Promise<Phone> {
  const { socket, inbox, first } = await connect(url)
  return {
    socket,
    inbox,
    connected: first,
    events: () => inbox.messages.filter((message) => !REPLIES.has(message.event)),
    send: (message) => socket.send(JSON.stringify(message))
  }
}
