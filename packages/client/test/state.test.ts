import assert from 'node:assert/strict'
import { test } from 'node:test'
import { canTransition, reasonFor, StateMachine, TRANSITIONS, type ConnectionState, type StateChange } from '../src/state.js'

const STATES: ConnectionState[] = ['disconnected', 'connecting', 'connected', 'closed']
const ALLOWED: Array<[ConnectionState, ConnectionState]> = [
  ['disconnected', 'connecting'],
  ['disconnected', 'closed'],
  ['connecting', 'connected'],
  ['connecting', 'disconnected'],
  ['connecting', 'closed'],
  ['connected', 'disconnected'],
  ['connected', 'closed'],
  ['closed', 'connecting'],
]

test('the table holds exactly the allowed transitions', () => {
  const table = STATES.flatMap((from) => TRANSITIONS[from].map((to) => `${from}->${to}`)).sort()
  assert.deepEqual(table, ALLOWED.map(([f, t]) => `${f}->${t}`).sort())
})

test('every allowed transition is taken and reported with its reason', () => {
  for (const [from, to] of ALLOWED) {
    const changes: StateChange[] = []
    const m = new StateMachine((c) => changes.push(c), from)
    const reason = reasonFor(4000, 'draining')
    m.transition(to, reason)
    assert.equal(m.state, to)
    assert.deepEqual(changes, [{ from, to, reason: { code: 4000, name: 'restart', message: 'draining' } }])
  }
})

test('every other transition (self-loops included) is rejected and leaves the state alone', () => {
  for (const from of STATES) {
    for (const to of STATES) {
      if (ALLOWED.some(([f, t]) => f === from && t === to)) continue
      assert.equal(canTransition(from, to), false)
      const changes: StateChange[] = []
      const m = new StateMachine((c) => changes.push(c), from)
      assert.throws(() => m.transition(to, reasonFor(1000, 'x')), /illegal state transition/)
      assert.equal(m.state, from)
      assert.equal(changes.length, 0)
    }
  }
})

test('a connected client cannot be marked connected without passing through connecting', () => {
  const m = new StateMachine(() => {})
  assert.equal(m.state, 'disconnected')
  assert.throws(() => m.transition('connected', reasonFor(1000, 'x')))
})

test('reasons carry the protocol name of the code, or unknown', () => {
  assert.deepEqual(reasonFor(4011, 'm'), { code: 4011, name: 'taken_over', message: 'm' })
  assert.deepEqual(reasonFor(1006, 'm'), { code: 1006, name: 'abnormal', message: 'm' })
  assert.equal(reasonFor(4999, 'm').name, 'unknown')
})
