import { build } from 'esbuild'
import { readdirSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import ts from 'typescript'

const DIR = new URL('../../lib/client/', import.meta.url)
const files = readdirSync(DIR).filter((name) => name.endsWith('.ts')).sort()
const source = (name: string): string => readFileSync(new URL(name, DIR), 'utf8')

t.test('the SDK is standalone: at runtime it imports only its own files, and no Node API', async (t) => {
  for (const name of files) {
    const text = source(name)
    const imports = [...text.matchAll(/^(?:import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'/gm)]
    for (const [, typeOnly, from] of imports) {
      if (typeOnly !== undefined) t.ok(from.startsWith('./') || from === '../channels/declarations.js', `${name}: type import of ${from}`)
      else t.match(from, /^\.\/[a-z-]+\.js$/, `${name}: runtime import of ${from} is a file of the SDK`)
    }
    t.notMatch(text, /\bnode:|\brequire\(|\bprocess\.|\bBuffer\b|\bglobal\./, `${name}: no Node API`)
  }
})

t.test('size: the SDK gzipped, as the TypeScript compiler emits it without comments (and minified with esbuild)', async (t) => {
  const emitted = files.map((name) => ts.transpileModule(source(name), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, removeComments: true, verbatimModuleSyntax: false }
  }).outputText).join('\n')
  const gzipped = gzipSync(emitted, { level: 9 }).length
  t.comment(`lib/client: ${emitted.length} bytes emitted, ${gzipped} bytes gzipped (not minified)`)
  t.ok(gzipped < 6 * 1024, 'under 6 KiB gzipped before minification')
  const result = await build({ entryPoints: [new URL('index.ts', DIR).pathname], bundle: true, minify: true, format: 'esm', write: false, logLevel: 'silent' })
  const minified = result.outputFiles[0].text
  const size = gzipSync(minified, { level: 9 }).length
  t.comment(`lib/client minified: ${minified.length} bytes, ${size} bytes gzipped`)
  t.ok(size <= 5 * 1024, 'at most 5 KiB minified and gzipped')
})
