#!/usr/bin/env node
// Dependency floors that security fixes depend on (README "What one client can
// make a node hold"; ws SECURITY.md): ws >= 8.17.1 stops the crash with too
// many headers (CVE-2024-37890), ws >= 8.21.0 the tiny-fragment memory DoS.
// Checked two ways: the range package.json asks for cannot resolve below the
// floor, and no copy of the package installed anywhere under node_modules
// (nested copies included, since any of them can end up serving) is below it.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const FLOORS = { ws: '8.21.0' }
const root = fileURLToPath(new URL('..', import.meta.url))

function parse (version) {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version)
  if (match === null) throw new Error(`not a version: ${version}`)
  return match.slice(1).map(Number)
}

function atLeast (version, floor) {
  const [a, b] = [parse(version), parse(floor)]
  for (let index = 0; index < 3; index++) if (a[index] !== b[index]) return a[index] > b[index]
  return true
}

/** The lowest version a range accepts; only the forms this project uses (^, ~, >=, exact). */
function lowestOf (range) {
  const match = /^(\^|~|>=)?\s*(\d+\.\d+\.\d+)$/.exec(range.trim())
  if (match === null) throw new Error(`range "${range}" is not one of ^x.y.z, ~x.y.z, >=x.y.z or x.y.z: cannot check its floor`)
  return match[2]
}

async function installedCopies (name, dir = join(root, 'node_modules'), found = []) {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return found
  }
  for (const entry of entries) {
    if (!entry.isDirectory() && !entry.isSymbolicLink()) continue
    const path = join(dir, entry.name)
    if (entry.name.startsWith('@')) {
      await installedCopies(name, path, found)
      continue
    }
    if (entry.name === name) {
      try {
        const manifest = JSON.parse(await readFile(join(path, 'package.json'), 'utf8'))
        if (manifest.name === name) found.push({ path, version: manifest.version })
      } catch {}
    }
    await installedCopies(name, join(path, 'node_modules'), found)
  }
  return found
}

const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
const problems = []
for (const [name, floor] of Object.entries(FLOORS)) {
  const range = manifest.dependencies?.[name]
  if (range === undefined) {
    problems.push(`${name} is not a dependency in package.json`)
    continue
  }
  const lowest = lowestOf(range)
  if (!atLeast(lowest, floor)) problems.push(`package.json asks for ${name}@${range}, which accepts ${lowest} < ${floor}`)
  const copies = await installedCopies(name)
  if (copies.length === 0) problems.push(`${name} is not installed`)
  for (const copy of copies) {
    if (!atLeast(copy.version, floor)) problems.push(`${copy.path} is ${name}@${copy.version} < ${floor}`)
  }
  if (problems.length === 0) console.log(`${name}: package.json ${range}, installed ${[...new Set(copies.map((copy) => copy.version))].join(', ')} (${copies.length} copies), floor ${floor}: ok`)
}
if (problems.length > 0) {
  for (const problem of problems) console.error(`check-deps: ${problem}`)
  process.exit(1)
}
