import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { checkConnection, MAX_HOLES, newSeqState, PreparedLog, recordDelivery, type SeqState } from '../src/bench/index.js'

/** Publications sent at t = 100, 110, 120... (seq k at 100 + 10k). */
function log(n: number, refused: number[] = []): PreparedLog {
  const t = new Float64Array(n)
  for (let i = 0; i < n; i++) t[i] = refused.includes(i) ? Number.NaN : 100 + 10 * i
  return new PreparedLog(t)
}
const tOf = (seq: number): number => 100 + 10 * seq

function subscribedAt(ackAt: number): SeqState {
  const s = newSeqState()
  s.ackAt = ackAt
  return s
}

function deliver(s: SeqState, seqs: number[]): void {
  for (const q of seqs) recordDelivery(s, q, tOf(q))
}

describe('bench sequence checker', () => {
  it('owes only what was published after the subscription was confirmed', () => {
    // Confirmed at 135: seq 0-3 (t 100-130) were published before; 4-9 are owed.
    const s = subscribedAt(135)
    deliver(s, [2, 3, 4, 5, 6, 7, 8, 9]) // 2 and 3 arrived anyway (the server subscribed earlier): not held against it
    assert.deepEqual(checkConnection(s, log(10), true), { owed: 6, lost: 0, inFlight: 0, cutOff: 0 })
    assert.equal(s.dups, 0)
  })

  it('counts a publication missing at the start of the owed range as lost', () => {
    const s = subscribedAt(135)
    deliver(s, [5, 6, 7, 8, 9]) // 4 was owed and never came
    assert.deepEqual(checkConnection(s, log(10), true), { owed: 6, lost: 1, inFlight: 0, cutOff: 0 })
  })

  it('counts a gap as lost and a repeat as duplicated', () => {
    const s = subscribedAt(0)
    deliver(s, [0, 1, 2, 4, 5, 5, 6])
    assert.deepEqual(checkConnection(s, log(7), true), { owed: 7, lost: 1, inFlight: 0, cutOff: 0 })
    assert.equal(s.dups, 1)
  })

  it('a late fill of a gap is out of order, not a duplicate', () => {
    const s = subscribedAt(0)
    deliver(s, [0, 2, 1, 3])
    assert.deepEqual(checkConnection(s, log(4), true), { owed: 4, lost: 0, inFlight: 0, cutOff: 0 })
    assert.equal(s.dups, 0)
    assert.equal(s.outOfOrder, 1)
    deliver(s, [1])
    assert.equal(s.dups, 1)
  })

  it('a late arrival below the first sequence seen is out of order once, then a duplicate', () => {
    const s = subscribedAt(0)
    deliver(s, [1, 2, 0])
    assert.deepEqual(checkConnection(s, log(3), true), { owed: 3, lost: 0, inFlight: 0, cutOff: 0 })
    assert.equal(s.outOfOrder, 1)
    deliver(s, [0])
    assert.equal(s.dups, 1)
  })

  it('reports the tail as in flight while deliveries were still arriving, as lost once they had stopped', () => {
    const s = subscribedAt(0)
    deliver(s, [0, 2, 3]) // 1 is a gap; 4-5 are after the last delivery
    assert.deepEqual(checkConnection(s, log(6), false), { owed: 6, lost: 1, inFlight: 2, cutOff: 0 })
    assert.deepEqual(checkConnection(s, log(6), true), { owed: 6, lost: 3, inFlight: 0, cutOff: 0 })
    const none = subscribedAt(0)
    assert.deepEqual(checkConnection(none, log(3), false), { owed: 3, lost: 0, inFlight: 3, cutOff: 0 })
  })

  it('owes nothing the server refused, nothing after the connection closed, nothing before it subscribed', () => {
    const s = subscribedAt(0)
    deliver(s, [0, 2, 3])
    assert.deepEqual(checkConnection(s, log(4, [1]), true), { owed: 3, lost: 0, inFlight: 0, cutOff: 0 })
    const closed = subscribedAt(0)
    closed.closeAt = tOf(2) // closed as seq 2 was being sent
    deliver(closed, [0, 1])
    assert.deepEqual(checkConnection(closed, log(5), true), { owed: 2, lost: 0, inFlight: 0, cutOff: 0 })
    assert.deepEqual(checkConnection(newSeqState(), log(5), true), { owed: 0, lost: 0, inFlight: 0, cutOff: 0 })
  })

  it('a connection the server closed: the tail after its last delivery is cut off, not lost; a gap before it is lost', () => {
    const cut = subscribedAt(0)
    cut.closeAt = tOf(4) + 1 // the client saw the close after seq 4 was sent
    deliver(cut, [0, 1])
    assert.deepEqual(checkConnection(cut, log(8), true), { owed: 2, lost: 0, inFlight: 0, cutOff: 3 })
    const gap = subscribedAt(0)
    gap.closeAt = tOf(3) + 1
    deliver(gap, [0, 2])
    assert.deepEqual(checkConnection(gap, log(8), false), { owed: 3, lost: 1, inFlight: 0, cutOff: 1 })
  })

  it('bounds the memory of a runaway gap', () => {
    const s = subscribedAt(0)
    deliver(s, [0, MAX_HOLES * 5])
    assert.equal(s.holes?.size, MAX_HOLES)
    assert.equal(s.overflow, true)
    assert.deepEqual(checkConnection(s, log(MAX_HOLES * 5 + 1), true), { owed: MAX_HOLES * 5 + 1, lost: MAX_HOLES * 5 - 1, inFlight: 0, cutOff: 0 })
  })

  it('property: lost = owed publications never delivered; duplicated = repeats, for any delivery order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 0, max: 70 }),
        fc.array(fc.nat(), { maxLength: 150 }),
        (n, ackSeq, picks) => {
          const deliveries = picks.map((p) => p % n)
          const ackAt = tOf(ackSeq) - 5
          const s = subscribedAt(ackAt)
          deliver(s, deliveries)
          const v = checkConnection(s, log(n), true)
          const owedSet = new Set(Array.from({ length: n }, (_, i) => i).filter((i) => tOf(i) >= ackAt))
          const got = new Set(deliveries)
          assert.equal(v.owed, owedSet.size)
          assert.equal(v.lost, [...owedSet].filter((i) => !got.has(i)).length)
          assert.equal(s.dups, deliveries.length - got.size)
        },
      ),
    )
  })
})
