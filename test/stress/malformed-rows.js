// @ts-check
// The malformed-traffic matrix: every row is one thing a hostile or broken
// client sends over raw TCP, with the answer the gateway must give; run by
// test/stress/malformed-matrix.test.ts (3 rounds) and by `npm run stress`
// (stress/scenarios/malformed.js, against a gateway process). Plain
// JavaScript, type-checked through JSDoc, so that both run this one table.
//
// Rows already pinned elsewhere are not repeated here:
// - reserved data opcode 0x3 (1002), invalid UTF-8 in a text frame (1007),
//   a frame over limits.maxPayloadBytes (1009): test/hub/partial-messages.test.ts
//   "protocol errors are recorded with the code the client saw";
// - a message in more than limits.maxFragments fragments (1008), and the
//   16,000-fragment flood against a small heap: test/hub/partial-messages.test.ts;
// - slowloris (headers that stop, headers that trickle: dropped, 408):
//   test/http/server-timeouts.test.ts;
// - refusals by the gate (401, 403, 400 recover, 429, 503) with Connection: close:
//   test/http/upgrade-requests.test.ts and test/handshake/gate.test.ts.
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { rawExchange, upgradeRequest } from '../helpers/raw-http.js'
import { closeCodeIn, frame, openRaw } from '../helpers/raw-ws.js'

/**
 * A close frame with `code` (and `reason` bytes) as payload.
 * @param {number} code
 * @param {Buffer} [reason]
 * @returns {Buffer}
 */
function closeFrame (code, reason = Buffer.alloc(0)) {
  const payload = Buffer.alloc(2 + reason.length)
  payload.writeUInt16BE(code, 0)
  reason.copy(payload, 2)
  return frame({ opcode: 0x8, payload })
}

/**
 * A request for the WebSocket route, given the path (with its token): the request head to send.
 * @typedef {(path: string) => string | Buffer} RequestOf
 */

/**
 * One row. `http`: sent as an upgrade request, the HTTP status the server must
 * answer with, then close. `frames`: sent after a good upgrade, the close code
 * the server must send, then close. `reset`: the client goes away abruptly,
 * nothing is owed to it, and nothing may stay behind.
 * @typedef {{ kind: 'http', name: string, request: RequestOf, status: number }
 *   | { kind: 'frames', name: string, bytes: () => Buffer, closeCode: number }
 *   | { kind: 'reset', name: string, at: 'mid-head' | 'after-head' | 'after-101' }} MalformedRow
 */

const HEAD_LIMIT = 16 * 1024 // Node's default maxHeaderSize
const MAX_HEADERS = 2000 // Node's default maxHeadersCount

/**
 * @param {string} path
 * @param {(lines: string[]) => string[]} build
 * @returns {string}
 */
function withHeaders (path, build) {
  const lines = upgradeRequest(path).trimEnd().split('\r\n')
  return build(lines).join('\r\n') + '\r\n\r\n'
}

/**
 * @param {string} name
 * @returns {(path: string) => string}
 */
function without (name) {
  return (path) => withHeaders(path, (lines) => lines.filter((line) => !line.toLowerCase().startsWith(`${name}:`)))
}

/**
 * @param {string} name
 * @param {string} value
 * @returns {(path: string) => string}
 */
function replacing (name, value) {
  return (path) => withHeaders(path, (lines) => lines.map((line) => line.toLowerCase().startsWith(`${name}:`) ? `${name}: ${value}` : line))
}

/** @type {readonly MalformedRow[]} */
export const MALFORMED_ROWS = [
  // --- the HTTP handshake ---
  { kind: 'http', name: 'request head over maxHeaderSize', status: 431, request: (path) => upgradeRequest(path, { 'x-pad': 'a'.repeat(HEAD_LIMIT) }) },
  {
    // CVE-2024-37890: headers past maxHeadersCount are dropped, Sec-WebSocket-Key with them; ws < 8.17.1 crashed.
    kind: 'http',
    name: 'more headers than maxHeadersCount, the key past the cut',
    status: 400,
    request: (path) => withHeaders(path, (lines) => {
      const key = /** @type {string} */ (lines.find((line) => line.startsWith('sec-websocket-key:')))
      const filler = Array.from({ length: MAX_HEADERS + 10 }, (_, index) => `x${index}: 1`)
      return [...lines.filter((line) => line !== key), ...filler, key]
    })
  },
  { kind: 'http', name: 'no Sec-WebSocket-Key', status: 400, request: without('sec-websocket-key') },
  { kind: 'http', name: 'Sec-WebSocket-Key not 16 bytes of base64', status: 400, request: replacing('sec-websocket-key', 'c2hvcnQ=') },
  { kind: 'http', name: 'Sec-WebSocket-Key not base64', status: 400, request: replacing('sec-websocket-key', '!!!!!!!!!!!!!!!!!!!!!!==') },
  { kind: 'http', name: 'no Sec-WebSocket-Version', status: 400, request: without('sec-websocket-version') },
  { kind: 'http', name: 'Sec-WebSocket-Version 12', status: 400, request: replacing('sec-websocket-version', '12') },
  { kind: 'http', name: 'Sec-WebSocket-Version not a number', status: 400, request: replacing('sec-websocket-version', 'thirteen') },
  { kind: 'http', name: 'Upgrade: not websocket', status: 400, request: replacing('upgrade', 'h2c') },
  { kind: 'http', name: 'a request line that is not HTTP', status: 400, request: () => 'HELLO\r\n\r\n' },
  { kind: 'http', name: 'NUL bytes in a header value', status: 400, request: (path) => Buffer.from(upgradeRequest(path, { 'x-bad': 'a\u0000b' }), 'latin1') },

  // --- frames after the upgrade ---
  { kind: 'frames', name: 'unmasked client frame', closeCode: 1002, bytes: () => frame({ opcode: 0x1, payload: '{"event":"ping"}', masked: false }) },
  { kind: 'frames', name: 'RSV1 without permessage-deflate', closeCode: 1002, bytes: () => frame({ opcode: 0x1, payload: '{}', rsv: 0b100 }) },
  { kind: 'frames', name: 'RSV2', closeCode: 1002, bytes: () => frame({ opcode: 0x1, payload: '{}', rsv: 0b010 }) },
  { kind: 'frames', name: 'RSV3', closeCode: 1002, bytes: () => frame({ opcode: 0x2, payload: 'x', rsv: 0b001 }) },
  { kind: 'frames', name: 'reserved control opcode 0xB', closeCode: 1002, bytes: () => frame({ opcode: 0xb }) },
  { kind: 'frames', name: 'reserved data opcode 0x7', closeCode: 1002, bytes: () => frame({ opcode: 0x7, payload: 'x' }) },
  { kind: 'frames', name: 'fragmented ping', closeCode: 1002, bytes: () => frame({ opcode: 0x9, payload: 'x', fin: false }) },
  { kind: 'frames', name: 'fragmented close', closeCode: 1002, bytes: () => frame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe8]), fin: false }) },
  { kind: 'frames', name: 'ping of 126 bytes (control frames carry at most 125)', closeCode: 1002, bytes: () => frame({ opcode: 0x9, payload: 'x'.repeat(126) }) },
  { kind: 'frames', name: 'continuation with no message started', closeCode: 1002, bytes: () => frame({ opcode: 0x0, payload: 'x' }) },
  { kind: 'frames', name: 'a new text frame inside a fragmented message', closeCode: 1002, bytes: () => Buffer.concat([frame({ opcode: 0x1, payload: '{', fin: false }), frame({ opcode: 0x1, payload: '}' })]) },
  { kind: 'frames', name: 'invalid UTF-8 split across fragments', closeCode: 1007, bytes: () => Buffer.concat([frame({ opcode: 0x1, payload: Buffer.from([0x22, 0xe2, 0x82]), fin: false }), frame({ opcode: 0x0, payload: Buffer.from([0x28, 0x22]) })]) },
  { kind: 'frames', name: 'overlong UTF-8 encoding of "/"', closeCode: 1007, bytes: () => frame({ opcode: 0x1, payload: Buffer.from([0xc0, 0xaf]) }) },
  { kind: 'frames', name: 'UTF-16 surrogate encoded in UTF-8', closeCode: 1007, bytes: () => frame({ opcode: 0x1, payload: Buffer.from([0xed, 0xa0, 0x80]) }) },
  { kind: 'frames', name: 'close reason that is not UTF-8', closeCode: 1007, bytes: () => closeFrame(1000, Buffer.from([0xff, 0xfe])) },
  { kind: 'frames', name: 'close frame of one byte', closeCode: 1002, bytes: () => frame({ opcode: 0x8, payload: Buffer.from([0x03]) }) },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => /** @type {MalformedRow} */ (
    { kind: 'frames', name: `close code ${code}`, closeCode: 1002, bytes: () => closeFrame(code) }
  )),
  { kind: 'frames', name: 'payload length 2^63 (most significant bit set, which RFC 6455 forbids; ws refuses it as too big)', closeCode: 1009, bytes: () => frame({ opcode: 0x1, announcedLength: 1n << 63n }) },
  { kind: 'frames', name: 'payload length 2^63 - 1', closeCode: 1009, bytes: () => frame({ opcode: 0x1, announcedLength: (1n << 63n) - 1n }) },
  { kind: 'frames', name: 'payload length 2^53 (beyond a safe integer)', closeCode: 1009, bytes: () => frame({ opcode: 0x2, announcedLength: 1n << 53n }) },
  { kind: 'frames', name: 'payload length 4 GiB', closeCode: 1009, bytes: () => frame({ opcode: 0x1, announcedLength: 1n << 32n }) },
  { kind: 'frames', name: 'flood of empty fragments', closeCode: 1008, bytes: () => Buffer.concat([frame({ opcode: 0x1, fin: false }), ...Array.from({ length: 5000 }, () => frame({ opcode: 0x0, fin: false }))]) },
  { kind: 'frames', name: 'flood of empty fragments of a binary message', closeCode: 1008, bytes: () => Buffer.concat([frame({ opcode: 0x2, fin: false }), ...Array.from({ length: 64 }, () => frame({ opcode: 0x0, fin: false }))]) },

  // --- resets ---
  { kind: 'reset', name: 'reset in the middle of the request head', at: 'mid-head' },
  { kind: 'reset', name: 'reset right after the request head, before the answer', at: 'after-head' },
  { kind: 'reset', name: 'reset right after the 101', at: 'after-101' }
]

/**
 * What a row got back.
 * @typedef {{ status?: number, closeCode?: number, closedByServer: boolean }} MalformedOutcome
 */

/**
 * Resolves when the server ends the TCP connection; rejects after `ms`.
 * @param {import('node:net').Socket} socket
 * @param {number} ms
 * @returns {Promise<void>}
 */
async function serverEnds (socket, ms) {
  if (socket.destroyed) return
  await Promise.race([once(socket, 'close'), sleep(ms).then(() => { throw new Error(`still open after ${ms} ms`) })])
}

/**
 * Runs one row against a gateway on `port`; `path` is the WebSocket route
 * with a token that resolves (one per row, so rows never replace each other).
 * @param {number} port
 * @param {string} path
 * @param {MalformedRow} row
 * @returns {Promise<MalformedOutcome>}
 */
export async function runMalformedRow (port, path, row) {
  if (row.kind === 'http') {
    const answer = await rawExchange(port, row.request(path), { waitMs: 3000 })
    return { status: answer.status, closedByServer: answer.closedByServer }
  }
  if (row.kind === 'frames') {
    const raw = await openRaw(port, path)
    raw.socket.on('error', () => {})
    raw.socket.write(row.bytes())
    await serverEnds(raw.socket, 5000)
    return { closeCode: closeCodeIn(raw.received()), closedByServer: true }
  }
  if (row.at === 'after-101') {
    const raw = await openRaw(port, path)
    raw.socket.resetAndDestroy()
    return { closedByServer: false }
  }
  const socket = netConnect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  const head = upgradeRequest(path)
  socket.write(row.at === 'mid-head' ? head.slice(0, head.length >> 1) : head)
  // Let the server read it (and, after the whole head, start on the gate) before the reset.
  await sleep(row.at === 'mid-head' ? 20 : 0)
  socket.resetAndDestroy()
  return { closedByServer: false }
}

/**
 * Why `outcome` is not the row's documented answer, or undefined when it is.
 * @param {MalformedRow} row
 * @param {MalformedOutcome} outcome
 * @returns {string | undefined}
 */
export function mismatch (row, outcome) {
  if (row.kind === 'http' && (outcome.status !== row.status || !outcome.closedByServer)) {
    return `${row.name}: HTTP ${String(outcome.status)} (closed by server: ${String(outcome.closedByServer)}), expected ${row.status}`
  }
  if (row.kind === 'frames' && outcome.closeCode !== row.closeCode) return `${row.name}: close ${String(outcome.closeCode)}, expected ${row.closeCode}`
  return undefined
}
