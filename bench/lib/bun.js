// The Bun arm's runtime: the `bun` package from the npm registry, installed
// on demand into a cache directory outside the repository (never a
// dependency of the plugin, never in package.json or the lock file). The
// version is pinned so that runs compare like with like.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const BUN_VERSION = '1.4.5'
export const BUN_CACHE = join(tmpdir(), 'fastify-realtime-bench-bun')
const INSTALL_TIMEOUT_MS = 180_000

/**
 * `{ path, version }` of a working Bun BUN_VERSION, installing it into
 * BUN_CACHE first when it is not there yet; `{ reason }` when it cannot be had
 * (no network, no binary for this platform, …): the arm is then skipped.
 */
export function ensureBun () {
  const found = installedBun()
  if (found !== undefined) return found
  try {
    mkdirSync(BUN_CACHE, { recursive: true })
    execFileSync('npm', ['install', '--prefix', BUN_CACHE, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `bun@${BUN_VERSION}`],
      { cwd: BUN_CACHE, stdio: ['ignore', 'ignore', 'pipe'], timeout: INSTALL_TIMEOUT_MS })
  } catch (error) {
    return { reason: `\`npm install bun@${BUN_VERSION}\` into ${BUN_CACHE} failed: ${String(error.stderr ?? error.message).trim().split('\n').at(-1)}` }
  }
  return installedBun() ?? { reason: `bun@${BUN_VERSION} was installed into ${BUN_CACHE} but no working binary was found (platform ${process.platform}-${process.arch})` }
}

/** The package's own launcher, or the platform package's binary (where the package's postinstall did not run). */
function installedBun () {
  const modules = join(BUN_CACHE, 'node_modules')
  const candidates = [join(modules, 'bun', 'bin', 'bun.exe'), join(modules, '@oven', `bun-${process.platform}-${process.arch === 'arm64' ? 'aarch64' : process.arch}`, 'bin', 'bun')]
  for (const path of candidates) {
    if (!existsSync(path)) continue
    try {
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim()
      if (version === BUN_VERSION) return { path, version }
    } catch {}
  }
  return undefined
}
