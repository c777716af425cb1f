/**
 * The checker checked: a suite whose checker cannot fail proves nothing. Hand-made histories,
 * each with one kind of anomaly, must be caught and counted as that anomaly; a clean one and a
 * declared loss (`recovered: false`) must pass. Runs first (file order), in milliseconds.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { assertClean, assertExactlyOnce, checkHistory, type Ack, type AppEvent, type AppHistory } from './history.js'

const E = 'e1'
const ack = (seq: number, offset: number, epoch = E, pub = 'p'): Ack => ({ pub, seq, channel: 'c', epoch, offset, at: seq })
const pub = (seq: number, offset: number, epoch = E, p = 'p'): AppEvent => ({ kind: 'pub', epoch, offset, pub: p, seq, sentAt: 0, at: 0 })
const sub = (offset: number, recovered: boolean, epoch = E, wasRecovering = true): AppEvent => ({ kind: 'subscribed', recovered, wasRecovering, epoch, offset, at: 0 })
const history = (...events: AppEvent[]): AppHistory => ({ client: 's', channel: 'c', events })
const acks = [ack(1, 1), ack(2, 2), ack(3, 3), ack(4, 4)]

describe('chaos: the history checker', () => {
  it('passes a clean history, with a recovering resubscribe in it', () => {
    const r = checkHistory(acks, [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), sub(2, true), pub(3, 3), pub(4, 4))])
    assertClean(r)
    assert.equal(r.expected, 4)
  })

  it('counts a lost publication', () => {
    const r = checkHistory(acks, [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(4, 4))])
    assert.equal(r.lost, 1)
    assert.throws(() => assertClean(r), /lost 1/)
  })

  it('counts a publication delivered twice, by position or by publisher sequence', () => {
    const r = checkHistory(acks, [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(2, 2), pub(3, 3), pub(4, 4))])
    assert.equal(r.duplicated, 1)
    const stored2x = checkHistory([...acks, ack(5, 5)], [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(3, 3), pub(4, 4), pub(4, 5))])
    assert.equal(stored2x.duplicated, 1, 'one publish stored at two offsets reaches the app twice')
  })

  it('counts out-of-order delivery', () => {
    const r = checkHistory(acks, [history(sub(0, false, E, false), pub(1, 1), pub(3, 3), pub(2, 2), pub(4, 4))])
    assert.equal(r.outOfOrder, 1)
  })

  it('counts a silent move to another epoch, and accepts one announced by recovered:false', () => {
    const two = [...acks, ack(5, 1, 'e2'), ack(6, 2, 'e2')]
    const silent = checkHistory(two, [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(5, 1, 'e2'), pub(6, 2, 'e2'))])
    assert.equal(silent.silentGaps, 1)
    const told = checkHistory(two, [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), sub(0, false, 'e2'), pub(5, 1, 'e2'), pub(6, 2, 'e2'))])
    assert.equal(told.silentGaps + told.lost + told.duplicated, 0)
    assert.equal(told.unrecovered, 1)
    assert.equal(told.declaredLoss, 2, 'offsets 3 and 4 of the old epoch were declared lost')
    assertClean(told, { allowUnrecovered: true })
    assert.throws(() => assertClean(told), /recovered:false 1/)
  })

  it('counts a delivery no ack names, and one whose ack names another publication', () => {
    const r = checkHistory(acks.slice(0, 2), [history(sub(0, false, E, false), pub(1, 1), pub(9, 2))])
    assert.equal(r.mismatched, 1)
    const u = checkHistory(acks.slice(0, 2), [history(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(3, 3))])
    assert.equal(u.unacked, 1)
  })

  it('counts two publishes acked at one offset, and a publisher whose order was not kept', () => {
    assert.equal(checkHistory([ack(1, 1), ack(1, 1, E, 'q')], []).ackAnomalies, 1)
    assert.equal(checkHistory([ack(1, 2), ack(2, 1)], []).ackAnomalies, 1)
  })

  it('expects nothing from before a subscriber started', () => {
    const r = checkHistory(acks, [history(sub(2, false, E, false), pub(3, 3), pub(4, 4))])
    assertClean(r)
    assert.equal(r.expected, 2)
  })

  it('assertExactlyOnce (the multi-node tests): the whole stream once from offset 1, or it throws', () => {
    const whole = (...events: AppEvent[]): AppHistory & { foreign: number } => ({ ...history(...events), foreign: 0 })
    assertExactlyOnce(whole(sub(0, false, E, false), pub(1, 1), pub(2, 2), sub(2, true), pub(3, 3), pub(4, 4)), acks)
    assert.throws(() => assertExactlyOnce(whole(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(4, 4)), acks), /lost 1/)
    assert.throws(() => assertExactlyOnce(whole(sub(0, false, E, false), pub(1, 1), pub(2, 2), pub(2, 2), pub(3, 3), pub(4, 4)), acks), /duplicated 1/)
    assert.throws(() => assertExactlyOnce(whole(sub(2, false, E, false), pub(3, 3), pub(4, 4)), acks), /from the first/)
    assert.throws(() => assertExactlyOnce(whole(sub(0, false, E, false), pub(1, 1), pub(2, 2), sub(2, false), pub(3, 3), pub(4, 4)), acks), /recovered:false 1/)
    assert.throws(() => assertExactlyOnce(whole(sub(0, false, E, false), pub(1, 1), pub(2, 3)), [ack(1, 1), ack(2, 3)]), /offsets 1\.\.N/)
    assert.throws(() => assertExactlyOnce({ ...whole(sub(0, false, E, false), pub(1, 1)), foreign: 1 }, [ack(1, 1)]), /only test publications/)
  })
})
