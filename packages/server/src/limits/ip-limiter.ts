import { TokenBucket } from './token-bucket.js'

/** Per-IP admission limits, checked at the WebSocket upgrade. */
export interface IpLimiterOptions {
  /** Live connections one IP may hold; `Infinity` disables the cap. */
  maxConnectionsPerIp: number
  /** New connection attempts per IP, as a token bucket. */
  connectRate: { perSecond: number; burst: number }
  /**
   * An IP with no live connection is forgotten by `sweep()` after this long without an attempt,
   * even if its bucket has not refilled yet (only matters for very slow refill rates), in ms.
   * @default 60000
   */
  idleMs?: number
}

export type IpAdmission = 'ok' | 'too_many_connections' | 'rate_limited'

const DEFAULT_IDLE_MS = 60_000

/**
 * One object per IP: the entry is its own bucket, so a flood of distinct addresses costs one
 * allocation each rather than two.
 */
class IpEntry extends TokenBucket {
  conns = 0
  /** Time of the last acquire(), for the idle rule of sweep(). */
  seen: number

  constructor(perSecond: number, burst: number, now: number) {
    super(perSecond, burst, now)
    this.seen = now
  }
}

/**
 * `::ffff:1.2.3.4` is how a dual-stack socket reports an IPv4 peer. Without folding it, one client
 * would have two identities (and two sets of limits) depending on which listener it reached.
 */
export function normalizeIp(ip: string): string {
  if (ip.length > 7 && ip.charCodeAt(0) === 58 /* : */ && ip.charCodeAt(1) === 58) {
    const prefix = ip.slice(0, 7).toLowerCase()
    if (prefix === '::ffff:' && ip.indexOf('.', 7) !== -1) return ip.slice(7)
  }
  return ip
}

/**
 * Per-IP connection cap and connection-rate cap.
 *
 * Memory is bounded by `sweep()`: an entry only has to outlive its IP's last connection until its
 * bucket is full again, because a full bucket with no connections is indistinguishable from no
 * entry at all. Forgetting it loses nothing, so a flood of distinct source addresses leaves behind
 * at most what arrived within one refill time (or `idleMs`, whichever is shorter).
 */
export class IpLimiter {
  private readonly entries = new Map<string, IpEntry>()
  private readonly maxConns: number
  private readonly perSecond: number
  private readonly burst: number
  private readonly idleMs: number

  constructor(options: IpLimiterOptions) {
    const { maxConnectionsPerIp: max, connectRate, idleMs = DEFAULT_IDLE_MS } = options
    if (typeof max !== 'number' || !(max >= 1) || !(Number.isInteger(max) || max === Infinity)) {
      throw new TypeError(`holdfast: option "maxConnectionsPerIp" must be a positive integer, got ${String(max)}`)
    }
    if (typeof connectRate !== 'object' || connectRate === null) {
      throw new TypeError('holdfast: option "connectRate" must be { perSecond, burst }')
    }
    const { perSecond, burst } = connectRate
    if (typeof perSecond !== 'number' || !(perSecond > 0) || perSecond === Infinity) {
      throw new TypeError(`holdfast: option "connectRate.perSecond" must be a positive number, got ${String(perSecond)}`)
    }
    // Below 1 no attempt could ever pass.
    if (typeof burst !== 'number' || !(burst >= 1) || burst === Infinity) {
      throw new TypeError(`holdfast: option "connectRate.burst" must be a number >= 1, got ${String(burst)}`)
    }
    if (typeof idleMs !== 'number' || !(idleMs >= 0)) {
      throw new TypeError(`holdfast: option "idleMs" must be a non-negative number, got ${String(idleMs)}`)
    }
    this.maxConns = max
    this.perSecond = perSecond
    this.burst = burst
    this.idleMs = idleMs
  }

  /** IPs currently remembered (with live connections or a bucket still refilling). */
  get size(): number {
    return this.entries.size
  }

  /** Live connections counted for `ip`. */
  connections(ip: string): number {
    return this.entries.get(normalizeIp(ip))?.conns ?? 0
  }

  /**
   * Admits one connection attempt from `ip`. On 'ok' the connection is counted and the caller
   * must `release(ip)` exactly once when it ends; on a refusal nothing is counted.
   */
  acquire(ip: string, now: number): IpAdmission {
    const key = normalizeIp(ip)
    let entry = this.entries.get(key)
    if (entry === undefined) {
      entry = new IpEntry(this.perSecond, this.burst, now)
      this.entries.set(key, entry)
    }
    entry.seen = now
    // The rate token is taken before the cap is checked, so an attempt refused for
    // too_many_connections still costs a token. A client that sits at its cap and retries in a
    // loop then drains its bucket and gets rate_limited too; otherwise it could hammer the
    // upgrade path (TLS, HTTP parsing, auth) forever at no cost, since the cap answer is free.
    if (!entry.take(now)) return 'rate_limited'
    if (entry.conns >= this.maxConns) return 'too_many_connections'
    entry.conns++
    return 'ok'
  }

  /** Ends one connection counted by `acquire()`. Unknown IPs and extra releases are ignored. */
  release(ip: string): void {
    const entry = this.entries.get(normalizeIp(ip))
    if (entry !== undefined && entry.conns > 0) entry.conns--
  }

  /**
   * Forgets IPs with no live connection whose bucket is full or that have been idle longer than
   * `idleMs`. O(entries): call it every few seconds, not per attempt.
   */
  sweep(now: number): void {
    const idleMs = this.idleMs
    // Deleting the current key while iterating a Map is well defined in JS.
    for (const [key, entry] of this.entries) {
      if (entry.conns === 0 && (now - entry.seen > idleMs || entry.tokens(now) >= entry.burst)) {
        this.entries.delete(key)
      }
    }
  }
}
