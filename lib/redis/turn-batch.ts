/**
 * How long a busy node lets the requests of one kind gather before it sends
 * the next batch. A turn of the event loop does not always hold many: a node
 * that shares its core, or whose handshakes arrive evenly, turns over every
 * few of them, and each turn would send its own commands. Short next to the
 * round trip of any phone's handshake.
 */
export const BUSY_SPACING_MS = 2

/**
 * When the next batch of one kind goes out: at the end of this turn, unless
 * the previous one went out less than `spacingMs` ago; then once that long
 * has passed. An idle node sends a lone request at once; a busy one sends one
 * batch per `spacingMs` of whatever came meanwhile, so its commands grow with
 * time rather than with the requests.
 */
export class FlushPacer {
  readonly #spacingMs: number
  #lastFlushAt = -Infinity

  constructor (spacingMs: number) {
    this.#spacingMs = spacingMs
  }

  schedule (flush: () => void): void {
    const wait = this.#lastFlushAt + this.#spacingMs - performance.now()
    if (wait > 0) setTimeout(flush, wait)
    else setImmediate(flush)
  }

  /** A batch goes out now. */
  flushed (): void {
    if (this.#spacingMs > 0) this.#lastFlushAt = performance.now()
  }
}

/**
 * Requests answered together by one call: a node accepting thousands of
 * connects in a reconnect storm makes one Redis round trip for many of them
 * rather than one each. By default a batch holds the requests of one turn of
 * the event loop (under load a turn holds many, so batches grow with the
 * load, and an idle node still sends a lone request at once); with
 * `spacingMs`, also what comes until that long after the previous batch
 * (FlushPacer). Work that no one waits on closely may wait `waitMs` longer
 * to share a batch with more.
 */
export class TurnBatch<Input, Output> {
  readonly #run: (inputs: Input[]) => Promise<Output[]>
  readonly #waitMs: number
  readonly #pacer: FlushPacer
  #pending: Array<{ input: Input, resolve: (output: Output) => void, reject: (error: unknown) => void }> = []

  /** `run` answers the inputs in their order, or fails them all. */
  constructor (run: (inputs: Input[]) => Promise<Output[]>, { waitMs = 0, spacingMs = 0 }: BatchTiming = {}) {
    this.#run = run
    this.#waitMs = waitMs
    this.#pacer = new FlushPacer(spacingMs)
  }

  add (input: Input): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      if (this.#pending.push({ input, resolve, reject }) > 1) return
      if (this.#waitMs === 0) this.#pacer.schedule(() => { this.#flush() })
      else setTimeout(() => { this.#flush() }, this.#waitMs)
    })
  }

  async #flush (): Promise<void> {
    this.#pacer.flushed()
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

/** When a batch goes out: see TurnBatch. */
export interface BatchTiming {
  waitMs?: number
  spacingMs?: number
}
