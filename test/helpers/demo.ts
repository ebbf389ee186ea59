import { spawn, execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The newest modification time of the files below `dir` (ms). */
function newest (dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return latest
}

/**
 * The demo runs the built package (dist/), as `npm run demo` does. CI builds
 * it in `npm ci` (the prepare script); a checkout whose lib/ changed since is
 * built again here.
 */
export function ensureBuilt (entry = join('client', 'index.js')): void {
  let built = 0
  try { built = statSync(join(ROOT, 'dist', entry)).mtimeMs } catch {}
  if (built > newest(join(ROOT, 'lib'))) return
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 })
}

/** Starts `examples/demo.js` on a free port; resolves with its base URL once it prints it. Killed at teardown. */
export async function startDemo (t: Test, env: Record<string, string> = {}): Promise<string> {
  ensureBuilt()
  const child = spawn(process.execPath, [join(ROOT, 'examples', 'demo.js')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let output = ''
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start: ${output}`)), 20_000)
    const read = (chunk: Buffer): void => {
      output += chunk.toString()
      const match = /open (http:\/\/[^/\s]+)\//.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    }
    child.stdout.on('data', read)
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the demo exited (${String(code)}): ${output}`)) })
  })
}
