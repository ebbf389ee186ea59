// Idle heap per socket of the built plugin, and where it goes.
//
//   npm run build && node --expose-gc bench/heap-per-socket.js [--sockets N] [--cluster] [--snapshot]
//
// Starts the plugin in this process (as the bench's plugin arm configures it:
// no per-address cap, no protocol pings), opens and closes a warm-up round of
// sockets so that code, pools and maps exist, then measures heapUsed after a
// full GC before and after N idle sockets (opened by a child process, so its
// own sockets are not counted) and prints the difference per socket.
// `--cluster` runs cluster mode on the Redis at 127.0.0.1:6379 (keys under a
// unique prefix). `--snapshot` also writes a heap snapshot before and after
// (in a temporary directory, deleted at the end) and prints, per socket, the
// bytes of the objects new in the second one by constructor, then by
// constructor and first retainer (the edge and the object holding it).
// Strings that the snapshot itself creates (names of code objects and
// closures, concatenated strings) are new too: read past them.
// Loopback only; the whole run is bounded by a deadline.
import { fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { writeHeapSnapshot } from 'node:v8'
import Fastify from 'fastify'
import realtime from 'fastify-realtime'

const { values } = parseArgs({
  options: {
    sockets: { type: 'string', default: '5000' },
    cluster: { type: 'boolean', default: false },
    snapshot: { type: 'boolean', default: false }
  }
})
const sockets = Number(values.sockets)
if (!Number.isInteger(sockets) || sockets < 100 || sockets > 20_000) throw new Error('--sockets: an integer from 100 to 20000')
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc')
const WARM_UP = 200
const DEADLINE_MS = 300_000
const PATH = '/api/v1/ws'

const deadline = setTimeout(() => {
  console.error(`heap-per-socket: not done within ${DEADLINE_MS / 1000} s`)
  process.exit(1)
}, DEADLINE_MS)
deadline.unref()

const app = Fastify()
await app.register(realtime, {
  limits: { maxConnectionsPerIp: 0, maxConnections: sockets + WARM_UP },
  heartbeat: { intervalMs: 3_600_000 },
  ...(values.cluster ? { redis: 'redis://127.0.0.1:6379', keyPrefix: `bench:heap:${process.pid}:${Date.now()}:` } : {})
})
await app.listen({ host: '127.0.0.1', port: 0 })
const tokens = []
for (let i = 0; i < sockets; i++) tokens.push(await app.realtime.tokens.issue(`user-${i}`, { ttlSeconds: 3600 }))

const clients = fork(new URL('./lib/heap-clients.js', import.meta.url), [String(app.server.address().port), PATH])
const ask = (command) => new Promise((resolve, reject) => {
  clients.once('message', (answer) => answer.ok ? resolve() : reject(new Error(answer.error)))
  clients.send(command)
})
const settle = () => new Promise((resolve) => setTimeout(resolve, 1000))
const collect = () => { globalThis.gc(); globalThis.gc() }

await ask({ connect: tokens.slice(0, WARM_UP) })
await ask({ close: true })
await settle()

const directory = values.snapshot ? mkdtempSync(join(tmpdir(), 'heap-per-socket-')) : undefined
collect()
const heapBefore = process.memoryUsage().heapUsed
const before = directory === undefined ? undefined : writeHeapSnapshot(join(directory, 'before.heapsnapshot'))
await ask({ connect: tokens })
await settle()
collect()
const heapAfter = process.memoryUsage().heapUsed
const after = directory === undefined ? undefined : writeHeapSnapshot(join(directory, 'after.heapsnapshot'))
// Counted after the snapshot: the first diagnostic listing builds objects of its own.
const open = app.realtime.connections().length
console.log(`${values.cluster ? 'cluster' : 'embedded'}, ${sockets} idle sockets (${open} open): heapUsed ${((heapAfter - heapBefore) / sockets).toFixed(0)} B per socket`)
if (directory !== undefined) {
  printNewObjects(before, after, sockets)
  rmSync(directory, { recursive: true, force: true })
}
clients.kill()
await app.close()
clearTimeout(deadline)

/** The objects of `afterFile` not in `beforeFile`, per socket: by constructor, then by constructor and first retainer. */
function printNewObjects (beforeFile, afterFile, count) {
  const old = new Set()
  {
    const snapshot = JSON.parse(readFileSync(beforeFile, 'utf8'))
    const fields = snapshot.snapshot.meta.node_fields
    const id = fields.indexOf('id')
    for (let i = 0; i < snapshot.nodes.length; i += fields.length) old.add(snapshot.nodes[i + id])
  }
  const snapshot = JSON.parse(readFileSync(afterFile, 'utf8'))
  const meta = snapshot.snapshot.meta
  const { nodes, edges, strings } = snapshot
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const width = meta.node_fields.length
  const edgeWidth = meta.edge_fields.length
  const [type, name, id, selfSize, edgeCount] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((field) => meta.node_fields.indexOf(field))
  const [edgeType, edgeName, toNode] = ['type', 'name_or_index', 'to_node'].map((field) => meta.edge_fields.indexOf(field))
  const label = (node) => {
    const kind = nodeTypes[nodes[node + type]]
    return kind.includes('string') || kind === 'number' ? `(${kind})` : `${kind === 'object' ? '' : `(${kind}) `}${strings[nodes[node + name]].slice(0, 40)}`
  }
  // The first strong edge to each node names its retainer.
  const retainer = new Map()
  let edge = 0
  for (let node = 0; node < nodes.length; node += width) {
    for (let k = 0; k < nodes[node + edgeCount]; k++, edge += edgeWidth) {
      const to = edges[edge + toNode]
      const kind = edgeTypes[edges[edge + edgeType]]
      if (kind === 'weak' || retainer.has(to)) continue
      const via = kind === 'element' || kind === 'hidden' ? `[${kind}]` : String(strings[edges[edge + edgeName]]).slice(0, 30)
      retainer.set(to, `${via} of ${label(node)}`)
    }
  }
  const byConstructor = new Map()
  const byRetainer = new Map()
  let total = 0
  const add = (table, key, size) => {
    const entry = table.get(key) ?? { size: 0, count: 0 }
    entry.size += size
    entry.count++
    table.set(key, entry)
  }
  for (let node = 0; node < nodes.length; node += width) {
    const kind = nodeTypes[nodes[node + type]]
    if (old.has(nodes[node + id]) || kind === 'synthetic' || kind === 'native') continue
    const size = nodes[node + selfSize]
    total += size
    add(byConstructor, label(node), size)
    add(byRetainer, `${label(node)} <- ${retainer.get(node) ?? '?'}`, size)
  }
  const print = (title, table) => {
    console.log(`\n${title}\n   B/socket  n/socket`)
    const rows = [...table].filter(([, entry]) => entry.size / count >= 2).sort((a, b) => b[1].size - a[1].size).slice(0, 40)
    for (const [key, entry] of rows) console.log(`${(entry.size / count).toFixed(1).padStart(11)} ${(entry.count / count).toFixed(2).padStart(9)}  ${key}`)
  }
  console.log(`new objects in the second snapshot: ${(total / count).toFixed(0)} B per socket`)
  print('by constructor', byConstructor)
  print('by constructor <- first retainer', byRetainer)
}
