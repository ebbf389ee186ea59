// A channel the subscription set keeps is the string table's copy: ioredis
// keeps every subscribed channel as a property name (which V8 interns), so a
// user's topic is then held once, not twice, for as long as the socket lives.
// V8 tells whether a string is interned only to a process started with
// --allow-natives-syntax: the set is bundled and asked in one.
import t from 'tap'
import { build } from 'esbuild'
import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const CACHE = fileURLToPath(new URL('../../node_modules/.cache/fastify-realtime-tests/', import.meta.url))
const bundle = `${CACHE}subscriptions-${process.pid}.mjs`
const driver = `${CACHE}subscriptions-driver-${process.pid}.mjs`
mkdirSync(CACHE, { recursive: true })
t.teardown(() => { rmSync(bundle, { force: true }); rmSync(driver, { force: true }) })

t.test('a wanted channel built at run time is kept, and subscribed, as the interned string', async (t) => {
  await build({
    entryPoints: [fileURLToPath(new URL('../../lib/broker/subscriptions.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: bundle,
    logLevel: 'silent'
  })
  writeFileSync(driver, `
import { SubscriptionSet } from './${bundle.split('/').at(-1)}'
const sent = []
const set = new SubscriptionSet(async (channels) => { sent.push(...channels) }, async () => {}, (error) => { throw error })
// Built at run time, as a user's topic is: not interned to begin with.
const topic = ['rt:u:{', String(Date.now()), '}'].join('')
const before = %IsInternalizedString(topic)
await set.want(topic)
console.log(JSON.stringify({ before, sent: sent.length, interned: sent.map((channel) => %IsInternalizedString(channel)) }))
`)
  const { stdout } = await promisify(execFile)(process.execPath, ['--allow-natives-syntax', driver])
  t.same(JSON.parse(stdout), { before: false, sent: 1, interned: [true] })
})
