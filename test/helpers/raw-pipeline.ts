// Raw HTTP exchanges that read several responses from one connection (pipelined requests), byte for byte.
import { connect as netConnect } from 'node:net'
import { once } from 'node:events'
import { parseHead } from './raw-http.js'

export interface RawResponse {
  status: number
  /** Header names lower-cased. */
  headers: Record<string, string>
  /** The body; for a 101, the payload of the first WebSocket frame. */
  body: string
}

/** What a raw exchange saw: the responses it parsed, and every byte as text. */
export interface RawExchange {
  responses: RawResponse[]
  text: string
}

const HEAD_END = '\r\n\r\n'

/**
 * Writes `request` byte for byte to a fresh TCP connection (Node's HTTP client
 * would normalize some of them) and reads until `count` complete responses
 * arrived, the server closed, or a second passed. A 101 counts as complete
 * once the first WebSocket frame after it is in; the socket is then dropped.
 */
export async function rawExchange (port: number, request: string, count = 1): Promise<RawExchange> {
  const socket = netConnect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = Buffer.alloc(0)
  let responses: RawResponse[] = []
  const done = new Promise<void>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve()
    }
    const timer = setTimeout(finish, 1000)
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      responses = parseResponses(received)
      if (responses.length >= count) finish()
    })
    socket.on('close', finish)
    socket.on('error', finish)
  })
  socket.write(request, 'latin1')
  await done
  return { responses, text: received.toString('latin1') }
}

/** The complete responses at the start of `bytes` (a trailing body without Content-Length counts once the peer closed). */
function parseResponses (bytes: Buffer): RawResponse[] {
  const responses: RawResponse[] = []
  let offset = 0
  while (offset < bytes.length) {
    const headEnd = bytes.indexOf(HEAD_END, offset)
    if (headEnd === -1) break
    const { status, headers } = parseHead(bytes.subarray(offset, headEnd).toString('latin1'))
    const bodyStart = headEnd + HEAD_END.length
    if (status === 101) {
      const payload = firstFramePayload(bytes.subarray(bodyStart))
      if (payload !== undefined) responses.push({ status, headers, body: payload })
      break
    }
    const length = Number(headers['content-length'] ?? 0)
    if (bytes.length < bodyStart + length) break
    responses.push({ status, headers, body: bytes.subarray(bodyStart, bodyStart + length).toString('latin1') })
    offset = bodyStart + length
  }
  return responses
}

/** The payload of an unmasked server frame at the start of `bytes`, once it is all there. */
function firstFramePayload (bytes: Buffer): string | undefined {
  if (bytes.length < 2) return undefined
  const short = bytes[1] & 0x7f
  const headerLength = short === 126 ? 4 : 2
  if (bytes.length < headerLength) return undefined
  const length = short === 126 ? bytes.readUInt16BE(2) : short
  if (bytes.length < headerLength + length) return undefined
  return bytes.subarray(headerLength, headerLength + length).toString()
}

/** A GET with the headers of a WebSocket upgrade. */
export function upgradeRequest (target: string, extraHeaders = ''): string {
  return `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`
}

/** A plain GET the server answers and then closes. */
export function plainRequest (target: string, extraHeaders = ''): string {
  return `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extraHeaders}\r\n`
}

/** A log line as text, with serialized Buffers (pino writes them as byte arrays) turned back into text. */
export function readableLogLine (line: string): string {
  return JSON.stringify(JSON.parse(line, (_key, value) =>
    value?.type === 'Buffer' && Array.isArray(value.data) ? Buffer.from(value.data).toString('latin1') : value))
}
