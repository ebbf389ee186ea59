// A live socket's access token is not kept in the gateway's memory: in the
// default layouts (memory, or Redis keyed by the token's SHA-256) a socket
// keeps only the hash, and the periodic revocation check resolves by it. A
// heap dump of a node (taken for debugging, or by the heap benchmark) then
// holds no bearer token a thief could replay. A custom `tokens.keyFor` needs
// the token itself to find its key, so there it is kept.
import t, { type Test } from 'tap'
import { build } from 'esbuild'
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { Redis } from 'ioredis'
import { hashToken } from '../../lib/tokens/token-store.js'
import { REDIS_URL, uniquePrefix } from '../helpers/app.js'
import { connect, closed } from '../helpers/client.js'

// Bundled from the TypeScript sources and run by plain Node: under the test runner's TypeScript
// loader the process heap holds the compiler, and one snapshot of it takes half a minute. Written
// below node_modules, so that its imports resolve from there.
const CACHE = fileURLToPath(new URL('../../node_modules/.cache/fastify-realtime-tests/', import.meta.url))
const script = `${CACHE}token-memory-node-${process.pid}.mjs`
mkdirSync(CACHE, { recursive: true })
await build({
  entryPoints: [fileURLToPath(new URL('../helpers/token-memory-node.ts', import.meta.url))],
  bundle: true,
  platform: 'node',
  format: 'esm',
  packages: 'external',
  outfile: script,
  logLevel: 'silent'
})
t.teardown(() => rmSync(script, { force: true }))

/** The gateway of test/helpers/token-memory-node.ts; `search()` asks it whether its heap holds the token. */
async function startGateway (t: Test, layout: string, keyPrefix: string): Promise<{ port: number, token: string, search: () => Promise<boolean> }> {
  const child = spawn(process.execPath, [script], { env: { ...process.env, LAYOUT: layout, KEY_PREFIX: keyPrefix }, stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next()
    if (done === true) throw new Error('the gateway exited')
    return value
  }
  const { port, token } = JSON.parse(await next())
  return {
    port,
    token,
    async search () {
      child.stdin.write('search\n')
      return (await next()) === 'found true'
    }
  }
}

const layouts = [
  { layout: 'memory', name: 'embedded (memory store)', kept: false, key: undefined },
  { layout: 'redis', name: 'cluster mode, default layout (keyed by the token\'s SHA-256)', kept: false, key: (prefix: string, token: string) => `${prefix}token:${hashToken(token)}` },
  { layout: 'custom-key', name: 'cluster mode, a custom tokens.keyFor (it needs the token to find the key)', kept: true, key: (prefix: string, token: string) => `${prefix}custom:${hashToken(token).slice(0, 16)}` }
]

for (const { layout, name, kept, key } of layouts) {
  t.test(`${name}: a live socket's token is ${kept ? '' : 'not '}in the gateway's heap${key === undefined ? '' : '; deleting its key still closes the socket (4501)'}`, async (t) => {
    const keyPrefix = uniquePrefix()
    const gateway = await startGateway(t, layout, keyPrefix)
    const { socket } = await connect(`ws://127.0.0.1:${gateway.port}/api/v1/ws?token=${gateway.token}`)
    t.teardown(() => socket.terminate())
    t.equal(await gateway.search(), kept)
    if (key === undefined) return
    const redis = new Redis(REDIS_URL)
    t.teardown(() => redis.quit())
    const closing = closed(socket)
    t.equal(await redis.del(key(keyPrefix, gateway.token)), 1)
    t.equal((await closing).code, 4501, 'the periodic check found the token revoked')
  })
}
