export interface LoginLimiterOptions {
  /** Login attempts one address may make in a burst. @default 5 */
  burst?: number
  /** One more attempt is allowed this often, in ms. @default 12000 (5 a minute) */
  refillMs?: number
  /** Addresses tracked at most; beyond it the fullest buckets are forgotten first. @default 10000 */
  maxTracked?: number
}

const DEFAULTS = { burst: 5, refillMs: 12_000, maxTracked: 10_000 } as const

interface Bucket {
  tokens: number
  at: number
}

/**
 * Why not @fastify/rate-limit: its window counts every request, so an admin who logs in and out
 * spends the same budget as a guesser, and its refusal is its own JSON error where the login form
 * must show the page again with the reason. What it would bring (a bounded LRU of addresses, a
 * Retry-After) is the few lines below.
 *
 * Limits login attempts per client address (a token bucket each). Every attempt takes a token
 * before the secret is even compared, so parallel guesses cannot slip past the check, and a
 * successful login gives it back. Per process: with N workers or nodes an address gets N buckets,
 * which still caps a guesser at a handful of tries a minute per node.
 */
export class LoginLimiter {
  readonly #burst: number
  readonly #refillMs: number
  readonly #maxTracked: number
  readonly #buckets = new Map<string, Bucket>()

  constructor(opts: LoginLimiterOptions = {}) {
    this.#burst = opts.burst ?? DEFAULTS.burst
    this.#refillMs = opts.refillMs ?? DEFAULTS.refillMs
    this.#maxTracked = opts.maxTracked ?? DEFAULTS.maxTracked
  }

  #refilled(ip: string, now: number): Bucket {
    const b = this.#buckets.get(ip)
    if (b === undefined) return { tokens: this.#burst, at: now }
    const tokens = Math.min(this.#burst, b.tokens + (now - b.at) / this.#refillMs)
    return { tokens, at: now }
  }

  /** Take an attempt; false means refused (answer 429 without looking at the secret). */
  take(ip: string, now: number): boolean {
    const b = this.#refilled(ip, now)
    if (b.tokens < 1) {
      this.#store(ip, b)
      return false
    }
    b.tokens -= 1
    this.#store(ip, b)
    if (this.#buckets.size > this.#maxTracked) this.#sweep(now)
    return true
  }

  /** A successful login does not count against the address. */
  giveBack(ip: string, now: number): void {
    const b = this.#refilled(ip, now)
    b.tokens = Math.min(this.#burst, b.tokens + 1)
    this.#store(ip, b)
  }

  /** Re-inserted, so that the Map's order is least recently used first (what #sweep drops). */
  #store(ip: string, b: Bucket): void {
    this.#buckets.delete(ip)
    this.#buckets.set(ip, b)
  }

  /** Seconds until the address may try again (for Retry-After). */
  retryAfterSec(ip: string, now: number): number {
    const b = this.#refilled(ip, now)
    return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) * this.#refillMs) / 1000)
  }

  /** Forget full buckets (they say nothing), then, if still too many, the oldest entries. */
  #sweep(now: number): void {
    for (const [ip, b] of this.#buckets) {
      if (b.tokens + (now - b.at) / this.#refillMs >= this.#burst) this.#buckets.delete(ip)
    }
    for (const ip of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxTracked) break
      this.#buckets.delete(ip)
    }
  }
}
