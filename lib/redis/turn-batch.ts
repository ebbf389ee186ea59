/**
 * Requests answered together by one call: a node accepting thousands of
 * connects in a reconnect storm makes one Redis round trip for many of them
 * rather than one each. By default a batch holds the requests of one turn of
 * the event loop (under load a turn holds many, so batches grow with the
 * load, and an idle node still sends a lone request at once). Work that no
 * one waits on closely may wait `waitMs` longer to share a batch with more.
 */
export class TurnBatch<Input, Output> {
  readonly #run: (inputs: Input[]) => Promise<Output[]>
  readonly #waitMs: number
  #pending: Array<{ input: Input, resolve: (output: Output) => void, reject: (error: unknown) => void }> = []

  /** `run` answers the inputs in their order, or fails them all. */
  constructor (run: (inputs: Input[]) => Promise<Output[]>, { waitMs = 0 }: { waitMs?: number } = {}) {
    this.#run = run
    this.#waitMs = waitMs
  }

  async add (input: Input): Promise<Output> {
    return await new Promise<Output>((resolve, reject) => {
      if (this.#pending.push({ input, resolve, reject }) > 1) return
      if (this.#waitMs === 0) setImmediate(() => { this.#flush() })
      else setTimeout(() => { this.#flush() }, this.#waitMs)
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
