/**
 * Requests made within one turn of the event loop, answered by one call: a
 * node accepting thousands of connects in a reconnect storm makes one Redis
 * round trip per turn for all of them rather than one each. Under load a
 * turn holds many requests, so the batches grow with the load; an idle node
 * still sends a lone request at once (the next turn).
 */
export class TurnBatch<Input, Output> {
  readonly #run: (inputs: Input[]) => Promise<Output[]>
  #pending: Array<{ input: Input, resolve: (output: Output) => void, reject: (error: unknown) => void }> = []

  /** `run` answers the inputs in their order, or fails them all. */
  constructor (run: (inputs: Input[]) => Promise<Output[]>) {
    this.#run = run
  }

  async add (input: Input): Promise<Output> {
    return await new Promise<Output>((resolve, reject) => {
      if (this.#pending.push({ input, resolve, reject }) === 1) setImmediate(() => { this.#flush() })
    })
  }

  async #flush (): Promise<void> {
    const batch = this.#pending
    this.#pending = []
    try {
      const outputs = await this.#run(batch.map((request) => request.input))
      batch.forEach((request, index) => request.resolve(outputs[index] as Output))
    } catch (error) {
      for (const request of batch) request.reject(error)
    }
  }
}
