/**
 * A token bucket refilled lazily from the time that passed between calls.
 *
 * There is no timer: a node holds one bucket per connection (command rate) and one per remote IP
 * (connect rate), so the refill must cost nothing while nobody calls. The caller passes `now` in
 * milliseconds (performance.now() or Date.now(), but the same clock for the life of the bucket),
 * which keeps tests deterministic and lets a hot loop read the clock once for many buckets.
 *
 * Four numbers per instance and no allocation in `take()`: it sits on the per-message path.
 */
export class TokenBucket {
  /** Largest number of tokens the bucket holds; also its initial content. */
  readonly burst: number
  /** Tokens added per millisecond (perSecond / 1000, computed once). */
  private readonly perMs: number
  private level: number
  private last: number

  constructor(perSecond: number, burst: number, now = 0) {
    if (typeof perSecond !== 'number' || !(perSecond >= 0) || perSecond === Infinity) {
      throw new TypeError(`holdfast: token bucket perSecond must be a finite non-negative number, got ${String(perSecond)}`)
    }
    if (typeof burst !== 'number' || !(burst > 0) || burst === Infinity) {
      throw new TypeError(`holdfast: token bucket burst must be a finite positive number, got ${String(burst)}`)
    }
    this.burst = burst
    this.perMs = perSecond / 1000
    // Full from the start: a fresh connection may use its whole burst at once.
    this.level = burst
    this.last = now
  }

  /** Tokens added per second. */
  get perSecond(): number {
    return this.perMs * 1000
  }

  /** Takes `n` tokens if all of them are available; takes nothing otherwise. */
  take(now: number, n = 1): boolean {
    this.refill(now)
    if (this.level < n) return false
    this.level -= n
    return true
  }

  /**
   * Takes `n` tokens whatever the level, which may go below zero: for a cost known only after the
   * work (the size of a reply), admitted while the level was positive and paid off by the refill.
   */
  spend(now: number, n: number): void {
    this.refill(now)
    this.level -= n
  }

  /** Tokens available at `now` (fractional: refill is continuous; negative after `spend`). */
  tokens(now: number): number {
    this.refill(now)
    return this.level
  }

  private refill(now: number): void {
    const elapsed = now - this.last
    // A clock that went backwards (Date.now() after an NTP step, or a caller mixing clocks) counts as
    // no time passed. We still move `last` back to `now`: keeping the old, later value would freeze
    // the refill until the clock caught up again, which for a step of an hour means an hour of
    // refusals. Rebasing can only credit time that really passes after the step.
    // A NaN `now` matches neither branch, so one bad reading cannot poison `last` for good.
    if (elapsed > 0) {
      const level = this.level + elapsed * this.perMs
      this.level = level > this.burst ? this.burst : level
      this.last = now
    } else if (elapsed < 0) {
      this.last = now
    }
  }
}
