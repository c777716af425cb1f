import { TokenBucket } from './token-bucket.js'

/**
 * One token bucket per key (a user, a session), created on first use and forgotten by `sweep()`
 * once full again: a full bucket is indistinguishable from a new one, so memory is bounded by the
 * keys active within one refill time.
 */
export class KeyedBuckets {
  readonly #buckets = new Map<string, TokenBucket>()
  readonly #perSecond: number
  readonly #burst: number

  constructor(perSecond: number, burst: number) {
    this.#perSecond = perSecond
    this.#burst = burst
  }

  /** Keys remembered (with a bucket still refilling). */
  get size(): number {
    return this.#buckets.size
  }

  /** Takes `n` tokens from `key`'s bucket if they are there. */
  take(key: string, now: number, n = 1): boolean {
    let b = this.#buckets.get(key)
    if (b === undefined) this.#buckets.set(key, (b = new TokenBucket(this.#perSecond, this.#burst, now)))
    return b.take(now, n)
  }

  /** Forget the buckets that are full again. O(keys): call it every few seconds. */
  sweep(now: number): void {
    for (const [key, b] of this.#buckets) if (b.tokens(now) >= this.#burst) this.#buckets.delete(key)
  }
}
