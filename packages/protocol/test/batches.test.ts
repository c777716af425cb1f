// How a client splits what it has queued into frames (batches() in codec.ts): at most maxBatch
// messages per frame and about 60 KiB per frame, so that a frame stays under the server's
// default payload limit (64 KiB), in the order queued, and a message larger than that goes alone.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { batches } from '../src/codec.js'

/** A message of `bytes` bytes whose first byte says which one it is. */
const part = (index: number, bytes: number): Uint8Array => new Uint8Array(bytes).fill(index % 256, 0, 1)
const sizes = (frames: Uint8Array[][]): number[][] => frames.map((f) => f.map((p) => p.byteLength))
const order = (frames: Uint8Array[][]): number[] => frames.flat().map((p) => p[0] as number)

/** What a frame weighs once joined: its messages and one separator between each two. */
const frameBytes = (frame: Uint8Array[]): number => frame.reduce((n, p) => n + p.byteLength, 0) + frame.length - 1

describe('client frames: batches of queued messages', () => {
  test('nothing queued is no frame; one message is one frame', () => {
    assert.deepEqual(batches([], 100), [])
    const one = part(1, 10)
    const frames = batches([one], 100)
    assert.equal(frames.length, 1)
    assert.equal(frames[0]?.[0], one, 'the message itself, not a copy')
  })

  test('at most maxBatch messages per frame, exactly maxBatch when more are queued, in order', () => {
    const parts = Array.from({ length: 7 }, (_, i) => part(i, 10))
    assert.deepEqual(sizes(batches(parts, 3)), [[10, 10, 10], [10, 10, 10], [10]])
    assert.deepEqual(order(batches(parts, 3)), [0, 1, 2, 3, 4, 5, 6])
    assert.deepEqual(sizes(batches(parts, 1)), [[10], [10], [10], [10], [10], [10], [10]])
    assert.deepEqual(sizes(batches(parts, 7)), [[10, 10, 10, 10, 10, 10, 10]])
    assert.deepEqual(sizes(batches(parts, 100)), [[10, 10, 10, 10, 10, 10, 10]])
  })

  test('a frame holds about 60 KiB: a message that would take it past 61,440 bytes (separators counted) starts the next', () => {
    // Two of 30,719 bytes, each counted with its separator: 61,440 together, which still fits.
    assert.deepEqual(sizes(batches([part(0, 30_719), part(1, 30_719), part(2, 1)], 100)), [[30_719, 30_719], [1]])
    // One byte more and the second goes to a frame of its own.
    assert.deepEqual(sizes(batches([part(0, 30_720), part(1, 30_720)], 100)), [[30_720], [30_720]])
    // Many small ones fill frames up to the bound and no further.
    const small = Array.from({ length: 1000 }, (_, i) => part(i, 199))
    const frames = batches(small, 1000)
    assert.equal(frames.length, 4)
    for (const f of frames.slice(0, -1)) {
      assert.equal(f.length, 307, '307 × 200 = 61,400 bytes; one more would pass 61,440')
      assert.ok(frameBytes(f) <= 61_440)
    }
    assert.deepEqual(order(frames), small.map((_, i) => i % 256))
  })

  test('a message larger than the bound still goes, alone, neither split nor dropped', () => {
    const big = part(9, 100_000)
    assert.deepEqual(sizes(batches([part(0, 5), big, part(1, 5)], 100)), [[5], [100_000], [5]])
    assert.deepEqual(sizes(batches([big, big], 100)), [[100_000], [100_000]])
  })
})
