/**
 * The SDK's pong is recognised before decoding (pong-frame.ts): the result is the one the full
 * decoder gives, the bytes the SDK actually sends are the ones recognised, and anything else — a
 * byte off, a pong batched with a command, a text frame on MessagePack — takes the full decoder.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HoldfastError } from '../src/index.js'
import { jsonClientCodec } from '../src/internal.js'
import { jsonCodec } from '../src/json-codec.js'
import { msgpackCodec } from '../src/msgpack-codec.js'
import { pongFrame } from '../src/pong-frame.js'

const textEncoder = new TextEncoder()

describe('the SDK pong, recognised before decoding', () => {
  it("the SDK's own encodings of a pong are recognised, as text and as bytes", () => {
    const json = jsonClientCodec.encode({ type: 'pong' })
    const asJson = pongFrame(jsonCodec.encode({ type: 'pong' }), true)
    assert.deepEqual(asJson(json), [{ type: 'pong' }])
    assert.deepEqual(asJson(new TextDecoder().decode(json)), [{ type: 'pong' }])
    assert.deepEqual(asJson(json.slice().buffer), [{ type: 'pong' }], 'an ArrayBuffer (uWebSockets.js)')
    const packed = msgpackCodec.encode({ type: 'pong' })
    const asMsgpack = pongFrame(packed, false)
    assert.deepEqual(asMsgpack(packed), [{ type: 'pong' }])
  })

  it('anything else is left to the decoder: a byte off, another length, a batch, text on MessagePack', () => {
    const bytes = jsonCodec.encode({ type: 'pong' })
    const match = pongFrame(bytes, true)
    const off = bytes.slice()
    off[off.length - 2] = 0x58
    assert.equal(match(off), undefined, 'one byte off')
    assert.equal(match(textEncoder.encode('{"type": "pong"}')), undefined, 'another spelling')
    assert.equal(match('{"type":"ping"}'), undefined)
    assert.equal(match(textEncoder.encode('{"type":"pong"}\n{"type":"pong"}')), undefined, 'a batch')
    const packed = msgpackCodec.encode({ type: 'pong' })
    assert.equal(pongFrame(packed, false)(new TextDecoder('latin1').decode(packed)), undefined, 'text frames never match on MessagePack')
  })

  it('each codec decodes the recognised pong as its full decoder does, and refuses what it refused before', () => {
    for (const codec of [jsonCodec, msgpackCodec]) {
      const frame = codec.encode({ type: 'pong' })
      assert.deepEqual(codec.decodeCommands(frame), [{ type: 'pong' }])
      const a = codec.decodeCommands(frame)
      const b = codec.decodeCommands(frame)
      assert.notEqual(a, b, 'a fresh array each time: a caller may keep or change it')
      assert.deepEqual(codec.decodeClient(frame), [{ type: 'pong' }])
    }
    assert.throws(() => msgpackCodec.decodeCommands('{"type":"pong"}'), (err: unknown) => err instanceof HoldfastError && err.code === 'bad_request')
  })

  it('only a pong is recognised: an empty object, or the MessagePack pong sent as text, is refused as before', () => {
    const badRequest = (err: unknown): boolean => err instanceof HoldfastError && err.code === 'bad_request'
    assert.throws(() => jsonCodec.decodeCommands('{}'), badRequest)
    assert.throws(() => jsonCodec.decodeCommands(textEncoder.encode('{}')), badRequest)
    assert.throws(() => msgpackCodec.decodeCommands(msgpackCodec.encode({} as never)), badRequest)
    const packed = msgpackCodec.encode({ type: 'pong' })
    for (const text of [new TextDecoder().decode(packed), new TextDecoder('latin1').decode(packed)]) {
      assert.throws(() => msgpackCodec.decodeCommands(text), (err: unknown) => badRequest(err) && /binary frames/.test((err as Error).message))
    }
  })
})
