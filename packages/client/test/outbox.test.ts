import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { newMessageId, Outbox } from '../src/outbox.js'

const cmd = (n: number) => ({ type: 'publish' as const, channel: 'c', data: n, msgId: `m${n}` })

test('keeps issue order and reports size changes', () => {
  const changes: Array<[number, number]> = []
  const box = new Outbox({ maxCommands: 10, maxBytes: 1000 }, (size, bytes) => changes.push([size, bytes]))
  const results: unknown[] = []
  const a = box.add(cmd(1), 10, (r) => results.push(r), () => {})
  const b = box.add(cmd(2), 20, (r) => results.push(r), () => {})
  assert.deepEqual([...box.entries()].map((e) => e.command), [cmd(1), cmd(2)])
  box.resolve(b, 'B')
  box.resolve(b, 'again')
  box.resolve(a, 'A')
  assert.deepEqual(results, ['B', 'A'])
  assert.deepEqual(changes, [[1, 10], [2, 30], [1, 10], [0, 0]])
})

test('overflow by count or bytes refuses the newest with queue_full; older ones are untouched', () => {
  const box = new Outbox({ maxCommands: 2, maxBytes: 100 }, () => {})
  box.add(cmd(1), 40, () => {}, () => {})
  box.add(cmd(2), 40, () => {}, () => {})
  assert.throws(() => box.add(cmd(3), 1, () => {}, () => {}), (e: unknown) => e instanceof HoldfastError && e.code === 'queue_full' && /maxQueuedCommands/.test(e.message))
  const bytesBox = new Outbox({ maxCommands: 10, maxBytes: 100 }, () => {})
  bytesBox.add(cmd(1), 60, () => {}, () => {})
  assert.throws(() => bytesBox.add(cmd(2), 41, () => {}, () => {}), (e: unknown) => e instanceof HoldfastError && e.code === 'queue_full' && /maxQueuedBytes/.test(e.message))
  bytesBox.add(cmd(3), 40, () => {}, () => {})
  assert.equal(box.size, 2)
  assert.equal(bytesBox.bytes, 100)
})

test('rejectAll rejects every entry and clears its timers', () => {
  const box = new Outbox({ maxCommands: 10, maxBytes: 1000 }, () => {})
  const errors: string[] = []
  for (let i = 0; i < 3; i++) {
    const e = box.add(cmd(i), 1, () => {}, (err) => errors.push(err.code))
    e.deadline = setTimeout(() => assert.fail('deadline must be cleared'), 10)
  }
  box.rejectAll(() => new HoldfastError('client_closed', 'closed'))
  assert.deepEqual(errors, ['client_closed', 'client_closed', 'client_closed'])
  assert.equal(box.size, 0)
})

test('message ids are unique, with and without randomUUID', (t) => {
  const ids = new Set(Array.from({ length: 1000 }, newMessageId))
  assert.equal(ids.size, 1000)
  const c = globalThis.crypto as { randomUUID?: unknown }
  const saved = c.randomUUID
  Object.defineProperty(c, 'randomUUID', { value: undefined, configurable: true, writable: true })
  t.after(() => Object.defineProperty(c, 'randomUUID', { value: saved, configurable: true, writable: true }))
  const hex = newMessageId()
  assert.match(hex, /^[0-9a-f]{32}$/)
  assert.notEqual(newMessageId(), hex)
})
