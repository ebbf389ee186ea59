// @ts-check
// A WebSocket client built on a bare TCP socket, for what `ws` as a client
// will not do: send arbitrary frames (fragments, bad opcodes, bad UTF-8) and
// never read, as an attacker would. Plain JavaScript (type-checked through
// JSDoc) so that `npm run stress` (stress/scenarios/malformed.js) runs the
// same frames as the tests.
import { randomBytes } from 'node:crypto'
import { connect as tcpConnect } from 'node:net'

/**
 * @typedef {object} RawSocket
 * @property {import('node:net').Socket} socket
 * @property {() => Buffer} received The bytes received after the 101 response (server frames).
 */

/**
 * Performs the upgrade by hand; resolves once the 101 arrived.
 * @param {number} port
 * @param {string} path
 * @param {Record<string, string>} [headers]
 * @returns {Promise<RawSocket>}
 */
export async function openRaw (port, path, headers = {}) {
  const socket = tcpConnect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
  ]
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  let buffered = Buffer.alloc(0)
  return await new Promise((resolve, reject) => {
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = buffered.subarray(0, end).toString()
      if (!head.startsWith('HTTP/1.1 101')) {
        socket.destroy()
        reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`))
        return
      }
      let rest = buffered.subarray(end + 4)
      socket.off('data', onData)
      socket.on('data', (/** @type {Buffer} */ more) => { rest = Buffer.concat([rest, more]) })
      resolve({ socket, received: () => rest })
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}

/**
 * @typedef {object} FrameSpec
 * @property {number} opcode
 * @property {Buffer | string} [payload]
 * @property {boolean} [fin]
 * @property {number} [rsv] RSV1..3 as the three bits 0b100, 0b010, 0b001.
 * @property {boolean} [masked]
 * @property {bigint} [announcedLength] Announce this length in the header instead of the payload's own (64-bit form).
 */

/**
 * One client frame, as a broken or hostile client may write it.
 * @param {FrameSpec} spec
 * @returns {Buffer}
 */
export function frame ({ opcode, payload = '', fin = true, rsv = 0, masked = true, announcedLength }) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload)
  const length = announcedLength ?? BigInt(data.length)
  /** @type {number[]} */
  const header = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
  const maskBit = masked ? 0x80 : 0
  if (announcedLength === undefined && length < 126n) {
    header.push(maskBit | Number(length))
  } else if (announcedLength === undefined && length < 65536n) {
    header.push(maskBit | 126, Number(length >> 8n), Number(length & 0xffn))
  } else {
    header.push(maskBit | 127)
    for (let shift = 56n; shift >= 0n; shift -= 8n) header.push(Number((length >> shift) & 0xffn))
  }
  if (!masked) return Buffer.concat([Buffer.from(header), data])
  const mask = randomBytes(4)
  const body = Buffer.from(data.map((byte, index) => byte ^ mask[index % 4]))
  return Buffer.concat([Buffer.from(header), mask, body])
}

/**
 * One masked client frame.
 * @param {number} opcode
 * @param {Buffer | string} payload
 * @param {boolean} [fin]
 * @returns {Buffer}
 */
export function clientFrame (opcode, payload, fin = true) {
  return frame({ opcode, payload, fin })
}

/**
 * A text message split into `count` one-byte fragments, the last one left unfinished when `finish` is false.
 * @param {number} count
 * @param {boolean} [finish]
 * @returns {Buffer}
 */
export function fragmentedText (count, finish = false) {
  const frames = [clientFrame(0x1, 'x', false)]
  for (let index = 1; index < count; index++) frames.push(clientFrame(0x0, 'x', finish && index === count - 1))
  return Buffer.concat(frames)
}

/**
 * The close code of the first close frame in `bytes` (server frames are unmasked), if any.
 * @param {Buffer} bytes
 * @returns {number | undefined}
 */
export function closeCodeIn (bytes) {
  let offset = 0
  while (offset + 2 <= bytes.length) {
    const opcode = bytes[offset] & 0x0f
    let length = bytes[offset + 1] & 0x7f
    let header = 2
    if (length === 126) {
      length = bytes.readUInt16BE(offset + 2)
      header = 4
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(offset + 2))
      header = 10
    }
    if (opcode === 0x8) return length >= 2 ? bytes.readUInt16BE(offset + header) : 1005
    offset += header + length
  }
  return undefined
}
