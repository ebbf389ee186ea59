import t from 'tap'
import { build } from 'esbuild'
import { join } from 'node:path'
import { REDIS_URL } from '../helpers/app.js'
import { ensureBuilt } from '../helpers/demo.js'

t.test('the package exports the publisher at fastify-realtime/publisher, as built', async (t) => {
  ensureBuilt(join('publisher', 'index.js'))
  // A variable: the type checker need not find dist/ (built by `npm ci`, or just now).
  const specifier = 'fastify-realtime/publisher'
  const { createPublisher, errors } = await import(specifier)
  const publisher = await createPublisher({ redis: REDIS_URL })
  t.teardown(async () => await publisher.close())
  await t.rejects(publisher.publish('nope.events', 'X', {}), new errors.FST_REALTIME_UNKNOWN_CHANNEL('nope.events'))
})

t.test('the publisher carries none of the gateway: no Fastify, no WebSocket server, no hub or node at runtime', async (t) => {
  const result = await build({
    entryPoints: [new URL('../../lib/publisher/index.ts', import.meta.url).pathname],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    write: false,
    metafile: true,
    logLevel: 'silent'
  })
  const packages = new Set(Object.values(result.metafile.outputs).flatMap((output) => output.imports.map((imported) => imported.path)))
  t.strictSame([...packages].sort(), ['@fastify/error', 'ioredis', 'node:crypto', 'typebox', 'typebox/compile'])
  const files = Object.keys(result.metafile.inputs)
  t.strictSame(files.filter((file) => /lib\/(hub|handshake|diagnostics|http)\/|lib\/node\/(node|fencing|presence|acks)\.ts|lib\/index\.ts/.test(file)), [])
})
