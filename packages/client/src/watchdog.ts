/**
 * Fires when nothing was heard for `timeoutMs`. Frames may arrive at 10k/s, so hearing one only
 * stores a timestamp; a single timer wakes at the earliest possible deadline, checks the timestamp,
 * and re-arms for the remainder instead of being cleared and re-created per frame.
 */
export class Watchdog {
  #lastHeard = 0
  #timeoutMs = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly onTimeout: (silentForMs: number) => void) {}

  get running(): boolean {
    return this.#timer !== undefined
  }

  start(timeoutMs: number): void {
    this.stop()
    this.#timeoutMs = timeoutMs
    this.#lastHeard = Date.now()
    this.#arm(timeoutMs)
  }

  /** Something arrived from the server. */
  heard(): void {
    this.#lastHeard = Date.now()
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => {
      const silent = Date.now() - this.#lastHeard
      if (silent >= this.#timeoutMs) {
        this.#timer = undefined
        this.onTimeout(silent)
      } else {
        this.#arm(this.#timeoutMs - silent)
      }
    }, delayMs)
  }
}
