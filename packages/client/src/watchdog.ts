/**
 * A timer that fires later than this past its due time was not delayed by the server's silence
 * but by our own event loop: a throttled background tab (Chromium wakes timers once a second, or
 * once a minute after five minutes hidden), a frozen page, a suspended laptop.
 */
const LATE_MS = 1000

/**
 * Fires when nothing was heard for `timeoutMs`. Frames may arrive at 10k/s, so hearing one only
 * stores a timestamp; a single timer wakes at the earliest possible deadline, checks the timestamp,
 * and re-arms for the remainder instead of being cleared and re-created per frame.
 *
 * When the timer itself comes late, the measured silence says nothing about the server (frames may
 * be waiting, unread, behind the stalled loop), so instead of declaring the connection dead it asks
 * for a check (`onSuspect`: a ping with a short deadline) and starts counting afresh.
 */
export class Watchdog {
  #lastHeard = 0
  #timeoutMs = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  readonly #onTimeout: (silentForMs: number) => void
  readonly #onSuspect: (lateByMs: number) => void

  constructor(onTimeout: (silentForMs: number) => void, onSuspect: (lateByMs: number) => void = () => {}) {
    this.#onTimeout = onTimeout
    this.#onSuspect = onSuspect
  }

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
    const due = Date.now() + delayMs
    this.#timer = setTimeout(() => {
      const now = Date.now()
      const silent = now - this.#lastHeard
      if (silent < this.#timeoutMs) {
        this.#arm(this.#timeoutMs - silent)
        return
      }
      const late = now - due
      if (late > LATE_MS) {
        this.#lastHeard = now
        this.#arm(this.#timeoutMs)
        this.#onSuspect(late)
        return
      }
      this.#timer = undefined
      this.#onTimeout(silent)
    }, delayMs)
  }
}
