// Module hooks that run the TypeScript sources under test: esbuild strips the
// types of each .ts file as it loads (no type checking: `npm test` runs tsc
// first), with an inline source map, so coverage and stack traces name the
// .ts lines. It replaces tap's ts-node loader, which took 1-2 s of CPU per
// test process to start.
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { transform } from 'esbuild'

// The project's compiler options (target, class fields, verbatimModuleSyntax); tsconfig.json is plain JSON (no comments, no extends).
const { compilerOptions } = JSON.parse(readFileSync(new URL('../../tsconfig.json', import.meta.url), 'utf8'))
const RELATIVE = /^\.{1,2}\//

/** `./x.js` written in a .ts file names `./x.ts` when that is what exists (the NodeNext convention tsc follows). */
export async function resolve (specifier, context, next) {
  if (RELATIVE.test(specifier) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts') === true) {
    const source = new URL(`${specifier.slice(0, -3)}.ts`, context.parentURL)
    if (existsSync(fileURLToPath(source))) return { url: source.href, format: 'module', shortCircuit: true }
  }
  return await next(specifier, context)
}

/**
 * Answered here, not handed on to the hooks registered before these: on a
 * fresh checkout tap's first run still registers its ts-node loader (it
 * rebuilds its plugin list for the next run), which would transpile the
 * stripped source again and leave coverage a source map of esbuild's lines.
 * So tap's process-info hook does not list the .ts files a test loads
 * (`tap --changed` would not see them); coverage reads each module's inline
 * source map from Node at exit.
 */
export async function load (url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return await next(url, context)
  const path = fileURLToPath(url)
  const { code } = await transform(await readFile(path, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcemap: 'inline',
    sourcefile: path,
    tsconfigRaw: { compilerOptions }
  })
  return { format: 'module', source: code, shortCircuit: true }
}
