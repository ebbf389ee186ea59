// The benchmark message: the same bytes on the wire for every arm.
//
// data = {"t":"<CLOCK_MONOTONIC ns at publish>","seq":<n>,"pad":"xxx…"}
// The pad makes the whole WebSocket payload (envelope included) exactly
// `size` bytes, so arms with a shorter envelope send just as many bytes.

/** `{"event":"bench","channel":"settings","data":` + data + `}`: the plugin's envelope, copied by the bare ws arms. */
export const GATEWAY_ENVELOPE_BYTES = '{"event":"bench","channel":"settings","data":}'.length
/** `42["bench",` + data + `]`: a Socket.IO event packet. */
export const SOCKETIO_ENVELOPE_BYTES = '42["bench",]'.length
/** What the load generator looks for; the timestamp's digits follow it. */
export const STAMP_MARK = '"t":"'

const DATA_FIXED_BYTES = '{"t":"","seq":,"pad":""}'.length
const pads = new Map()
// Added to process.hrtime.bigint(): 0 under Node, whose clock is CLOCK_MONOTONIC like the load generator's;
// a runtime whose hrtime counts from elsewhere (Bun: from its own start) sets it once (setClockOffset).
let clockOffset = 0n

/** CLOCK_MONOTONIC in ns, the clock every process of the bench stamps and reads. */
export function monotonicNs () {
  return process.hrtime.bigint() + clockOffset
}

/** `ns`: what to add to this runtime's process.hrtime.bigint() to read CLOCK_MONOTONIC. */
export function setClockOffset (ns) {
  clockOffset = ns
}

function padOf (length) {
  let pad = pads.get(length)
  if (pad === undefined) {
    pad = 'x'.repeat(Math.max(0, length))
    pads.set(length, pad)
  }
  return pad
}

/** The `data` object of message `seq`, stamped now, padded so the envelope totals `size` bytes. */
export function benchData (seq, size, envelopeBytes) {
  const t = monotonicNs().toString()
  const seqText = String(seq)
  return { t, seq, pad: padOf(size - envelopeBytes - DATA_FIXED_BYTES - t.length - seqText.length) }
}

/** The gateway envelope as text, built by hand (what the bare ws arms send). */
export function gatewayMessage (seq, size) {
  const { t, pad } = benchData(seq, size, GATEWAY_ENVELOPE_BYTES)
  return `{"event":"bench","channel":"settings","data":{"t":"${t}","seq":${seq},"pad":"${pad}"}}`
}
