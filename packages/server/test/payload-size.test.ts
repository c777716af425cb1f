/**
 * measureData counts data in its larger encoding. Data holding bytes is measured without letting
 * JSON.stringify expand a Buffer into an array of every byte: the size must still be exactly what
 * the JSON codec writes (bytes as {"$bytes": base64}).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encode as msgpackEncode } from '@msgpack/msgpack'
import { HoldfastError } from '@holdfast/protocol'
import { bytesReplacer } from '@holdfast/protocol/internal'
import { measureData } from '../src/payload.js'

const jsonSize = (data: unknown): number => Buffer.byteLength(JSON.stringify(data, bytesReplacer) ?? '')
const expected = (data: unknown): number => Math.max(msgpackEncode(data).byteLength, jsonSize(data))

describe('measureData', () => {
  it('data with bytes anywhere measures what its JSON encoding holds', () => {
    const samples: unknown[] = [
      new Uint8Array(0),
      Buffer.from([1]),
      new Uint8Array([1, 2]),
      Buffer.alloc(3, 9),
      new Uint8Array(60_000),
      Buffer.alloc(60_000).subarray(5, 40_005),
      { a: new Uint8Array(5), b: [1, 'é"\n', { c: Buffer.alloc(7) }], d: null },
      [new Uint8Array(4), undefined, { e: undefined, f: new Uint8Array(1) }],
      JSON.parse('{"__proto__": {"x": 1}, "y": "z"}') as unknown,
      Object.assign(JSON.parse('{"__proto__": 1}') as object, { bytes: new Uint8Array(10) }),
      { when: new Date(0), bytes: new Uint8Array(2) },
    ]
    for (let n = 0; n < 50; n++) samples.push({ n, bytes: new Uint8Array(n), list: Array.from({ length: n % 4 }, (_, i) => Buffer.alloc(i * n)) })
    for (const data of samples) assert.equal(measureData(data), expected(data), JSON.stringify(data, bytesReplacer).slice(0, 80))
  })

  it('bytes past maxPayload in JSON (base64) are refused though they fit in MessagePack', () => {
    assert.throws(
      () => measureData(Buffer.alloc(60_000), 65_536),
      (err: unknown) => err instanceof HoldfastError && err.code === 'payload_too_large' && /80013 bytes/.test(err.message),
    )
    assert.equal(measureData(Buffer.alloc(40_000), 65_536), 13 + 4 * Math.ceil(40_000 / 3))
  })
})
