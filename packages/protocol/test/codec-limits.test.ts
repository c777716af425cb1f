// What a MessagePack peer may make the decoder do: a text frame is refused for what it is, and no
// frame may declare more values than it has bytes. MessagePack containers declare their size up
// front and the decoder allocates for it: a 64 KB frame of nested array headers would otherwise ask
// for gigabytes before running out of bytes, and one client could exhaust the node's heap.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { HoldfastError, jsonCodec, msgpackCodec, type Codec } from '../src/index.js'

function refusal(decode: () => unknown): HoldfastError {
  try {
    decode()
  } catch (err) {
    assert.ok(err instanceof HoldfastError, `expected a HoldfastError, got ${String(err)}`)
    assert.equal(err.code, 'bad_request')
    return err
  }
  assert.fail('the frame was accepted')
}

const decoders = (codec: Codec): [string, (frame: Uint8Array | string) => unknown][] => [
  ['client', (f) => codec.decodeClient(f)],
  ['server', (f) => codec.decodeServer(f)],
]

/** Headers repeated to fill `bytes` (each one nested in the previous one). */
function nested(header: number[], bytes: number): Uint8Array {
  const count = Math.floor(bytes / header.length)
  const out = new Uint8Array(header.length * count)
  for (let i = 0; i < count; i++) out.set(header, i * header.length)
  return out
}

/** The server's default maxPayload: the largest frame a client may send. */
const MAX_PAYLOAD = 65_536

// A publish whose last value (data) is nil, so that byte can be swapped for any encoded value.
const publish = msgpackCodec.encode({ id: 1, type: 'publish', channel: 'c', msgId: 'm', data: null })
const prefix = publish.subarray(0, -1)
const withData = (data: number[] | Uint8Array): Uint8Array => Uint8Array.from([...prefix, ...data])

describe('MessagePack frames', () => {
  test('a text frame is refused as such, even when it holds a valid JSON message', () => {
    for (const [side, decode] of decoders(msgpackCodec)) {
      for (const text of ['{"type":"ping"}', '{"type":"pong"}', '\u0081', '']) {
        assert.match(refusal(() => decode(text)).message, /binary frames/, `${side}: ${JSON.stringify(text)}`)
      }
    }
    // The same text is what a JSON connection speaks.
    assert.deepEqual(jsonCodec.decodeServer('{"type":"ping"}'), [{ type: 'ping' }])
  })

  const hostile: [string, number[]][] = [
    ['array16', [0xdc, 0xff, 0xff]],
    ['array32', [0xdd, 0x00, 0x00, 0xff, 0xff]],
    ['map16', [0xde, 0x80, 0x00]],
    ['map32', [0xdf, 0x00, 0x00, 0x80, 0x00]],
    ['fixarray', [0x9f]],
    ['fixmap', [0x8f]],
  ]
  for (const [name, header] of hostile) {
    test(`a full-size frame of nested ${name} headers is refused before the decoder allocates for them`, () => {
      for (const frame of [nested(header, MAX_PAYLOAD), withData(nested(header, MAX_PAYLOAD - prefix.byteLength))]) {
        for (const [side, decode] of decoders(msgpackCodec)) {
          const before = process.memoryUsage().heapUsed
          const err = refusal(() => decode(frame))
          assert.match(err.message, /declares more values than it holds/, side)
          const grown = process.memoryUsage().heapUsed - before
          assert.ok(grown < 64 * 1024 * 1024, `${side}: a ${frame.byteLength}-byte frame grew the heap by ${grown} bytes`)
        }
      }
    })
  }

  test('one container declaring one entry more than the bytes left is refused; as many as the bytes left is decoded', () => {
    // array16 of n entries followed by n-1 or n one-byte entries (nil).
    for (const n of [1, 2, 300]) {
      const short = withData([0xdc, n >> 8, n & 0xff, ...new Array<number>(n - 1).fill(0xc0)])
      assert.match(refusal(() => msgpackCodec.decodeClient(short)).message, /declares more/)
      const exact = withData([0xdc, n >> 8, n & 0xff, ...new Array<number>(n).fill(0xc0)])
      assert.deepEqual(msgpackCodec.decodeClient(exact)[0], { id: 1, type: 'publish', channel: 'c', msgId: 'm', data: new Array(n).fill(null) })
    }
    // A map's entries are pairs: n entries need 2n values.
    assert.match(refusal(() => msgpackCodec.decodeClient(withData([0x82, 0xc0, 0xc0, 0xc0]))).message, /declares more/)
    // The same for map16 and map32: 3 entries declared, 4 values left (enough for 3 values, not 6).
    for (const head of [[0xde, 0, 3], [0xdf, 0, 0, 0, 3]]) {
      assert.match(refusal(() => msgpackCodec.decodeClient(withData([...head, 0xc0, 0xc0, 0xc0, 0xc0]))).message, /declares more/, `0x${head[0]?.toString(16)}`)
      const exact = withData([...head, 1, 0xc0, 2, 0xc0, 3, 0xc0])
      assert.equal(msgpackCodec.decodeClient(exact).length, 1)
    }
  })

  test('a truncated length field is left to the decoder (bad_request, not a crash)', () => {
    for (const t of [0xc4, 0xc5, 0xc6, 0xc7, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf]) {
      const err = refusal(() => msgpackCodec.decodeClient(withData([t])))
      assert.doesNotMatch(err.message, /declares more/, `0x${t.toString(16)}`)
    }
  })

  // Values of every MessagePack type whose payload bytes look like huge container headers: a
  // scanner that miscounts a payload would read them as headers and refuse a valid frame.
  const trap = [0xdd, 0xff, 0xff, 0xff, 0xff]
  const f64 = new DataView(new ArrayBuffer(8))
  for (const [i, b] of [0xdf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff].entries()) f64.setUint8(i, b)
  const values: [string, unknown][] = [
    ['fixint, nil, booleans', [0, 127, -1, -32, null, true, false]],
    ['uint 8/16/32/64', [0xdd, 0xdcff, 0xdfffffff, 0xdfffffffff]],
    ['int 8/16/32/64', [-0x23, -0x2301, -0x20ffffff, -0x20ffffffff]],
    ['float 64', [1.5, f64.getFloat64(0)]],
    ['fixstr', '\u07ff\u07ff'],
    ['str 8', 'x'.repeat(40) + '\u07ff'],
    ['str 16', '\u07ff'.repeat(300)],
    ['str 32', '\u07ff'.repeat(40_000)],
    ['bin 8', Uint8Array.from(trap)],
    ['bin 16', new Uint8Array(300).fill(0xdd)],
    ['bin 32', new Uint8Array(70_000).fill(0xdd)],
    ['fixext 4 and 8, ext 8 (timestamps)', [new Date(1000), new Date(1_700_000_000_123), new Date(-1)]],
    ['fixmap, fixarray', { a: [1, [2, [3]]], b: { c: { d: 'e' } } }],
    ['map 16, array 16', { big: Array.from({ length: 300 }, (_, i) => i), many: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])) }],
    ['array 32', new Array(70_000).fill(0)],
  ]
  for (const [name, data] of values) {
    test(`${name}: decoded as encoded, alone and inside containers, on both sides`, () => {
      for (const d of [data, [data, data], { x: data, y: [data] }]) {
        const frame = msgpackCodec.frame([
          msgpackCodec.encode({ id: 1, type: 'publish', channel: 'c', msgId: 'm', data: d }),
          msgpackCodec.encode({ id: 2, type: 'ping' }),
        ])
        assert.deepEqual(msgpackCodec.decodeClient(frame), [
          { id: 1, type: 'publish', channel: 'c', msgId: 'm', data: d },
          { id: 2, type: 'ping' },
        ])
        const push = msgpackCodec.frame([msgpackCodec.encode({ type: 'pub', channel: 'c', epoch: 'e', offset: 1, data: d }), msgpackCodec.encode({ type: 'ping' })])
        assert.equal(msgpackCodec.decodeServer(push).length, 2)
      }
    })
  }

  test('after a value of any type, nested headers that follow are still counted and refused', () => {
    // The scanner must step over each type exactly to reach what comes next: one that lost its
    // place would let the hostile part through to the decoder.
    const attack = nested([0xdc, 0xff, 0xff], 30_000)
    const heads: [string, number[]][] = [
      ['nil, false, true', [0xc0, 0xc2, 0xc3]],
      ['bin 8/16/32', [0xc4, 1, 0, 0xc5, 0, 1, 0, 0xc6, 0, 0, 0, 1, 0]],
      ['ext 8/16/32', [0xc7, 1, 1, 0, 0xc8, 0, 1, 1, 0, 0xc9, 0, 0, 0, 1, 1, 0]],
      ['float 32/64', [0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0]],
      ['uint 8/16/32/64', [0xcc, 0, 0xcd, 0, 0, 0xce, 0, 0, 0, 0, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0]],
      ['int 8/16/32/64', [0xd0, 0, 0xd1, 0, 0, 0xd2, 0, 0, 0, 0, 0xd3, 0, 0, 0, 0, 0, 0, 0, 0]],
      ['fixext 1/2/4/8/16', [0xd4, 1, 0, 0xd5, 1, 0, 0, 0xd6, 1, 0, 0, 0, 0, 0xd7, 1, ...new Array<number>(8).fill(0), 0xd8, 1, ...new Array<number>(16).fill(0)]],
      ['str 8/16/32', [0xd9, 1, 0x61, 0xda, 0, 1, 0x61, 0xdb, 0, 0, 0, 1, 0x61]],
      ['array 16/32, map 16/32 (empty)', [0xdc, 0, 0, 0xdd, 0, 0, 0, 0, 0xde, 0, 0, 0xdf, 0, 0, 0, 0]],
      ['fixint, fixstr, fixarray, fixmap', [0x05, 0xe0, 0xa1, 0x61, 0x90, 0x80]],
    ]
    for (const [name, bytes] of heads) {
      const frame = Uint8Array.from([...bytes, ...attack])
      for (const [side, decode] of decoders(msgpackCodec)) {
        assert.match(refusal(() => decode(frame)).message, /declares more values than it holds/, `${name}, ${side}`)
      }
    }
  })

  test('extension types of every width are read past, whatever their payload holds', () => {
    const exts: [string, number[]][] = [
      ['fixext 1', [0xd4, 0x01, ...trap.slice(0, 1)]],
      ['fixext 2', [0xd5, 0x01, ...trap.slice(0, 2)]],
      ['fixext 16', [0xd8, 0x01, ...trap, ...trap, ...trap, 0xdd]],
      ['ext 8', [0xc7, 5, 0x01, ...trap]],
      ['ext 16', [0xc8, 0, 5, 0x01, ...trap]],
      ['ext 32', [0xc9, 0, 0, 0, 5, 0x01, ...trap]],
    ]
    for (const [name, bytes] of exts) {
      // Inside an array followed by a string, so a miscounted payload shifts what follows.
      const frame = withData([0x92, ...bytes, 0xa1, 0x7a])
      const [msg] = msgpackCodec.decodeClient(frame) as unknown as [{ data: unknown[] }]
      assert.equal(msg.data.length, 2, name)
      assert.equal(msg.data[1], 'z', name)
    }
  })
})

describe('refusals say why', () => {
  test('each kind of bad frame is refused with its own message, keeping the parser error as the cause', () => {
    const cases: [string, () => unknown, RegExp, boolean][] = [
      ['JSON that does not parse', () => jsonCodec.decodeClient('{"type":'), /not valid JSON/, true],
      ['JSON bytes that are not UTF-8', () => jsonCodec.decodeClient(Uint8Array.from([0x7b, 0xff, 0x7d])), /not valid UTF-8/, true],
      ['MessagePack that does not parse', () => msgpackCodec.decodeClient(Uint8Array.from([0xc1])), /not valid MessagePack/, true],
      ['an empty frame', () => msgpackCodec.decodeClient(new Uint8Array(0)), /empty frame/, false],
    ]
    for (const [name, decode, message, hasCause] of cases) {
      const err = refusal(decode)
      assert.match(err.message, message, name)
      assert.equal(err.cause !== undefined, hasCause, `${name}: cause`)
    }
  })
})

test('MessagePack leaves out undefined fields instead of sending them as nil', () => {
  const bytes = msgpackCodec.encode({ type: 'pub', channel: 'c', epoch: 'e', offset: 1, data: 'x', info: undefined } as never)
  const [push] = msgpackCodec.decodeServer(bytes)
  assert.deepEqual(push, { type: 'pub', channel: 'c', epoch: 'e', offset: 1, data: 'x' })
  assert.equal(Object.hasOwn(push as object, 'info'), false)
})
