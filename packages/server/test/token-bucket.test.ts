import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { TokenBucket } from '../src/limits/token-bucket.js'

test('starts full: the whole burst passes at once, then nothing', () => {
  const b = new TokenBucket(10, 5, 1000)
  for (let i = 0; i < 5; i++) assert.equal(b.take(1000), true, `take #${i + 1}`)
  assert.equal(b.take(1000), false)
  assert.equal(b.tokens(1000), 0)
})

test('refills continuously from elapsed time', () => {
  const b = new TokenBucket(10, 5, 0)
  for (let i = 0; i < 5; i++) b.take(0)
  assert.equal(b.tokens(50), 0.5)
  assert.equal(b.take(50), false, 'half a token is not a token')
  assert.equal(b.take(100), true, '100 ms at 10/s is one token')
  assert.equal(b.take(100), false)
  assert.ok(Math.abs(b.tokens(350) - 2.5) < 1e-9, `got ${b.tokens(350)}`)
})

test('never holds more than burst, however long it waits', () => {
  const b = new TokenBucket(100, 3, 0)
  b.take(0)
  assert.equal(b.tokens(1e9), 3)
  for (let i = 0; i < 3; i++) assert.equal(b.take(1e9), true)
  assert.equal(b.take(1e9), false)
})

test('take(n) is all or nothing', () => {
  const b = new TokenBucket(1, 4, 0)
  assert.equal(b.take(0, 3), true)
  assert.equal(b.take(0, 2), false)
  assert.equal(b.tokens(0), 1, 'a refused take(n) takes nothing')
  assert.equal(b.take(0, 5), false)
  assert.equal(b.take(0, 1), true)
})

test('a clock that goes backwards counts as no time passed, and refill resumes from the new reading', () => {
  const b = new TokenBucket(10, 2, 10_000)
  b.take(10_000)
  b.take(10_000)
  assert.equal(b.tokens(5_000), 0, 'stepping back 5 s credits nothing')
  assert.equal(b.take(5_000), false)
  // Rebased on 5000: 100 ms later is one token, not "frozen until 10000".
  assert.equal(b.take(5_100), true)
  assert.equal(b.take(5_100), false)
})

test('a NaN reading does not freeze the bucket', () => {
  const b = new TokenBucket(10, 1, 0)
  b.take(0)
  assert.equal(b.take(Number.NaN), false)
  assert.equal(b.take(100), true)
})

test('rejects invalid parameters with a TypeError', () => {
  assert.throws(() => new TokenBucket(-1, 5), TypeError)
  assert.throws(() => new TokenBucket(Number.NaN, 5), TypeError)
  assert.throws(() => new TokenBucket(Infinity, 5), TypeError)
  assert.throws(() => new TokenBucket(1, 0), TypeError)
  assert.throws(() => new TokenBucket(1, Infinity), TypeError)
  assert.equal(new TokenBucket(0, 1).perSecond, 0, 'a zero rate is a valid lifetime budget')
})

const bucketParams = fc.record({
  perSecond: fc.integer({ min: 1, max: 1000 }),
  burst: fc.integer({ min: 1, max: 50 }),
})

test('property: tokens accepted never exceed burst + rate × elapsed, even with backward clock steps', () => {
  fc.assert(
    fc.property(
      bucketParams,
      fc.array(fc.record({ dt: fc.double({ min: -200, max: 500, noNaN: true }), n: fc.integer({ min: 1, max: 5 }) }), {
        maxLength: 200,
      }),
      ({ perSecond, burst }, calls) => {
        const start = 1_000
        const b = new TokenBucket(perSecond, burst, start)
        let now = start
        // Only forward movement of the clock may earn tokens.
        let forward = 0
        let accepted = 0
        for (const { dt, n } of calls) {
          now += dt
          if (dt > 0) forward += dt
          if (b.take(now, n)) accepted += n
          const bound = burst + (perSecond * forward) / 1000
          if (accepted > bound + 1e-6) return false
          if (b.tokens(now) > burst) return false
        }
        return true
      },
    ),
  )
})

test('property: a client that stays within the rate is never refused', () => {
  fc.assert(
    fc.property(bucketParams, fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { maxLength: 100 }), ({ perSecond, burst }, extras) => {
      const b = new TokenBucket(perSecond, burst, 0)
      const interval = 1000 / perSecond
      let now = 0
      for (const extra of extras) {
        // Slightly more than one token's worth between takes, so float rounding cannot matter.
        now += interval * 1.000001 + extra
        if (!b.take(now)) return false
      }
      return true
    }),
  )
})
