import { encode as msgpackEncode } from '@msgpack/msgpack'
import { HoldfastError } from '@holdfast/protocol'
import { bytesReplacer } from '@holdfast/protocol/internal'

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
    size = Math.max(msgpackEncode(data).byteLength, Buffer.byteLength(JSON.stringify(data, bytesReplacer) ?? ''))
  } catch (cause) {
    throw new HoldfastError('bad_request', 'data cannot be encoded', { cause })
  }
  if (size > maxPayload) throw new HoldfastError('payload_too_large', `data is ${size} bytes (encoded for its largest codec); the limit is ${maxPayload}`)
  return size
}
