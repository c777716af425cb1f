// The backoff window is half-open, [min, cap): the cap itself is never drawn, even when floating
// point rounding of min + r·(cap − min) for the largest r below 1 lands on it. A closed window
// (cap equal to min: the first attempt, or max ≤ min) gives exactly min.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { backoffDelay } from '../src/backoff.js'

/** The largest double below 1: what Math.random may return at most. */
const TOP = 1 - 2 ** -53

const capOf = (attempt: number, min: number, max: number): number => Math.min(max, min * 2 ** Math.min(attempt, 30))

test('the largest random value gives a delay strictly below the cap, as close to it as a double gets', () => {
  // Bounds where min + TOP·(cap − min) rounds up to the cap.
  for (const [attempt, min, max] of [
    [1, 1, 3],
    [1, 500, 20_000],
    [5, 500, 20_000],
    [40, 500, 20_000],
    [3, 100, 30_000],
  ] as const) {
    const cap = capOf(attempt, min, max)
    const d = backoffDelay(attempt, min, max, () => TOP)
    assert.ok(d < cap, `attempt ${attempt}, [${min}, ${max}]: ${d} is not below the cap ${cap}`)
    assert.ok(d >= min)
    assert.ok(cap - d <= cap * Number.EPSILON, `${d} is further from the cap ${cap} than rounding explains`)
  }
})

test('property: any bounds and any random value in [0, 1): min ≤ delay < cap when cap > min, delay = min otherwise', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.integer({ min: 1, max: 60_000 }),
      fc.integer({ min: 0, max: 600_000 }),
      fc.oneof(fc.constant(TOP), fc.constant(0), fc.double({ min: 0.999, max: 1, maxExcluded: true, noNaN: true }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })),
      (attempt, min, extra, r) => {
        const max = min + extra
        const cap = capOf(attempt, min, max)
        const d = backoffDelay(attempt, min, max, () => r)
        if (cap > min) assert.ok(d >= min && d < cap, `${d} outside [${min}, ${cap})`)
        else assert.equal(d, min)
      },
    ),
    { numRuns: 5000 },
  )
})

test('a closed window gives min exactly, whatever the random value', () => {
  for (const r of [0, 0.5, TOP]) {
    assert.equal(backoffDelay(0, 500, 20_000, () => r), 500, 'attempt 0: cap = min')
    assert.equal(backoffDelay(7, 500, 500, () => r), 500, 'max = min')
    assert.equal(backoffDelay(7, 500, 100, () => r), 500, 'max below min: the floor wins')
  }
})

test('a random source outside [0, 1) counts as 0: the delay is min, never the cap or beyond', () => {
  for (const r of [1, 2, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    assert.equal(backoffDelay(40, 500, 20_000, () => r), 500, String(r))
  }
})
