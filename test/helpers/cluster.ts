import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RealtimeOptions } from '../../lib/index.js'
import { CLAIM_SCRIPT } from '../../lib/node/generations.js'
import { REDIS_URL, startApp, uniquePrefix, type TestApp } from './app.js'

/** `count` nodes of one deployment: same Redis, same key prefix, each on its own port. */
export async function startNodes (t: Test, count: number, options: RealtimeOptions = {}): Promise<TestApp[]> {
  const keyPrefix = options.keyPrefix ?? uniquePrefix()
  const nodes: TestApp[] = []
  for (let index = 0; index < count; index++) {
    const node = await startApp({ redis: REDIS_URL, keyPrefix, limits: { maxConnectionsPerIp: 0 }, cluster: { nodeId: `node-${index}` }, ...options })
    nodes.push(node)
  }
  t.teardown(async () => { await Promise.all(nodes.map(async (node) => await node.app.close())) })
  return nodes
}

export async function waitFor (condition: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Runs `first` in place of the start of the plugin's first generation claim
 * (its EVALSHA, the script that claims a turn's generations, sent on `redis`): it may wait, or throw to make the claim fail. Later
 * claims go straight through. Returns how many claims were made.
 */
export function interceptFirstClaim (redis: Redis, first: () => Promise<void>): () => number {
  let claims = 0
  // A batch's command goes out through sendCommand (lib/redis/send.ts), not the client's methods.
  const realSend = redis.sendCommand.bind(redis)
  redis.sendCommand = (command, stream) => {
    if (command.name !== 'evalsha' || command.args[0] !== CLAIM_SCRIPT.sha || ++claims !== 1) return realSend(command, stream)
    first().then(() => realSend(command, stream), (error: Error) => command.reject(error))
    return command.promise
  }
  return () => claims
}
