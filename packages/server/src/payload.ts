import { encode as msgpackEncode } from '@msgpack/msgpack'
import { HoldfastError } from '@holdfast/protocol'
import { hasBytes } from '@holdfast/protocol/internal'

/** Deepest nesting of publish/RPC data: below msgpack's encoder limit (100) with room for the envelope. */
export const MAX_DATA_DEPTH = 64

/** Whether arrays/objects nest deeper than `max`. Iterative: the input is untrusted and may be 30k levels deep. */
function tooDeep(data: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[data, 0]]
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, depth] = item
    if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v)) continue
    if (depth >= max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1])
  }
  return false
}

/**
 * The data with each byte array replaced by an empty `{"$bytes": ""}`, counting the base64 those
 * leave out. JSON.stringify would first call a Buffer's toJSON, which builds an array of every
 * byte: milliseconds of blocked event loop for each 60 kB publication of a MessagePack client.
 * (Called after tooDeep: the recursion is bounded.)
 */
function withoutBytes(v: unknown, base64: { chars: number }): unknown {
  if (v instanceof Uint8Array) {
    base64.chars += 4 * Math.ceil(v.byteLength / 3)
    return { $bytes: '' }
  }
  if (typeof v !== 'object' || v === null || typeof (v as { toJSON?: unknown }).toJSON === 'function') return v
  if (Array.isArray(v)) return v.map((x) => withoutBytes(x, base64))
  // fromEntries defines each key as an own property (`__proto__` included), as the data has it.
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutBytes(x, base64)]))
}

/** Bytes of the data's JSON encoding, byte arrays as `{"$bytes": base64}` (protocol json-bytes). */
function jsonSize(data: unknown): number {
  if (!hasBytes(data)) return Buffer.byteLength(JSON.stringify(data) ?? '')
  const base64 = { chars: 0 }
  return Buffer.byteLength(JSON.stringify(withoutBytes(data, base64)) ?? '') + base64.chars
}

/**
 * Measures publication/RPC data before it is stored, and refuses it (throws HoldfastError) when it
 * could not be delivered: anything stored must encode for subscribers of both codecs, or fan-out
 * would fail after the offset was taken, and must fit `maxPayload` in both, or a subscriber of the
 * other codec would get frames past the limit (bytes from a MessagePack publisher grow by a
 * third in JSON, as base64). Returns the larger encoded size, which the engine counts against its
 * history budget.
 */
export function measureData(data: unknown, maxPayload: number = Number.MAX_SAFE_INTEGER): number {
  if (data === undefined) return 0
  if (tooDeep(data, MAX_DATA_DEPTH)) throw new HoldfastError('bad_request', `data is nested deeper than ${MAX_DATA_DEPTH} levels`)
  let size: number
  try {
    size = Math.max(msgpackEncode(data).byteLength, jsonSize(data))
  } catch (cause) {
    throw new HoldfastError('bad_request', 'data cannot be encoded', { cause })
  }
  if (size > maxPayload) throw new HoldfastError('payload_too_large', `data is ${size} bytes (encoded for its largest codec); the limit is ${maxPayload}`)
  return size
}
