import type { FastifyInstance } from 'fastify'

/**
 * What the plugin created, it closes, in one place. Each part registers its
 * close as soon as it exists; `app.close()` (or a registration that fails
 * later) runs them newest first, so a part closes before what it was built
 * on. A Redis client the user passed is never registered here.
 */
export class Shutdown {
  readonly #steps: Array<() => unknown> = []

  constructor (fastify: FastifyInstance) {
    fastify.addHook('onClose', async () => {
      for (const step of this.#steps.reverse()) await step()
    })
  }

  /** Runs `close` at shutdown, before everything registered earlier. */
  own (close: () => unknown): void {
    this.#steps.push(close)
  }

  /** Adds a listener to the server for the plugin's lifetime (`prepend`: before Fastify's own). */
  listen (emitter: NodeJS.EventEmitter, event: string, listener: (...args: any[]) => void, prepend = false): void {
    if (prepend) emitter.prependListener(event, listener)
    else emitter.on(event, listener)
    this.own(() => emitter.removeListener(event, listener))
  }
}
