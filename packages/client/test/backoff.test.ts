import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { backoffDelay } from '../src/backoff.js'

const MIN = 500
const MAX = 20_000

// Attempt counts that break naive implementations: around the exponent cap (30), where 2^n
// overflows a 32-bit int (31/32), where a double overflows (1024+), and far beyond.
const EDGE_ATTEMPTS = [0, 1, 2, 29, 30, 31, 32, 53, 1000, 1023, 1024, 1075, 10_000, 999_999, 1_000_000]
const EDGE_RANDOMS = [0, Number.MIN_VALUE, 0.5, 1 - Number.EPSILON]

function assertSane(delay: number, min: number, max: number): void {
  assert.ok(Number.isFinite(delay), `delay ${delay} is not finite`)
  assert.ok(delay >= min && delay <= max, `delay ${delay} outside [${min}, ${max}]`)
  if (min > 0) assert.ok(delay > 0, 'delay is 0 with min > 0')
}

test('edges: every attempt count and random extreme stays finite, in [min, max], never 0', () => {
  for (const attempt of EDGE_ATTEMPTS) {
    for (const r of EDGE_RANDOMS) assertSane(backoffDelay(attempt, MIN, MAX, () => r), MIN, MAX)
  }
})

test('property: attempts 0..10^6, any bounds, any random value', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.integer({ min: 1, max: 60_000 }),
      fc.integer({ min: 0, max: 600_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, min, extra, r) => {
        const max = min + extra
        assertSane(backoffDelay(attempt, min, max, () => r), min, max)
      },
    ),
    { numRuns: 5000 },
  )
})

test('property: the window grows with the attempt and is capped at max', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), (attempt) => {
      const top = backoffDelay(attempt, MIN, MAX, () => 1 - Number.EPSILON)
      const expectedCap = Math.min(MAX, MIN * 2 ** Math.min(attempt, 30))
      assert.ok(top <= expectedCap && top > expectedCap - 1e-6 * expectedCap)
      assert.equal(backoffDelay(attempt, MIN, MAX, () => 0), MIN)
    }),
  )
})

test('spread at the cap: attempt 10^6 still jitters over the whole window', () => {
  // Socket.IO's backoff (engine.io-client/backo2) multiplies before capping and jitters around the
  // un-capped value: once that exceeds the cap every client retries at exactly 5000 ms, and after
  // ~1,000 attempts 2^n is Infinity, `Infinity - Infinity` is NaN and `NaN | 0` gives 0 ms: a hot
  // loop. Here the exponent is capped first and the jitter is applied inside [min, cap).
  const samples = Array.from({ length: 2000 }, () => backoffDelay(1_000_000, MIN, MAX))
  for (const d of samples) assertSane(d, MIN, MAX)
  const lo = Math.min(...samples)
  const hi = Math.max(...samples)
  assert.ok(hi - lo > 0.9 * (MAX - MIN), `spread ${hi - lo} too small`)
  assert.ok(new Set(samples).size > 1900, 'delays at the cap are not distinct')
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length
  assert.ok(Math.abs(mean - (MIN + MAX) / 2) < 0.1 * (MAX - MIN), `mean ${mean} is not centred`)
})

test('first reconnect (attempt 1) is spread over [min, 2·min)', () => {
  const samples = Array.from({ length: 500 }, () => backoffDelay(1, MIN, MAX))
  assert.ok(samples.every((d) => d >= MIN && d < 2 * MIN))
  assert.ok(Math.max(...samples) - Math.min(...samples) > 0.8 * MIN)
})

test('hostile inputs: NaN, negative and infinite attempts; a broken random source', () => {
  for (const attempt of [Number.NaN, -1, -1e9, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2.7]) {
    assertSane(backoffDelay(attempt, MIN, MAX), MIN, MAX)
  }
  for (const r of [1, 2, -0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assertSane(backoffDelay(40, MIN, MAX, () => r), MIN, MAX)
  }
  assert.equal(backoffDelay(1_000_000, 0, 0), 0)
  assertSane(backoffDelay(1_000_000, 1e300, 1e300), 1e300, 1e300)
})
