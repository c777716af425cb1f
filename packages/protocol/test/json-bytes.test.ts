// Bytes in JSON frames: {"$bytes": base64} on the wire, a Uint8Array on both sides' decode.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { jsonCodec, type ServerMessage } from '../src/index.js'
import { hasBytes } from '../src/json-bytes.js'

const utf8 = new TextDecoder()

function pub(data: unknown): ServerMessage {
  return { type: 'pub', channel: 'files:a', epoch: 'e', offset: 1, data } as ServerMessage
}

test('a Buffer or Uint8Array in data is written as {"$bytes": base64}, not as {"type":"Buffer"}', () => {
  const bytes = Uint8Array.from([0, 1, 2, 253, 254, 255])
  for (const value of [bytes, Buffer.from(bytes)]) {
    const line = utf8.decode(jsonCodec.encode(pub({ file: value, name: 'x' })))
    assert.equal(line, '{"type":"pub","channel":"files:a","epoch":"e","offset":1,"data":{"file":{"$bytes":"AAEC/f7/"},"name":"x"}}')
  }
  const top = utf8.decode(jsonCodec.encode(pub(bytes)))
  assert.match(top, /"data":\{"\$bytes":"AAEC\/f7\/"\}/)
})

test('both decoders turn {"$bytes": base64} back into bytes, at any depth, in arrays too', () => {
  const line = '{"type":"pub","channel":"c","epoch":"e","offset":1,"data":{"a":[{"$bytes":"AQI="},{"b":{"$bytes":""}}]}}'
  const [msg] = jsonCodec.decodeServer(line) as Array<{ data: { a: [Uint8Array, { b: Uint8Array }] } }>
  assert.ok(msg)
  assert.deepEqual(msg.data.a[0], Uint8Array.from([1, 2]))
  assert.deepEqual(msg.data.a[1].b, new Uint8Array(0))
  const [cmd] = jsonCodec.decodeClient('{"id":1,"type":"publish","channel":"c","msgId":"m","data":{"$bytes":"/w=="}}') as Array<{ data: unknown }>
  assert.deepEqual(cmd?.data, Uint8Array.from([255]))
})

test('objects that only look like bytes stay objects', () => {
  for (const data of [{ $bytes: 'not base64!' }, { $bytes: 'AQI=', other: 1 }, { $bytes: 5 }, { nested: { $bytes: null } }]) {
    const line = JSON.stringify({ type: 'pub', channel: 'c', epoch: 'e', offset: 1, data })
    const [msg] = jsonCodec.decodeServer(line) as Array<{ data: unknown }>
    assert.deepEqual(msg?.data, data)
  }
})

test('any bytes round-trip through the JSON codec', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70_000 }), fc.string(), (bytes, name) => {
      const [msg] = jsonCodec.decodeServer(jsonCodec.encode(pub({ bytes, name, list: [bytes] }))) as Array<{ data: unknown }>
      assert.deepEqual(msg?.data, { bytes, name, list: [bytes] })
    }),
    { numRuns: 200 },
  )
})

test('only a message holding bytes somewhere is written through the bytes replacer', () => {
  for (const v of [null, 1, 'x', {}, [], { a: [1, { b: 'c' }] }, { $bytes: 'AA==' }]) assert.equal(hasBytes(v), false, JSON.stringify(v))
  for (const v of [new Uint8Array(0), Buffer.from('x'), { a: [1, { b: new Uint8Array(1) }] }, [[[Buffer.alloc(2)]]]]) assert.equal(hasBytes(v), true)
})
