import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import realtime, { type RealtimeOptions } from '../../lib/index.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key prefix no other test (or run) shares. */
export function uniquePrefix (): string {
  return `rt-test:${randomBytes(6).toString('hex')}:`
}

export interface TestApp {
  app: FastifyInstance
  /** `ws://127.0.0.1:PORT` */
  wsBase: string
  /** `http://127.0.0.1:PORT` */
  httpBase: string
  port: number
  /** Every log line written so far, raw. */
  logs: string[]
}

/** A log destination that keeps every line, for asserting what was (not) logged. */
export function captureLogs (): { lines: string[], stream: Writable } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    }
  })
  return { lines, stream }
}

/** Builds and starts an app with the plugin on a free loopback port, with the server timeouts README recommends. */
export async function startApp (
  options: RealtimeOptions = {},
  fastifyOptions: FastifyHttpOptions<Server> = {},
  beforeListen: (app: FastifyInstance) => unknown = () => {},
  beforeRegister: (app: FastifyInstance) => unknown = () => {}
): Promise<TestApp> {
  const { lines, stream } = captureLogs()
  const app = Fastify({ logger: { level: 'trace', stream }, connectionTimeout: 10_000, requestTimeout: 10_000, ...fastifyOptions })
  await beforeRegister(app)
  await app.register(realtime, options)
  await beforeListen(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, port, wsBase: `ws://127.0.0.1:${port}`, httpBase: `http://127.0.0.1:${port}`, logs: lines }
}
