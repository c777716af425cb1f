import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { decideReconnect, type ReconnectInput } from '../src/reconnect-policy.js'

const base: ReconnectInput = {
  code: 1006,
  attempt: 0,
  authFailures: 0,
  canRefresh: true,
  wasConnecting: false,
  maxAttempts: Infinity,
  minDelayMs: 500,
  maxDelayMs: 20_000,
  restartJitterMs: 1000,
  random: () => 0.5,
}

test('every close code in the table maps to the action its advice names', () => {
  for (const [name, info] of Object.entries(CloseCodes)) {
    const d = decideReconnect({ ...base, code: info.code })
    const expected = info.advice === 'none' || info.advice === 'stop' ? 'stop' : 'retry'
    assert.equal(d.action, expected, name)
  }
})

test('unknown codes back off', () => {
  const d = decideReconnect({ ...base, code: 4999 })
  assert.ok(d.action === 'retry' && d.delayMs === 750)
})

test('reconnect advice: quick the first time, backoff on a repeat, always to the next URL', () => {
  const first = decideReconnect({ ...base, code: CloseCodes.restart.code })
  assert.deepEqual(first, { action: 'retry', attempt: 1, authFailures: 0, delayMs: 500, refreshToken: false, rotate: true })
  const repeat = decideReconnect({ ...base, code: CloseCodes.restart.code, attempt: 2 })
  assert.ok(repeat.action === 'retry' && repeat.delayMs === 500 + 0.5 * (4000 - 500))
})

test('backoff advice: the attempt counts up, the URL rotates only after a failed attempt', () => {
  const dropped = decideReconnect({ ...base, attempt: 1 })
  assert.ok(dropped.action === 'retry' && dropped.attempt === 2 && dropped.delayMs === 1250 && !dropped.rotate)
  const failed = decideReconnect({ ...base, wasConnecting: true })
  assert.ok(failed.action === 'retry' && failed.rotate)
})

test('a heartbeat timeout backs off to the next URL: a silent node is not retried first', () => {
  const silent = decideReconnect({ ...base, code: CloseCodes.heartbeat_timeout.code })
  assert.ok(silent.action === 'retry' && silent.rotate && !silent.refreshToken)
  assert.equal(silent.action === 'retry' && silent.delayMs, 750, 'backoff, not the quick restart path')
})

test('refresh advice: new token and a quick retry; twice in a row, or without getToken, stop', () => {
  const once = decideReconnect({ ...base, code: CloseCodes.unauthorized.code })
  assert.deepEqual(once, { action: 'retry', attempt: 1, authFailures: 1, delayMs: 500, refreshToken: true, rotate: false })
  assert.deepEqual(decideReconnect({ ...base, code: CloseCodes.token_expired.code, authFailures: 1 }), {
    action: 'stop',
    why: 'unauthorized twice in a row',
  })
  assert.deepEqual(decideReconnect({ ...base, code: CloseCodes.unauthorized.code, canRefresh: false }), {
    action: 'stop',
    why: 'no getToken to refresh the token',
  })
})

test('maxAttempts: stop once exceeded; 0 never reconnects', () => {
  assert.equal(decideReconnect({ ...base, maxAttempts: 3, attempt: 2 }).action, 'retry')
  assert.equal(decideReconnect({ ...base, maxAttempts: 3, attempt: 3 }).action, 'stop')
  assert.equal(decideReconnect({ ...base, maxAttempts: 0 }).action, 'stop')
})
