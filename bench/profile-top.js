// node bench/profile-top.js PROFILE.cpuprofile [WINDOWS.json] [--top 25]
//
// Top self-time functions of a V8 CPU profile (from --cpu-prof). With a
// windows file (written by `npm run bench -- --only burst --cpu-prof DIR`),
// only samples inside those [startUs, endUs] windows count: the bursts,
// not the connects around them.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
const [profilePath, windowsPath] = positionals
if (profilePath === undefined) {
  console.error('usage: node bench/profile-top.js PROFILE.cpuprofile [WINDOWS.json] [--top N]')
  process.exit(1)
}
const profile = JSON.parse(readFileSync(profilePath, 'utf8'))
const windows = windowsPath === undefined ? null : JSON.parse(readFileSync(windowsPath, 'utf8'))
const inWindow = (us) => windows === null || windows.some(([start, end]) => us >= start && us <= end)

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfUs = new Map()
const byPlace = new Map()
let total = 0
let at = profile.startTime
for (let index = 0; index < profile.samples.length; index++) {
  at += profile.timeDeltas[index]
  if (!inWindow(at)) continue
  const delta = profile.timeDeltas[index + 1] ?? 0
  const { callFrame } = byId.get(profile.samples[index])
  const name = callFrame.functionName || '(anonymous)'
  const url = callFrame.url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/main\//, '')
  const key = url === '' ? name : `${name}  ${url}:${callFrame.lineNumber + 1}`
  selfUs.set(key, (selfUs.get(key) ?? 0) + delta)
  const place = url === '' ? name : url.startsWith('node:') ? 'node core' : url.split('/').slice(0, url.startsWith('@') ? 2 : 1).join('/')
  byPlace.set(place, (byPlace.get(place) ?? 0) + delta)
  total += delta
}

const show = (map, limit) => [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)
  .map(([key, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`).join('\n')
console.log(`${profilePath}: ${(total / 1000).toFixed(1)} ms of samples${windows === null ? '' : ` in ${windows.length} window(s)`}\n`)
console.log(`Self time by package/file:\n${show(byPlace, 12)}\n`)
console.log(`Top ${values.top} functions by self time:\n${show(selfUs, Number(values.top))}`)
