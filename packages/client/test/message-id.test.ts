// Message ids make a retried publish or RPC idempotent: two different commands must never share
// one, in any runtime. Each source the SDK can draw from is used where it exists, in order:
// crypto.randomUUID, crypto.getRandomValues, and Math.random where there is no Web Crypto at all.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { newMessageId } from '../src/outbox.js'

/** Replace globalThis.crypto for the rest of the test. */
function withCrypto(t: TestContext, crypto: unknown): void {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto')
  Object.defineProperty(globalThis, 'crypto', { value: crypto, configurable: true, writable: true })
  t.after(() => {
    if (saved === undefined) delete (globalThis as { crypto?: unknown }).crypto
    else Object.defineProperty(globalThis, 'crypto', saved)
  })
}

test('crypto.randomUUID is used where it exists', () => {
  const ids = Array.from({ length: 100 }, newMessageId)
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.equal(new Set(ids).size, ids.length)
})

test('without randomUUID (an insecure browser context), 128 bits of getRandomValues as 32 hex digits', (t) => {
  let calls = 0
  withCrypto(t, {
    getRandomValues: (bytes: Uint8Array) => {
      calls++
      // Every byte value's two hex digits, zero-padded: 0x00, 0x11, ... 0xff.
      for (let i = 0; i < bytes.length; i++) bytes[i] = i * 17
      return bytes
    },
  })
  assert.equal(newMessageId(), '00112233445566778899aabbccddeeff')
  assert.equal(calls, 1)
})

test('without Web Crypto at all, Math.random still gives distinct 32-hex-digit ids', (t) => {
  withCrypto(t, undefined)
  const ids = Array.from({ length: 1000 }, newMessageId)
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
  assert.equal(new Set(ids).size, ids.length, 'ids collide')
  // Every byte is drawn: each position takes more than one value across the ids.
  for (let i = 0; i < 32; i += 2) assert.ok(new Set(ids.map((id) => id.slice(i, i + 2))).size > 1, `byte ${i / 2} never changes`)
})

test('a crypto object without either function falls back to Math.random too', (t) => {
  withCrypto(t, {})
  const a = newMessageId()
  const b = newMessageId()
  assert.match(a, /^[0-9a-f]{32}$/)
  assert.notEqual(a, b)
})
