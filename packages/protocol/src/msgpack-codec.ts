import { decodeMulti, encode as msgpackEncode } from '@msgpack/msgpack'
import { concat, DEFAULT_MAX_BATCH, SERVER_MAX_BATCH, strictly, toBytes, tooMany, type Codec, type DecodeLimits, type FrameData } from './codec.js'
import { HoldfastError } from './errors.js'
import { Subprotocols } from './messages.js'
import { pongFrame } from './pong-frame.js'
import { validateClientCommand, type DecodedClientMessage } from './validate-client.js'
import { validateServerMessage } from './validate.js'

// Its own module (and the `@holdfast/protocol/msgpack` subpath), so that a browser client speaking
// JSON never loads the MessagePack library: the client imports it only when asked for MessagePack.

// MessagePack types 0xc0..0xdf: [bytes of the length field, fixed bytes after it, what the length
// counts: 0 payload bytes, 1 array entries, 2 map entries (two values each)].
const HEADS: readonly (readonly [number, number, number])[] = [
  [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], // nil, (never used), false, true
  [1, 0, 0], [2, 0, 0], [4, 0, 0], // bin 8/16/32
  [1, 1, 0], [2, 1, 0], [4, 1, 0], // ext 8/16/32 (a type byte, then the payload)
  [0, 4, 0], [0, 8, 0], // float 32/64
  [0, 1, 0], [0, 2, 0], [0, 4, 0], [0, 8, 0], // uint 8/16/32/64
  [0, 1, 0], [0, 2, 0], [0, 4, 0], [0, 8, 0], // int 8/16/32/64
  [0, 2, 0], [0, 3, 0], [0, 5, 0], [0, 9, 0], [0, 17, 0], // fixext 1/2/4/8/16
  [1, 0, 0], [2, 0, 0], [4, 0, 0], // str 8/16/32
  [2, 0, 1], [4, 0, 1], // array 16/32
  [2, 0, 2], [4, 0, 2], // map 16/32
]

/**
 * MessagePack declares container sizes up front and the decoder allocates for them before reading
 * a single entry. Every value takes at least one byte, so no valid frame has more values still to
 * come than bytes left: one that does is refused here, before decoding. Bounding each container by
 * the frame's size alone is not enough: a 64 KB frame of nested array headers, each within that
 * bound, would make the decoder allocate gigabytes.
 */
function declaresMoreThanItHolds(bytes: Uint8Array): boolean {
  const end = bytes.byteLength
  let pos = 0
  // Values declared by the containers opened so far and not read yet.
  let pending = 0
  while (pos < end) {
    const t = bytes[pos++] as number
    if (pending > 0) pending--
    let values = 0
    if (t < 0x80 || t >= 0xe0) continue // fixint
    if (t < 0x90) values = 2 * (t & 0x0f) // fixmap
    else if (t < 0xa0) values = t & 0x0f // fixarray
    else if (t < 0xc0) pos += t & 0x1f // fixstr
    else {
      const [lengthBytes, fixed, counts] = HEADS[t - 0xc0] as readonly [number, number, number]
      if (pos + lengthBytes > end) return false // truncated: the decoder says so
      let length = 0
      for (let i = 0; i < lengthBytes; i++) length = length * 256 + (bytes[pos++] as number)
      pos += fixed
      if (counts === 0) pos += length
      else values = counts * length
    }
    pending += values
    if (pending > end - pos) return true
  }
  return false
}

function decodeMsgpack<T>(data: FrameData, validate: (v: unknown) => T, limits: DecodeLimits | undefined, defaultMax: number): T[] {
  if (typeof data === 'string') throw new HoldfastError('bad_request', 'msgpack protocol expects binary frames')
  const bytes = toBytes(data)
  if (declaresMoreThanItHolds(bytes)) throw new HoldfastError('bad_request', 'frame declares more values than it holds')
  const max = limits?.maxBatch ?? defaultMax
  // No container can declare more entries than the frame has bytes: this stops a 5-byte header
  // from asking the decoder for a 4-billion-element array.
  const bound = bytes.byteLength
  const out: T[] = []
  try {
    for (const value of decodeMulti(bytes, {
      maxStrLength: bound,
      maxBinLength: bound,
      maxArrayLength: bound,
      maxMapLength: bound,
      maxExtLength: bound,
    })) {
      if (out.length === max) throw tooMany(max)
      out.push(validate(value))
    }
  } catch (cause) {
    if (cause instanceof HoldfastError) throw cause
    throw new HoldfastError('bad_request', 'frame is not valid MessagePack', { cause })
  }
  if (out.length === 0) throw new HoldfastError('bad_request', 'empty frame')
  return out
}

const sdkPong = pongFrame(msgpackEncode({ type: 'pong' }), false)

function decodeCommands(data: FrameData, limits?: DecodeLimits): DecodedClientMessage[] {
  return sdkPong(data) ?? decodeMsgpack(data, validateClientCommand, limits, DEFAULT_MAX_BATCH)
}

/** MessagePack: concatenated values, sent as binary frames; chosen with the `holdfast.v1.msgpack` subprotocol. */
export const msgpackCodec: Codec = {
  name: 'msgpack',
  subprotocol: Subprotocols.msgpack,
  binary: true,
  encode: (msg) => msgpackEncode(msg, { ignoreUndefined: true }),
  frame: (parts) => concat(parts, undefined),
  decodeClient: strictly(decodeCommands),
  decodeCommands,
  decodeServer: (data, limits) => decodeMsgpack(data, validateServerMessage, limits, SERVER_MAX_BATCH),
}

