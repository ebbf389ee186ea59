import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'

/** The first answer on a raw TCP connection, as the bytes said it, and how the connection ended. */
export interface RawAnswer {
  /** e.g. `HTTP/1.1 400 Bad Request`; `''` when nothing came back. */
  statusLine: string
  status: number
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Record<string, string>
  /** Everything after the header block, decoded as UTF-8 (a body, or WebSocket frames after a 101). */
  body: string
  /** The server ended the connection on its own; false when the helper dropped it (gave up waiting, or `dropUpgrade`). */
  closedByServer: boolean
}

/** The request head of a WebSocket handshake (RFC 6455 §4.1) for `path`. */
export function upgradeRequest (path: string, headers: Record<string, string> = {}): string {
  return head(path, {
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'),
    ...headers
  })
}

/** The head of a plain GET for `path`. */
export function getRequest (path: string, headers: Record<string, string> = {}): string {
  return head(path, headers)
}

function head (path: string, headers: Record<string, string>): string {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  return lines.join('\r\n') + '\r\n\r\n'
}

export interface RawExchangeOptions {
  /** Bytes written right behind the request. */
  after?: Buffer
  /** How long to wait for the server to close; then the connection is dropped. */
  waitMs?: number
  /** Drop the connection as soon as a 101's head is in, instead of waiting out `waitMs` on an open WebSocket. */
  dropUpgrade?: boolean
}

/**
 * Writes `request` (and `after`, right behind it) on a fresh connection and
 * collects what comes back until the server closes, or until `waitMs` passed
 * (then the connection is dropped and `closedByServer` is false).
 */
export async function rawExchange (port: number, request: string | Buffer, { after, waitMs = 2000, dropUpgrade = false }: RawExchangeOptions = {}): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  let dropped = false
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    if (!dropUpgrade) return
    const bytes = Buffer.concat(chunks)
    if (bytes.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101' && bytes.includes('\r\n\r\n')) {
      dropped = true
      socket.destroy()
    }
  })
  socket.on('error', () => {})
  socket.write(after === undefined ? request : Buffer.concat([Buffer.from(request), after]))
  const timer = setTimeout(() => { dropped = true; socket.destroy() }, waitMs)
  await once(socket, 'close')
  clearTimeout(timer)
  return { ...parse(Buffer.concat(chunks)), closedByServer: !dropped }
}

/** A response head (status line and header lines, without the blank line): header names in lower case, a repeated header keeps its last value. */
export function parseHead (head: string): { statusLine: string, status: number, headers: Record<string, string> } {
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { statusLine, status: Number(statusLine.split(' ')[1] ?? 0), headers }
}

function parse (bytes: Buffer): Omit<RawAnswer, 'closedByServer'> {
  const text = bytes.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  return { ...parseHead(end === -1 ? text : text.slice(0, end)), body: end === -1 ? '' : bytes.subarray(end + 4).toString('utf8') }
}
