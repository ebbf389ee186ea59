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

/**
 * `./x.js` written in a .ts file names `./x.ts` when that is what exists (the
 * NodeNext convention tsc follows). Handed on rather than answered here, so
 * the hooks registered before these (tap's mocks) still see the import.
 */
export async function resolve (specifier, context, next) {
  if (RELATIVE.test(specifier) && specifier.endsWith('.js') && isTypeScript(context.parentURL)) {
    const typescript = `${specifier.slice(0, -3)}.ts`
    if (existsSync(fileURLToPath(new URL(typescript, context.parentURL)))) return await next(typescript, context)
  }
  return await next(specifier, context)
}

/**
 * A .ts file's source, types stripped, handed on to the next hooks as the
 * module's source: tap's process-info hook, registered before these, records
 * the file it loads from what it is given (the list of files a test loaded,
 * the inline source map for coverage).
 */
export async function load (url, context, next) {
  if (!url.startsWith('file:') || !isTypeScript(url)) return await next(url, context)
  const path = fileURLToPath(url)
  const { code } = await transform(await readFile(path, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcemap: 'inline',
    sourcefile: path,
    tsconfigRaw: { compilerOptions }
  })
  return await next(url, { ...context, format: 'module', source: code })
}

/** Whether `url` names a .ts file (a query, such as a mock's, aside). */
function isTypeScript (url) {
  return url !== undefined && new URL(url).pathname.endsWith('.ts')
}
