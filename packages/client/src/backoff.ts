/**
 * Capped exponential backoff with full jitter:
 *
 *   cap   = min(maxMs, minMs · 2^min(attempt, 30))
 *   delay = minMs + random · (cap − minMs)
 *
 * Why this shape:
 * - The exponent is capped at 30 before `2^x` is taken, so no attempt count (10^6, Infinity)
 *   overflows the arithmetic into Infinity, NaN or 0. Socket.IO computes `ms · factor^attempts`
 *   unbounded and gets 0 ms delays after ~1,000 attempts.
 * - Jitter is applied after the cap, over the whole window [minMs, cap), so a fleet that has been
 *   failing for a while stays spread over [minMs, maxMs) instead of collapsing onto maxMs (Socket.IO
 *   jitters before capping, and every client then retries at exactly the cap).
 * - The floor is minMs, so a positive minimum never yields a zero delay (no hot reconnect loop).
 *
 * The client counts reconnect attempts from 1, so even the first reconnect is spread over
 * [minMs, 2·minMs).
 *
 * @param attempt number of the attempt (0, 1, 2, …); negative or NaN counts as 0
 * @param random  a function returning [0, 1), injectable for tests
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponent = attempt > 0 ? Math.min(Math.floor(attempt), 30) : 0
  const cap = Math.min(maxMs, minMs * 2 ** exponent)
  const r = random()
  // A misbehaving random source must not break the bounds.
  const unit = r >= 0 && r < 1 ? r : 0
  const delay = minMs + unit * Math.max(0, cap - minMs)
  // Rounding can carry minMs + unit·(cap − minMs) up to the cap itself when unit is just below 1
  // (1 − 2^-53 does it for most bounds): the window stays half-open, [minMs, cap).
  return delay < cap || cap <= minMs ? delay : below(cap)
}

const f64 = new Float64Array(1)
const u64 = new BigUint64Array(f64.buffer)

/** The largest double below a positive finite `x`. */
function below(x: number): number {
  f64[0] = x
  u64[0] = (u64[0] as bigint) - 1n
  return f64[0] as number
}
