// node bench/profile-top.js PROFILE.cpuprofile [WINDOWS.json] [--top 25] [--deliveries N]
//
// Top self-time functions of a V8 CPU profile (from --cpu-prof). With a
// windows file (written by `npm run bench -- --only burst --cpu-prof DIR`,
// or `--only paced`), only samples inside those [startUs, endUs] windows
// count: the bursts, not the connects around them. Time is also grouped by
// where it goes in a delivery (ws framing, Node's stream and net write path,
// the write syscalls, the plugin's own code, GC); with `--deliveries N` each
// group is also shown in µs per delivery. Idle samples are left out.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, deliveries: { type: 'string' } } })
const [profilePath, windowsPath] = positionals
if (profilePath === undefined) {
  console.error('usage: node bench/profile-top.js PROFILE.cpuprofile [WINDOWS.json] [--top N]')
  process.exit(1)
}
const profile = JSON.parse(readFileSync(profilePath, 'utf8'))
const windows = windowsPath === undefined ? null : JSON.parse(readFileSync(windowsPath, 'utf8'))
const inWindow = (us) => windows === null || windows.some(([start, end]) => us >= start && us <= end)

// Where a sample's self time goes, by its function's file (or, for native code, its name); first match wins.
const GROUPS = [
  ['GC', (name) => name === '(garbage collector)'],
  ['write syscalls (native writev/writeBuffer/…, the kernel\'s time included)', (name, url) => url === '' && /^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString|writeUcs2String)$/.test(name)],
  ['ws framing (ws/lib)', (name, url) => url.startsWith('ws/lib/')],
  ['Node stream / net write path', (name, url) => /^node:(internal\/streams\/|net$|internal\/stream_base_commons|internal\/net|stream$|internal\/buffer|buffer$)/.test(url)],
  ['the plugin (dist/)', (name, url) => url.startsWith('dist/')],
  ['the bench harness (bench/)', (name, url) => url.startsWith('bench/')],
  ['other Node core', (name, url) => url.startsWith('node:')],
  ['other packages', (name, url) => url !== ''],
  ['other native / (program)', () => true]
]

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfUs = new Map()
const byPlace = new Map()
const byGroup = new Map()
let total = 0
let at = profile.startTime
for (let index = 0; index < profile.samples.length; index++) {
  at += profile.timeDeltas[index]
  if (!inWindow(at)) continue
  const delta = profile.timeDeltas[index + 1] ?? 0
  const { callFrame } = byId.get(profile.samples[index])
  const name = callFrame.functionName || '(anonymous)'
  if (name === '(idle)') continue
  // Paths relative to the package or to the checkout (any worktree: the part before dist/ or bench/ goes).
  const url = callFrame.url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/(dist|bench)\//, '$1/')
  const key = url === '' ? name : `${name}  ${url}:${callFrame.lineNumber + 1}`
  selfUs.set(key, (selfUs.get(key) ?? 0) + delta)
  const place = url === '' ? name : url.startsWith('node:') ? 'node core' : url.split('/').slice(0, url.startsWith('@') ? 2 : 1).join('/')
  byPlace.set(place, (byPlace.get(place) ?? 0) + delta)
  const [group] = GROUPS.find(([, matches]) => matches(name, url))
  byGroup.set(group, (byGroup.get(group) ?? 0) + delta)
  total += delta
}

const show = (map, limit) => [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)
  .map(([key, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`).join('\n')
console.log(`${profilePath}: ${(total / 1000).toFixed(1)} ms of samples${windows === null ? '' : ` in ${windows.length} window(s)`}\n`)
const deliveries = values.deliveries === undefined ? undefined : Number(values.deliveries)
const perDelivery = (us) => deliveries === undefined ? '' : `${(us / deliveries).toFixed(3).padStart(8)} µs/delivery  `
console.log(`Self time by where it goes in a delivery${deliveries === undefined ? '' : ` (÷ ${deliveries} deliveries)`}:`)
console.log([...byGroup].sort((a, b) => b[1] - a[1]).map(([group, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${perDelivery(us)}${group}`).join('\n') + '\n')
console.log(`Self time by package/file:\n${show(byPlace, 12)}\n`)
console.log(`Top ${values.top} functions by self time:\n${show(selfUs, Number(values.top))}`)
