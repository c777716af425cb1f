import type { ConnectionLimits } from '@holdfast/protocol'

/**
 * Most of the server's command budget the client plans to use. Our clock and the server's disagree
 * by the network's jitter (frames arrive in clumps), so a mirror of its bucket at 100% would still
 * be refused now and then; the retry path handles what slips through.
 */
const HEADROOM = 0.9

/**
 * A client-side mirror of the server's per-connection command bucket (from the connect result's
 * `limits`), so that flushing a large offline queue paces itself instead of being refused with
 * `rate_limited` and, past a burst of refusals, disconnected. Without limits it never waits.
 */
export class Pacer {
  #perMs = Number.POSITIVE_INFINITY
  #burst = Number.POSITIVE_INFINITY
  #level = Number.POSITIVE_INFINITY
  #last = 0

  /** A new connection: the server's bucket starts full. */
  reset(limits: ConnectionLimits | undefined): void {
    if (limits === undefined || !(limits.commandsPerSecond > 0) || !(limits.commandBurst >= 1)) {
      this.#perMs = Number.POSITIVE_INFINITY
      this.#burst = Number.POSITIVE_INFINITY
      this.#level = Number.POSITIVE_INFINITY
      return
    }
    this.#perMs = (limits.commandsPerSecond * HEADROOM) / 1000
    this.#burst = Math.max(1, Math.floor(limits.commandBurst * HEADROOM))
    this.#level = this.#burst
    this.#last = Date.now()
  }

  /** Take a token if one is there. */
  take(): boolean {
    this.#refill()
    if (this.#level < 1) return false
    this.#level -= 1
    return true
  }

  /** Spend a token even if none is left (commands that must go now: connect, subscribe); later ones wait longer. */
  consume(): void {
    this.#refill()
    this.#level -= 1
  }

  /** Milliseconds until a token is available (0 when one is). */
  waitMs(): number {
    this.#refill()
    return this.#level >= 1 ? 0 : Math.ceil((1 - this.#level) / this.#perMs)
  }

  #refill(): void {
    if (this.#perMs === Number.POSITIVE_INFINITY) return
    const now = Date.now()
    this.#level = Math.min(this.#burst, this.#level + (now - this.#last) * this.#perMs)
    this.#last = now
  }
}
