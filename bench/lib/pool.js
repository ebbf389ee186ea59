// Load generator side, shared by its own clients (loadgen.js) and the
// recovery scenario's (recovering-clients.js).
import { sleep } from './rpc.js'

/**
 * Runs `task(item)` over `items`, `concurrency` at a time, taking no new item
 * once `deadline` (a performance.now() time) has passed; counts failures by message.
 */
export async function pool (items, concurrency, task, deadline = Infinity) {
  const failures = {}
  let failed = 0
  let next = 0
  async function worker () {
    while (next < items.length && performance.now() < deadline) {
      const item = items[next++]
      try {
        await task(item)
      } catch (error) {
        failed++
        failures[error.message] = (failures[error.message] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker))
  return { failed, failures }
}

/**
 * Resolves once `done()` holds, or `progress()` (a count, a timestamp) has not
 * changed for `idleMs`, or `timeoutMs` passed; polled every `pollMs`.
 */
export async function waitForProgress ({ done, progress, timeoutMs, idleMs, pollMs }) {
  const started = performance.now()
  let seen = progress()
  let lastProgress = performance.now()
  while (!done() && performance.now() - started < timeoutMs) {
    if (progress() !== seen) {
      seen = progress()
      lastProgress = performance.now()
    } else if (performance.now() - lastProgress > idleMs) {
      break
    }
    await sleep(pollMs)
  }
}
