import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import WebSocket, { type ClientOptions } from 'ws'
import { Inbox } from './messages.js'

export type HandshakeResult =
  | {
    kind: 'open'
    socket: WebSocket
    protocol: string
    first: Record<string, unknown>
    /** Every message from `first` on: attached with the socket, it keeps what came in the same TCP read as `first`. */
    inbox: Inbox
  }
  | { kind: 'rejected', status: number, headers: IncomingMessage['headers'], body: any }

/**
 * Opens a real WebSocket and reports how the handshake ended: the open socket
 * with its first message and an inbox of every message, or the HTTP status,
 * headers and JSON body it got. (`ws` emits the frames of one TCP read one
 * after the other, synchronously: a listener attached once `first` is
 * returned would miss those that followed it, a replay for one.)
 */
export async function handshake (url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<HandshakeResult> {
  const { protocols, ...clientOptions } = options
  const socket = new WebSocket(url, protocols, clientOptions)
  const inbox = new Inbox(socket)
  return await new Promise((resolve, reject) => {
    socket.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        let body: unknown = text
        try { body = JSON.parse(text) } catch {}
        socket.terminate()
        resolve({ kind: 'rejected', status: response.statusCode ?? 0, headers: response.headers, body })
      })
    })
    socket.once('message', (data) => {
      resolve({ kind: 'open', socket, protocol: socket.protocol, first: JSON.parse(data.toString()), inbox })
    })
    socket.once('error', reject)
  })
}

/** Like `handshake`, but fails unless the socket opened. */
export async function connect (url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<Extract<HandshakeResult, { kind: 'open' }>> {
  const result = await handshake(url, options)
  if (result.kind !== 'open') throw new Error(`handshake rejected with ${result.status}: ${JSON.stringify(result.body)}`)
  return result
}

/** Resolves with the close code and reason the client saw. */
export async function closed (socket: WebSocket): Promise<{ code: number, reason: string }> {
  if (socket.readyState === WebSocket.CLOSED) throw new Error('socket already closed')
  const [code, reason] = await once(socket, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}
