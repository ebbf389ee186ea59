import t from 'tap'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../helpers/app.js'
import { connect } from '../helpers/client.js'
import { openRaw, clientFrame, fragmentedText, closeCodeIn } from '../helpers/raw-ws.js'
import websocket from '@fastify/websocket'
import { closeCodeOfSocketError } from '../../lib/constants.js'

async function waitFor (condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 300 && !condition(); attempt++) await sleep(10)
  if (!condition()) throw new Error('condition not met')
}

/** Resolves when the server ends the TCP connection; rejects if it has not within `ms`. */
async function serverEnds (socket: import('node:net').Socket, ms: number): Promise<void> {
  if (socket.destroyed) return
  await Promise.race([
    once(socket, 'close'),
    sleep(ms).then(() => { throw new Error(`still open after ${ms} ms`) })
  ])
}

t.test('a message in more fragments than limits.maxFragments is refused with 1008', async (t) => {
  const { app, port } = await startApp({ limits: { maxFragments: 4 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('frag', { ttlSeconds: 60 })
  const within = await openRaw(port, `/api/v1/ws?token=${token}`)
  within.socket.write(fragmentedText(4, true))
  await waitFor(() => app.realtime.stats().messages_in === 1)
  t.equal(closeCodeIn(within.received()), undefined, 'four fragments are one message')
  within.socket.destroy()

  const over = await openRaw(port, `/api/v1/ws?token=${token}`)
  over.socket.write(fragmentedText(5))
  await serverEnds(over.socket, 10_000)
  t.equal(closeCodeIn(over.received()), 1008)
  await waitFor(() => app.realtime.stats().closes[1008] === 1)
})

t.test('the default fragment limit is small', async (t) => {
  const { app, port } = await startApp()
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('frag', { ttlSeconds: 60 })
  const raw = await openRaw(port, `/api/v1/ws?token=${token}`)
  raw.socket.write(fragmentedText(17))
  await serverEnds(raw.socket, 10_000)
  t.equal(closeCodeIn(raw.received()), 1008)
})

t.test('a replaced socket that never answers the close handshake is terminated after limits.closeTimeoutMs', async (t) => {
  const { app, port, wsBase } = await startApp({ limits: { closeTimeoutMs: 200 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('mute', { ttlSeconds: 60 })
  // A client that holds a partial message and never reads nor answers a close frame.
  const mute = await openRaw(port, `/api/v1/ws?token=${token}`)
  mute.socket.write(fragmentedText(3))
  const newer = await connect(`${wsBase}/api/v1/ws?token=${token}`)
  t.teardown(() => newer.socket.terminate())
  await serverEnds(mute.socket, 5000)
  t.equal(closeCodeIn(mute.received()), 4500, 'it was told why')
  await waitFor(() => app.realtime.stats().closes[4500] === 1)
})

t.test('protocol errors are recorded with the code the client saw', async (t) => {
  const { app, port } = await startApp({ limits: { maxPayloadBytes: 64 } })
  t.teardown(() => app.close())
  const token = await app.realtime.tokens.issue('proto', { ttlSeconds: 60 })
  const cases: Array<[string, Buffer, number]> = [
    ['reserved opcode', clientFrame(0x3, 'x'), 1002],
    ['invalid UTF-8', clientFrame(0x1, Buffer.from([0xc3, 0x28])), 1007],
    ['over maxPayload', clientFrame(0x1, 'x'.repeat(65)), 1009]
  ]
  for (const [name, frame, code] of cases) {
    const raw = await openRaw(port, `/api/v1/ws?token=${token}`)
    raw.socket.write(frame)
    await serverEnds(raw.socket, 10_000)
    t.equal(closeCodeIn(raw.received()), code, `${name}: the client saw ${code}`)
  }
  await waitFor(() => Object.values(app.realtime.stats().closes).reduce((sum, count) => sum + count, 0) === 3)
  t.same(app.realtime.stats().closes, { 1002: 1, 1007: 1, 1009: 1 })
})

t.test('socket errors map to the code the peer saw', async (t) => {
  const withCode = (code?: string): Error & { code?: string } => Object.assign(new Error('x'), { code })
  t.equal(closeCodeOfSocketError(withCode('WS_ERR_INVALID_UTF8')), 1007)
  t.equal(closeCodeOfSocketError(withCode('WS_ERR_TOO_MANY_BUFFERED_PARTS')), 1008)
  t.equal(closeCodeOfSocketError(withCode('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')), 1009)
  t.equal(closeCodeOfSocketError(withCode('WS_ERR_INVALID_OPCODE')), 1002)
  t.equal(closeCodeOfSocketError(withCode('EPIPE')), 1006, 'a transport error: no close frame went out')
  t.equal(closeCodeOfSocketError(withCode()), 1006)
})

t.test('an @fastify/websocket the app registered with looser limits is named in a warning', async (t) => {
  // Variables, not literals: @types/ws does not know ws 8.23's newer options.
  const loose = { maxFragments: 4, closeTimeout: 30_000 }
  const tightOptions = { maxPayload: 1024, maxFragments: 4, maxBufferedChunks: 16, closeTimeout: 500 }
  const { app, logs } = await startApp({}, {}, () => {}, async (app) => { await app.register(websocket, { options: loose }) })
  t.teardown(() => app.close())
  const warning = logs.map((line) => JSON.parse(line)).find((entry) => entry.options !== undefined)
  t.equal(warning.level, 40)
  t.same(warning.options, ['maxPayload', 'maxBufferedChunks', 'closeTimeout'], 'maxFragments 4 is tighter than 16')

  const { app: tight, logs: quiet } = await startApp({}, {}, () => {}, async (app) => { await app.register(websocket, { options: tightOptions }) })
  t.teardown(() => tight.close())
  t.notOk(quiet.some((line) => line.includes('looser')))
})

t.test('one token replaying the fragment attack cannot run a small heap out of memory', async (t) => {
  const script = fileURLToPath(new URL('../helpers/fragment-attack.ts', import.meta.url))
  const child = spawn(process.execPath, ['--max-old-space-size=96', '--expose-gc', ...process.execArgv, script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const killer = setTimeout(() => child.kill('SIGKILL'), 50_000)
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (code, sig) => resolve([code, sig])))
  clearTimeout(killer)
  t.equal(signal, null, 'not killed')
  t.equal(exitCode, 0, 'the gateway survived the attack')
  const report = JSON.parse(output.trim().split('\n').at(-1) as string) as { connects: number, growthMiB: number, open: number }
  t.equal(report.connects, 120, 'every attacking connect was accepted')
  t.ok(report.growthMiB < 24, `heap growth stays bounded (${report.growthMiB} MiB for 120 attacking sockets)`)
})
