// @ts-check
// A raw TCP exchange with the HTTP server: a request written byte for byte, and
// the answer as the bytes said it. Plain JavaScript (type-checked through
// JSDoc) so that `npm run stress` (stress/scenarios/malformed.js) sends the
// same requests as the tests.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'

/**
 * The first answer on a raw TCP connection, as the bytes said it, and how the connection ended.
 * @typedef {object} RawAnswer
 * @property {string} statusLine e.g. `HTTP/1.1 400 Bad Request`; `''` when nothing came back.
 * @property {number} status
 * @property {Record<string, string>} headers Header names in lower case; a repeated header keeps its last value.
 * @property {string} body Everything after the header block, decoded as UTF-8 (a body, or WebSocket frames after a 101).
 * @property {boolean} closedByServer The server ended the connection on its own; false when the helper dropped it (gave up waiting, or `dropUpgrade`).
 */

/**
 * The request head of a WebSocket handshake (RFC 6455 §4.1) for `path`.
 * @param {string} path
 * @param {Record<string, string>} [headers]
 * @returns {string}
 */
export function upgradeRequest (path, headers = {}) {
  return head(path, {
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'),
    ...headers
  })
}

/**
 * The head of a plain GET for `path`.
 * @param {string} path
 * @param {Record<string, string>} [headers]
 * @returns {string}
 */
export function getRequest (path, headers = {}) {
  return head(path, headers)
}

/**
 * @param {string} path
 * @param {Record<string, string>} headers
 * @returns {string}
 */
function head (path, headers) {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  return lines.join('\r\n') + '\r\n\r\n'
}

/**
 * @typedef {object} RawExchangeOptions
 * @property {Buffer} [after] Bytes written right behind the request.
 * @property {number} [waitMs] How long to wait for the server to close; then the connection is dropped.
 * @property {boolean} [dropUpgrade] Drop the connection as soon as a 101's head is in, instead of waiting out `waitMs` on an open WebSocket.
 */

/**
 * Writes `request` (and `after`, right behind it) on a fresh connection and
 * collects what comes back until the server closes, or until `waitMs` passed
 * (then the connection is dropped and `closedByServer` is false).
 * @param {number} port
 * @param {string | Buffer} request
 * @param {RawExchangeOptions} [options]
 * @returns {Promise<RawAnswer>}
 */
export async function rawExchange (port, request, { after, waitMs = 2000, dropUpgrade = false } = {}) {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  /** @type {Buffer[]} */
  const chunks = []
  let dropped = false
  socket.on('data', (/** @type {Buffer} */ chunk) => {
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

/**
 * A response head (status line and header lines, without the blank line): header names in lower case, a repeated header keeps its last value.
 * @param {string} head
 * @returns {{ statusLine: string, status: number, headers: Record<string, string> }}
 */
export function parseHead (head) {
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  /** @type {Record<string, string>} */
  const headers = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { statusLine, status: Number(statusLine.split(' ')[1] ?? 0), headers }
}

/**
 * @param {Buffer} bytes
 * @returns {Omit<RawAnswer, 'closedByServer'>}
 */
function parse (bytes) {
  const text = bytes.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  return { ...parseHead(end === -1 ? text : text.slice(0, end)), body: end === -1 ? '' : bytes.subarray(end + 4).toString('utf8') }
}
