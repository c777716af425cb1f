// decodeCommands: a server's decode of a client frame. A malformed command whose id can be read
// becomes an InvalidCommand in its place; what has no readable id fails the frame, as decodeClient
// fails it for any malformed message.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encode as msgpackEncode } from '@msgpack/msgpack'
import fc from 'fast-check'
import { HoldfastError, jsonCodec, msgpackCodec, validateClientMessage, type Codec } from '../src/index.js'

const frames: Record<Codec['name'], (values: unknown[]) => string | Uint8Array> = {
  json: (values) => values.map((v) => JSON.stringify(v)).join('\n'),
  msgpack: (values) => {
    const parts = values.map((v) => msgpackEncode(v))
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
    let at = 0
    for (const p of parts) {
      out.set(p, at)
      at += p.byteLength
    }
    return out
  },
}

for (const codec of [jsonCodec, msgpackCodec]) {
  describe(`${codec.name}: decodeCommands`, () => {
    it('keeps the malformed commands in their place, with their ids and a bad_request error', () => {
      const out = codec.decodeCommands(frames[codec.name]([{ id: 1, type: 'ping' }, { id: 2, type: 'explode' }, { id: 3, type: 'subscribe' }, { id: 4, type: 'ping' }]))
      assert.deepEqual(
        out.map((m) => [m.type, 'id' in m ? m.id : undefined]),
        [
          ['ping', 1],
          ['invalid', 2],
          ['invalid', 3],
          ['ping', 4],
        ],
      )
      for (const m of out) if (m.type === 'invalid') assert.ok(m.error instanceof HoldfastError && m.error.code === 'bad_request')
      // The strict decode refuses the same frame whole.
      assert.throws(() => codec.decodeClient(frames[codec.name]([{ id: 1, type: 'ping' }, { id: 2, type: 'explode' }])), { code: 'bad_request' })
    })

    it('a message without a readable id fails the whole frame', () => {
      for (const bad of [{ type: 'explode' }, { id: 0, type: 'subscribe' }, { id: '3', type: 'ping' }, { id: 1.5, type: 'ping' }, 'ping', 42, null]) {
        assert.throws(() => codec.decodeCommands(frames[codec.name]([{ id: 1, type: 'ping' }, bad])), { code: 'bad_request' }, JSON.stringify(bad))
      }
    })

    it('for any object with a valid id: a valid message, or an InvalidCommand with that id', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.dictionary(fc.constantFrom('type', 'channel', 'data', 'msgId', 'limit', 'since', 'token', 'version'), fc.jsonValue()), (id, rest) => {
          const value = { ...rest, id }
          // A MessagePack decoder refuses a __proto__ key wherever it is (the frame fails whole).
          fc.pre(!JSON.stringify(value).includes('__proto__'))
          const [m] = codec.decodeCommands(frames[codec.name]([value]))
          assert.ok(m !== undefined)
          if (m.type === 'invalid') {
            assert.equal(m.id, id)
            assert.throws(() => validateClientMessage(value))
          } else assert.equal(validateClientMessage(m), m)
        }),
        { numRuns: 500 },
      )
    })
  })
}
