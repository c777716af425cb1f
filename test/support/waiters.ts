/**
 * Waiting on a log of events: `until` resolves once a condition over what was recorded holds
 * (checked at once and after every `notify`, i.e. every event), and rejects after a bound with a
 * message built at that moment, so a missing event fails the test instead of hanging it.
 */
export class Waiters {
  readonly #pending = new Set<() => void>()

  until(cond: () => boolean, ms: number, timedOut: () => string): Promise<void> {
    if (cond()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return
        clearTimeout(timer)
        this.#pending.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#pending.delete(check)
        reject(new Error(timedOut()))
      }, ms)
      this.#pending.add(check)
    })
  }

  /** An event was recorded: re-check every pending condition. */
  notify(): void {
    for (const check of [...this.#pending]) check()
  }
}
