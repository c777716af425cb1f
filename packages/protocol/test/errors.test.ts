import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { ErrorCodes, HoldfastError, errorCodeName, jsonCodec, msgpackCodec, type ErrorCodeName, type ReplyError } from '../src/index.js'

const names = Object.keys(ErrorCodes) as ErrorCodeName[]
const knownNumbers = new Set<number>(Object.values(ErrorCodes).map((c) => c.code))
const name = fc.constantFrom(...names)
const message = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }))

test('every code builds an error with its wire number and default temporariness', () => {
  for (const code of names) {
    const e = new HoldfastError(code, `it failed: ${code}`)
    assert.ok(e instanceof Error)
    assert.ok(e instanceof HoldfastError)
    assert.equal(e.name, 'HoldfastError')
    assert.equal(e.code, code)
    assert.equal(e.wireCode, ErrorCodes[code].code)
    assert.equal(e.temporary, ErrorCodes[code].temporary)
    assert.equal(e.message, `it failed: ${code}`)
    assert.ok(!('cause' in e), 'no cause given, none set')
    assert.match(String(e.stack), /HoldfastError/)
  }
})

test('cause and temporary can be given', () => {
  const root = new Error('ECONNREFUSED')
  const e = new HoldfastError('engine_unavailable', 'redis is down', { cause: root })
  assert.equal(e.cause, root)
  assert.equal(e.temporary, true)
  assert.equal(new HoldfastError('internal', 'x', { temporary: false }).temporary, false)
  assert.equal(new HoldfastError('bad_request', 'x', { temporary: true }).temporary, true)
  // A falsy cause is still a cause.
  assert.equal(new HoldfastError('internal', 'x', { cause: 0 }).cause, 0)
})

test('toReply is exactly the wire error object', () => {
  fc.assert(
    fc.property(name, message, fc.option(fc.boolean(), { nil: undefined }), (code, text, temporary) => {
      const e = temporary === undefined ? new HoldfastError(code, text) : new HoldfastError(code, text, { temporary })
      assert.deepEqual(e.toReply(), { code: ErrorCodes[code].code, message: text, temporary: temporary ?? ErrorCodes[code].temporary })
    }),
  )
})

test('fromReply(toReply()) gives back the same error', () => {
  fc.assert(
    fc.property(name, message, fc.boolean(), (code, text, temporary) => {
      const back = HoldfastError.fromReply(new HoldfastError(code, text, { temporary }).toReply())
      assert.ok(back instanceof HoldfastError)
      assert.equal(back.code, code)
      assert.equal(back.wireCode, ErrorCodes[code].code)
      assert.equal(back.message, text)
      assert.equal(back.temporary, temporary)
    }),
  )
})

test('an error survives an error reply through both codecs', () => {
  fc.assert(
    fc.property(name, fc.string({ unit: 'grapheme' }), fc.integer({ min: 1, max: 2 ** 31 }), (code, text, id) => {
      const sent = new HoldfastError(code, text)
      for (const codec of [jsonCodec, msgpackCodec]) {
        const [reply] = codec.decodeServer(codec.encode({ id, error: sent.toReply() }))
        assert.ok(reply !== undefined && 'error' in reply)
        assert.equal(reply.id, id)
        const got = HoldfastError.fromReply(reply.error)
        assert.deepEqual([got.code, got.wireCode, got.message, got.temporary], [sent.code, sent.wireCode, sent.message, sent.temporary])
      }
    }),
  )
})

test('unknown wire codes become internal, keeping the number and the temporariness', () => {
  fc.assert(
    fc.property(fc.nat().filter((n) => !knownNumbers.has(n)), message, fc.boolean(), (code, text, temporary) => {
      const wire: ReplyError = { code, message: text, temporary }
      const e = HoldfastError.fromReply(wire)
      assert.equal(e.code, 'internal')
      assert.equal(e.wireCode, ErrorCodes.internal.code)
      assert.equal(e.temporary, temporary)
      assert.ok(e.message.includes(String(code)), `message ${JSON.stringify(e.message)} lacks the code`)
      assert.ok(e.message.includes(text))
    }),
  )
})

test('errorCodeName inverts the table and knows nothing else', () => {
  for (const code of names) assert.equal(errorCodeName(ErrorCodes[code].code), code)
  for (const n of [0, 99, 122, 4000, -1, 100.5, Number.NaN]) assert.equal(errorCodeName(n), undefined)
})
