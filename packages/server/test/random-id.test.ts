import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { randomBase64url, randomHex } from '../src/random-id.js'

describe('random ids from the pooled buffer', () => {
  it('have the requested size and alphabet', () => {
    for (let i = 0; i < 100; i++) {
      assert.match(randomHex(16), /^[0-9a-f]{32}$/)
      assert.match(randomBase64url(12), /^[A-Za-z0-9_-]{16}$/)
    }
  })

  it('never repeat across many pool refills', () => {
    // 20,000 × 16 bytes is 78 refills of the 4 KiB pool: a slice handed out twice would collide.
    const seen = new Set<string>()
    for (let i = 0; i < 20_000; i++) seen.add(randomHex(16))
    assert.equal(seen.size, 20_000)
  })

  it('use every hex digit about equally (no byte left unfilled)', () => {
    const counts = new Map<string, number>()
    for (let i = 0; i < 4000; i++) for (const c of randomHex(16)) counts.set(c, (counts.get(c) ?? 0) + 1)
    assert.equal(counts.size, 16)
    // 128,000 digits: each expected 8,000; a stuck or zeroed pool region would skew one far off.
    for (const [digit, n] of counts) assert.ok(n > 7000 && n < 9000, `digit ${digit} appeared ${n} times`)
  })

  it('refuses a request larger than the pool', () => {
    assert.throws(() => randomHex(5000), RangeError)
  })
})
