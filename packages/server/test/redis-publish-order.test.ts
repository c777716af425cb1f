/**
 * The Redis engine's publish order gate (src/engine/redis-publish-order.ts): after a publication
 * failed with a temporary error, its channel admits only the publications it knows until they
 * have all been stored, so that a publisher's retry lands before what it sent after it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { GATE_MS, PublishOrder } from '../src/engine/redis-publish-order.js'

function refused(fn: () => void): boolean {
  try {
    fn()
    return false
  } catch (err) {
    assert.ok(err instanceof HoldfastError && err.code === 'engine_unavailable' && err.temporary, String(err))
    return true
  }
}

describe('PublishOrder', () => {
  it('after a failure only the known publications pass; one refused joins them; all stored opens the gate', () => {
    let t = 0
    const order = new PublishOrder(() => t)
    order.admit('c', 'a')
    order.failed('c', ['a', 'b', undefined])
    assert.equal(refused(() => order.admit('c', 'x')), true, 'a later publication, sent before its publisher heard')
    assert.equal(refused(() => order.admit('c', 'a')), false, 'the retry of a')
    assert.equal(refused(() => order.admit('c', 'b')), false)
    assert.equal(refused(() => order.admit('c', 'x')), false, 'x was refused once and joined them')
    assert.equal(refused(() => order.admit('other', 'y')), false, 'other channels are not held')
    assert.equal(refused(() => order.admit('c', undefined)), false, 'no id: no order to keep')
    order.stored('c', 'a')
    order.stored('c', 'b')
    assert.equal(refused(() => order.admit('c', 'z')), true, 'x is not stored yet')
    order.stored('c', 'x')
    order.stored('c', 'z')
    t += 1
    assert.equal(refused(() => order.admit('c', 'w')), false, 'open again')
  })

  it('a gate nobody retries through opens after GATE_MS; a new failure extends it', () => {
    let t = 0
    const order = new PublishOrder(() => t)
    order.failed('c', ['a'])
    t = GATE_MS - 1
    order.failed('c', ['b'])
    t = GATE_MS + 1
    assert.equal(refused(() => order.admit('c', 'x')), true, 'extended by the second failure')
    t = 2 * GATE_MS
    assert.equal(refused(() => order.admit('c', 'y')), false)
  })

  it('a gate remembers at most 10,000 ids: one beyond is refused each time, until the gate opens', () => {
    let t = 0
    const order = new PublishOrder(() => t)
    order.failed('c', Array.from({ length: 10_001 }, (_, i) => `k${i}`))
    assert.equal(refused(() => order.admit('c', 'k9999')), false, 'remembered')
    assert.equal(refused(() => order.admit('c', 'k10000')), true, 'over the bound: not remembered')
    assert.equal(refused(() => order.admit('c', 'x')), true)
    assert.equal(refused(() => order.admit('c', 'x')), true, 'a full gate takes no more')
    t = GATE_MS
    assert.equal(refused(() => order.admit('c', 'x')), false, 'open after GATE_MS')
  })

  it('failures without ids close nothing', () => {
    const order = new PublishOrder(() => 0)
    order.failed('c', [undefined])
    assert.equal(refused(() => order.admit('c', 'x')), false)
  })
})
