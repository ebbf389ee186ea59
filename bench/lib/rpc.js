// Child side of the orchestrator's IPC: `{ id, cmd, ...args }` in, `{ id, result }` or `{ id, error }` out.

/**
 * Serves `handlers[cmd](message)` (sync or async) over the IPC channel, and
 * exits when the orchestrator goes away, so no child outlives a run.
 */
export function serve (handlers) {
  process.on('message', async (message) => {
    if (message === null || typeof message !== 'object' || message.id === undefined) return
    const handler = handlers[message.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
      const result = await handler(message)
      process.send({ id: message.id, result: result ?? null })
    } catch (error) {
      process.send({ id: message.id, error: error?.stack ?? String(error) })
    }
  })
  process.on('disconnect', () => process.exit(0))
}

/** Tells the orchestrator this child is up (with e.g. its port). */
export function announce (info) {
  process.send({ type: 'ready', ...info })
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
