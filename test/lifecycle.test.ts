import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

t.test('after app.close() no timer, socket or Redis client is left: the process exits by itself', async (t) => {
  const script = fileURLToPath(new URL('./helpers/exit-by-itself.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (code, sig) => resolve([code, sig])))
  clearTimeout(killer)
  t.equal(signal, null, 'not killed: it exited by itself')
  t.equal(exitCode, 0)
  const report = JSON.parse(output.trim().split('\n').pop() as string)
  t.equal(report.code, 1001, 'the client was told the server is going away')
  // The only timer is the one the script reports from; stdio pipes belong to the test runner.
  t.same(report.resources.filter((resource: string) => resource !== 'TTYWrap' && resource !== 'PipeWrap'), ['Timeout'], 'no other handle or timer is left')
})
