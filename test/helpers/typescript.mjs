// `node --import=./test/helpers/typescript.mjs file.test.ts` runs a test file
// (tap passes it to every test process, see .taprc).
import { register } from 'node:module'

register('./typescript-hooks.mjs', import.meta.url)
