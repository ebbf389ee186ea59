import t from 'tap'
import fc from 'fast-check'
import { parseClientMessage, type ParsedMessage } from '../../lib/protocol/client-message.js'

const text = (value: string): Buffer => Buffer.from(value)
const parseText = (value: string): ParsedMessage => parseClientMessage(text(value), false)
const parseJson = (value: unknown): ParsedMessage => parseText(JSON.stringify(value))

const NEEDS_CHANNEL = (event: string): string => `"${event}" needs a "channel" string of 1 to 128 characters`
const UNKNOWN_EVENT_MESSAGE = 'Unknown event; expected subscribe, unsubscribe, ping, ack or refresh'

function invalid (message: string, channel: string | null = null): ParsedMessage {
  return { ok: false, code: 'INVALID_MESSAGE', message, channel }
}

function unknownEvent (channel: string | null): ParsedMessage {
  return { ok: false, code: 'UNKNOWN_EVENT', message: UNKNOWN_EVENT_MESSAGE, channel }
}

t.test('valid subscribe, unsubscribe and ping come back as messages', async (t) => {
  t.strictSame(parseJson({ event: 'subscribe', channel: 'notification.events' }), { ok: true, message: { event: 'subscribe', channel: 'notification.events' } })
  t.strictSame(parseJson({ event: 'unsubscribe', channel: 'kyc.events' }), { ok: true, message: { event: 'unsubscribe', channel: 'kyc.events' } })
  t.strictSame(parseJson({ event: 'ping' }), { ok: true, message: { event: 'ping' } })
  t.strictSame(parseText(' \n{"event":"ping"}\t '), { ok: true, message: { event: 'ping' } }, 'whitespace around the JSON is fine')
  t.strictSame(parseJson({ event: 'subscribe', channel: 'c'.repeat(128) }), { ok: true, message: { event: 'subscribe', channel: 'c'.repeat(128) } }, '128 characters is the limit, included')
  t.strictSame(parseJson({ event: 'subscribe', channel: 'x' }), { ok: true, message: { event: 'subscribe', channel: 'x' } }, 'the parser does not know the channel table')
})

t.test('extra properties are tolerated and kept', async (t) => {
  t.strictSame(parseJson({ id: 7, event: 'subscribe', channel: 'card.events', meta: { a: [1] } }),
    { ok: true, message: { id: 7, event: 'subscribe', channel: 'card.events', meta: { a: [1] } } })
  t.strictSame(parseJson({ event: 'ping', channel: 'settings', ts: 1 }), { ok: true, message: { event: 'ping', channel: 'settings', ts: 1 } })
  t.strictSame(parseJson({ event: 'ping', channel: 42 }), { ok: true, message: { event: 'ping', channel: 42 } }, 'ping ignores what channel is')
})

t.test('a binary frame is refused whatever it holds', async (t) => {
  const expected = invalid('Messages must be JSON text frames')
  t.strictSame(parseClientMessage(text('{"event":"ping"}'), true), expected)
  t.strictSame(parseClientMessage(text('{"event":"subscribe","channel":"kyc.events"}'), true), expected, 'no channel echoed for a binary frame')
  t.strictSame(parseClientMessage(Buffer.alloc(0), true), expected)
})

t.test('text that is not JSON', async (t) => {
  const expected = invalid('Message is not valid JSON')
  for (const value of ['', ' ', 'ping', '{', '{"event":"ping"', "{'event':'ping'}", '{"event":"ping"}x', 'undefined', 'NaN', '\u0000', '{"event":"ping",}']) {
    t.strictSame(parseText(value), expected, JSON.stringify(value))
  }
  t.strictSame(parseClientMessage(Buffer.from([0xff, 0xfe, 0x00]), false), expected, 'bytes that are not UTF-8')
})

t.test('JSON that is not an object', async (t) => {
  const expected = invalid('Message must be a JSON object')
  for (const value of ['[]', '[{"event":"ping"}]', '1', '-0', '1e400', 'null', 'true', 'false', '"ping"', '"{\\"event\\":\\"ping\\"}"']) {
    t.strictSame(parseText(value), expected, value)
  }
})

t.test('missing or non-string event', async (t) => {
  const message = 'Message needs an "event" string'
  t.strictSame(parseJson({}), invalid(message))
  t.strictSame(parseJson({ channel: 'kyc.events' }), invalid(message, 'kyc.events'), 'a string channel is echoed')
  t.strictSame(parseJson({ Event: 'ping' }), invalid(message), 'keys are case-sensitive')
  t.strictSame(parseJson({ event: 1, channel: 'kyc.events' }), invalid(message, 'kyc.events'))
  t.strictSame(parseJson({ event: null }), invalid(message))
  t.strictSame(parseJson({ event: ['ping'] }), invalid(message))
  t.strictSame(parseJson({ event: { name: 'ping' } }), invalid(message))
  t.strictSame(parseJson({ event: true, channel: 7 }), invalid(message), 'a channel that is not a string is not echoed')
})

t.test('unknown event: channel echoed when it is a string of at most 128 characters', async (t) => {
  t.strictSame(parseJson({ event: 'publish' }), unknownEvent(null))
  t.strictSame(parseJson({ event: 'publish', channel: 'kyc.events' }), unknownEvent('kyc.events'))
  t.strictSame(parseJson({ event: 'Subscribe', channel: 'kyc.events' }), unknownEvent('kyc.events'), 'event names are case-sensitive')
  t.strictSame(parseJson({ event: '', channel: '' }), unknownEvent(''), 'an empty event is unknown; an empty channel string is echoed')
  t.strictSame(parseJson({ event: 'x', channel: 'c'.repeat(128) }), unknownEvent('c'.repeat(128)))
  t.strictSame(parseJson({ event: 'x', channel: 'c'.repeat(129) }), unknownEvent(null))
  t.strictSame(parseJson({ event: 'x', channel: 5 }), unknownEvent(null))
  t.strictSame(parseJson({ event: 'x', channel: null }), unknownEvent(null))
  t.strictSame(parseJson({ event: 'x', channel: ['kyc.events'] }), unknownEvent(null))
  for (const event of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype']) {
    t.strictSame(parseJson({ event, channel: 'settings' }), unknownEvent('settings'), `${event} is not an event`)
  }
})

t.test('subscribe and unsubscribe need a channel string of 1 to 128 characters', async (t) => {
  for (const event of ['subscribe', 'unsubscribe']) {
    t.strictSame(parseJson({ event }), invalid(NEEDS_CHANNEL(event)), `${event} without channel`)
    t.strictSame(parseJson({ event, channel: '' }), invalid(NEEDS_CHANNEL(event), ''), `${event} with an empty channel`)
    t.strictSame(parseJson({ event, channel: 'c'.repeat(129) }), invalid(NEEDS_CHANNEL(event)), `${event} with 129 characters`)
    t.strictSame(parseJson({ event, channel: 12 }), invalid(NEEDS_CHANNEL(event)), `${event} with a number`)
    t.strictSame(parseJson({ event, channel: null }), invalid(NEEDS_CHANNEL(event)), `${event} with null`)
    t.strictSame(parseJson({ event, channel: { name: 'kyc.events' } }), invalid(NEEDS_CHANNEL(event)), `${event} with an object`)
    t.strictSame(parseJson({ event, channel: ['kyc.events'] }), invalid(NEEDS_CHANNEL(event)), `${event} with an array`)
  }
})

t.test('__proto__ and constructor keys neither break parsing nor reach Object.prototype', async (t) => {
  t.strictSame(parseText('{"__proto__":{"event":"ping"}}'), invalid('Message needs an "event" string'), 'a __proto__ key does not supply the event')
  t.strictSame(parseText('{"constructor":{"prototype":{"event":"ping"}},"event":"nope"}'), unknownEvent(null))
  const parsed = parseText('{"event":"ping","__proto__":{"polluted":true}}')
  t.equal(parsed.ok, true)
  t.strictSame(Object.keys(parsed.ok ? parsed.message : {}), ['event', '__proto__'], '__proto__ stays an own key of the message')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('duplicate keys: the last one wins, as JSON.parse does', async (t) => {
  t.strictSame(parseText('{"event":"subscribe","event":"ping"}'), { ok: true, message: { event: 'ping' } })
  t.strictSame(parseText('{"event":"ping","event":"subscribe"}'), invalid(NEEDS_CHANNEL('subscribe')))
})

// --- property-based -------------------------------------------------------

const KNOWN_EVENTS = new Set(['subscribe', 'unsubscribe', 'ping'])
const ERROR_CODES = new Set(['INVALID_MESSAGE', 'UNKNOWN_EVENT'])

/**
 * Throws (so fast-check shrinks and reports) unless `result` is one of the
 * documented outcomes. For a text frame holding a JSON object it also checks
 * the outcome against the rules of README's client-message table.
 */
function assertWellFormed (result: ParsedMessage, data: Buffer, isBinary: boolean): void {
  const fail = (why: string): never => {
    const summary = typeof result !== 'object' || result === null
      ? String(result)
      : result.ok ? `ok ${String(result.message.event)}` : `${result.code} ${JSON.stringify(result.message)} channel=${JSON.stringify(result.channel)}`
    throw new Error(`${why}: ${summary} for ${isBinary ? 'binary' : 'text'} ${describe(data)}`)
  }
  if (typeof result !== 'object' || result === null) fail('not an object')
  if (result.ok) {
    if (Object.keys(result).join() !== 'ok,message') fail('extra keys on a success')
    const message = result.message as Record<string, unknown>
    if (typeof message !== 'object' || message === null || Array.isArray(message)) fail('message is not an object')
    if (typeof message.event !== 'string' || !KNOWN_EVENTS.has(message.event)) fail('unknown event accepted')
    if (message.event !== 'ping') {
      const channel = message.channel
      // typebox counts code points, as JSON Schema does.
      if (typeof channel !== 'string' || channel.length === 0 || channel.length > 128) fail('bad channel accepted')
    }
    if (isBinary) fail('binary frame accepted')
    return
  }
  if (result.ok !== false) fail('ok is not a boolean')
  if (Object.keys(result).join() !== 'ok,code,message,channel') fail('unexpected keys on an error')
  if (!ERROR_CODES.has(result.code)) fail('unexpected code')
  if (typeof result.message !== 'string' || result.message.length === 0) fail('empty message')
  if (result.channel !== null && (typeof result.channel !== 'string' || result.channel.length > 128)) fail('bad echoed channel')
  if (isBinary && (result.code !== 'INVALID_MESSAGE' || result.channel !== null)) fail('binary frame not refused as INVALID_MESSAGE')
}

/** What README's rules say the outcome is for a text frame; checked against the parser. */
function expectedOutcome (raw: string): { ok: boolean, code?: string, channel?: string | null } {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return { ok: false, code: 'INVALID_MESSAGE', channel: null }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, code: 'INVALID_MESSAGE', channel: null }
  const own = (key: string): unknown => Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined
  const rawChannel = own('channel')
  const channel = typeof rawChannel === 'string' && rawChannel.length <= 128 ? rawChannel : null
  const event = own('event')
  if (typeof event !== 'string') return { ok: false, code: 'INVALID_MESSAGE', channel }
  if (!KNOWN_EVENTS.has(event)) return { ok: false, code: 'UNKNOWN_EVENT', channel }
  if (event === 'ping') return { ok: true }
  const length = typeof rawChannel === 'string' ? rawChannel.length : 0
  return length >= 1 && length <= 128 ? { ok: true } : { ok: false, code: 'INVALID_MESSAGE', channel }
}

function check (data: Buffer, isBinary: boolean): void {
  const result = parseClientMessage(data, isBinary)
  assertWellFormed(result, data, isBinary)
  if (isBinary) return
  const expected = expectedOutcome(data.toString())
  const actual = result.ok ? { ok: true } : { ok: false, code: result.code, channel: result.channel }
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)} for ${describe(data)}`)
  }
  if (result.ok) {
    // Shallow on purpose: JSON.stringify recurses and a deeply nested frame would overflow the test's stack, not the parser's.
    const parsed = JSON.parse(data.toString())
    const message = result.message as Record<string, unknown>
    if (Object.keys(message).join('\u0000') !== Object.keys(parsed).join('\u0000') || message.event !== parsed.event || typeof message.channel !== typeof parsed.channel ||
      (typeof message.channel === 'string' && message.channel !== parsed.channel)) {
      throw new Error(`the message is not the parsed frame: ${describe(data)}`)
    }
  }
}

/** The frame, short enough for a failure message. */
function describe (data: Buffer): string {
  const raw = data.toString()
  return JSON.stringify(raw.length > 300 ? `${raw.slice(0, 150)}…${raw.slice(-150)}` : raw)
}

const RUNS = { numRuns: 2000 }
const SPECIAL_KEYS = ['__proto__', 'constructor', 'prototype', 'event', 'channel', 'toString', 'hasOwnProperty', 'valueOf']
const HUGE_NUMBERS = ['1e400', '-1e400', '-0', '9007199254740993', '-9007199254740993', '1e-400', '123456789012345678901234567890', '0.0000000000000000000000001', '5e-324']

const channelLike = fc.oneof(
  fc.constantFrom('settings', 'kyc.events', 'notification.events', 'mobile.force.logout', '', '__proto__', 'constructor'),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(127, 128, 129, 256).chain((length) => fc.constantFrom('c'.repeat(length), '😀'.repeat(length), 'é'.repeat(length))),
  fc.string({ minLength: 120, maxLength: 140 }),
  fc.string({ unit: 'binary', minLength: 60, maxLength: 140 })
)
const eventLike = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'ping') },
  { weight: 2, arbitrary: fc.constantFrom('Subscribe', 'PING', '', ' ping', '__proto__', 'constructor', 'toString') },
  { weight: 1, arbitrary: fc.string() }
)

/** JSON text of a value, including numbers JSON.stringify cannot write and deep nesting. */
const rawValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
  { weight: 3, arbitrary: channelLike.map((value) => JSON.stringify(value)) },
  { weight: 2, arbitrary: eventLike.map((value) => JSON.stringify(value)) },
  { weight: 2, arbitrary: fc.constantFrom(...HUGE_NUMBERS) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('', '1', '"x"', '{}', '{"event":"ping"}')).map(([depth, inner]) => '['.repeat(depth) + inner + ']'.repeat(depth)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2000 }).map((depth) => '{"channel":'.repeat(depth) + '"x"' + '}'.repeat(depth)) }
)

/**
 * A JSON object text: usually an `event` and a `channel` entry, plus others
 * keyed mostly by names the parser or the prototype chain care about, in any
 * order (duplicate keys included).
 */
const objectText = fc.tuple(
  fc.option(fc.oneof({ weight: 4, arbitrary: eventLike.map((value) => JSON.stringify(value)) }, { weight: 1, arbitrary: rawValue }), { freq: 8 }),
  fc.option(fc.oneof({ weight: 4, arbitrary: channelLike.map((value) => JSON.stringify(value)) }, { weight: 1, arbitrary: rawValue }), { freq: 4 }),
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...SPECIAL_KEYS), fc.string()), rawValue), { maxLength: 4 })
).chain(([event, channel, others]) => {
  const entries: Array<[string, string]> = [...others]
  if (event !== null) entries.push(['event', event])
  if (channel !== null) entries.push(['channel', channel])
  return fc.shuffledSubarray(entries, { minLength: entries.length })
}).map((entries) => `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`)

t.test('property: arbitrary strings never throw and give a documented outcome', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' })),
    fc.boolean(),
    (value, isBinary) => check(text(value), isBinary)
  ), RUNS))
})

t.test('property: arbitrary bytes as binary and as text frames', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.uint8Array({ maxLength: 512 }),
    fc.boolean(),
    (bytes, isBinary) => check(Buffer.from(bytes), isBinary)
  ), RUNS))
})

t.test('property: arbitrary JSON documents', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.oneof(fc.json(), fc.jsonValue().map((value) => JSON.stringify(value)), fc.json({ depthSize: 'large' })),
    (json) => check(text(json), false)
  ), RUNS))
})

t.test('property: message-like objects (records and dictionaries with special keys)', async (t) => {
  const anyValue = fc.oneof(fc.jsonValue(), channelLike, eventLike)
  const record = fc.record({ event: eventLike, channel: channelLike, id: fc.jsonValue() }, { requiredKeys: [] })
  const dictionary = fc.dictionary(fc.oneof(fc.constantFrom(...SPECIAL_KEYS), fc.string()), anyValue, { maxKeys: 8 })
  const merged = fc.tuple(record, dictionary).map(([first, second]) => ({ ...second, ...first }))
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.oneof(record, dictionary, merged).map((value) => JSON.stringify(value)),
    fc.boolean(),
    (json, isBinary) => check(text(json), isBinary)
  ), RUNS))
})

t.test('property: raw JSON objects with huge numbers, -0, duplicate keys and deep nesting', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.oneof({ weight: 4, arbitrary: objectText }, { weight: 1, arbitrary: rawValue }, { weight: 1, arbitrary: objectText.map((value) => `[${value}]`) }),
    (json) => check(text(json), false)
  ), RUNS))
})

t.test('Object.prototype is untouched after all of the above', async (t) => {
  const probe: Record<string, unknown> = {}
  t.equal(Object.getPrototypeOf(probe), Object.prototype)
  t.strictSame(Object.getOwnPropertyNames(Object.prototype).sort(), [
    '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__', '__proto__',
    'constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString', 'valueOf'
  ])
  t.equal(probe.event, undefined)
  t.equal(probe.channel, undefined)
  t.equal(probe.polluted, undefined)
  t.equal(typeof Object.prototype.toString, 'function')
  t.equal(Object.prototype.constructor, Object)
})
