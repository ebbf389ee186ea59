/** Promise.withResolvers, which Node 20 lacks. */
export function promiseWithResolvers<T> (): { promise: Promise<T>, resolve: (value: T) => void } {
  // Assigned by the executor, which runs before the constructor returns.
  let settle!: (value: T) => void
  const promise = new Promise<T>((resolve) => { settle = resolve })
  return { promise, resolve: settle }
}
