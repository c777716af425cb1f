import { decodeMulti, encode as msgpackEncode } from '@msgpack/msgpack'
import { HoldfastError } from './errors.js'
import { Subprotocols, type ClientMessage, type ServerMessage } from './messages.js'
import { validateClientMessage, validateServerMessage } from './validate.js'

/** What a WebSocket hands over: a text frame as string, a binary frame as bytes. */
export type FrameData = string | Uint8Array | ArrayBuffer

export interface DecodeLimits {
  /** Most messages accepted in one frame. @default 100 for client frames; unlimited for server frames */
  maxBatch?: number
}

const DEFAULT_MAX_BATCH = 100
// A server coalesces everything queued for a connection in one turn into one frame (hundreds of
// publications under load); a client trusts its server's frame size instead of a count.
const SERVER_MAX_BATCH = Number.POSITIVE_INFINITY

/**
 * A codec encodes single messages to bytes and joins encoded messages into one frame, so a
 * publication is encoded once and the same bytes are framed for every subscriber.
 */
export interface Codec {
  readonly name: 'json' | 'msgpack'
  readonly subprotocol: string
  /** true: frames go out as binary WebSocket messages; false: as text. */
  readonly binary: boolean
  encode(msg: ServerMessage | ClientMessage): Uint8Array
  /** Join already-encoded messages into one frame (a batch). */
  frame(parts: readonly Uint8Array[]): Uint8Array
  /** Decode a frame from a client; every message is validated. Throws `HoldfastError('bad_request')`. */
  decodeClient(data: FrameData, limits?: DecodeLimits): ClientMessage[]
  /** Decode a frame from a server; every message is validated. Throws `HoldfastError('bad_request')`. */
  decodeServer(data: FrameData, limits?: DecodeLimits): ServerMessage[]
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })
const NEWLINE = 0x0a

function toBytes(data: FrameData): Uint8Array {
  if (typeof data === 'string') return textEncoder.encode(data)
  return data instanceof Uint8Array ? data : new Uint8Array(data)
}

function concat(parts: readonly Uint8Array[], separator: number | undefined): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  let size = separator === undefined ? 0 : parts.length - 1
  for (const p of parts) size += p.byteLength
  const out = new Uint8Array(size)
  let pos = 0
  for (let i = 0; i < parts.length; i++) {
    if (i > 0 && separator !== undefined) out[pos++] = separator
    const p = parts[i] as Uint8Array
    out.set(p, pos)
    pos += p.byteLength
  }
  return out
}

function tooMany(max: number): HoldfastError {
  return new HoldfastError('bad_request', `frame holds more than ${max} messages`)
}

// MessagePack decoders refuse a `__proto__` map key. If the server took one from a JSON client, a
// publication carrying it would make the frames of every MessagePack subscriber undecodable, and
// again on every recovery. So client frames may not hold such a key in either encoding. In JSON
// the key can only be spelled literally or with a \u escape, which keeps the walk off the hot path.
function hasProtoKey(line: string, value: unknown): boolean {
  if (!line.includes('__proto__') && !line.includes('\\u')) return false
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (typeof v !== 'object' || v === null) continue
    if (!Array.isArray(v) && Object.hasOwn(v, '__proto__')) return true
    for (const child of Object.values(v)) stack.push(child)
  }
  return false
}

function decodeJson<T>(
  data: FrameData,
  validate: (v: unknown) => T,
  limits: DecodeLimits | undefined,
  defaultMax: number,
  refuseProtoKeys: boolean,
): T[] {
  let text: string
  try {
    text = typeof data === 'string' ? data : textDecoder.decode(toBytes(data))
  } catch (cause) {
    throw new HoldfastError('bad_request', 'frame is not valid UTF-8', { cause })
  }
  const max = limits?.maxBatch ?? defaultMax
  const out: T[] = []
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    if (end > start) {
      if (out.length === max) throw tooMany(max)
      const line = text.slice(start, end)
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch (cause) {
        throw new HoldfastError('bad_request', 'frame is not valid JSON', { cause })
      }
      if (refuseProtoKeys && hasProtoKey(line, value)) throw new HoldfastError('bad_request', 'the key __proto__ is not allowed')
      out.push(validate(value))
    }
    start = end + 1
  }
  if (out.length === 0) throw new HoldfastError('bad_request', 'empty frame')
  return out
}

/** JSON: one message per line, sent as text frames. The default codec. */
export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: Subprotocols.json,
  binary: false,
  encode: (msg) => textEncoder.encode(JSON.stringify(msg)),
  frame: (parts) => concat(parts, NEWLINE),
  decodeClient: (data, limits) => decodeJson(data, validateClientMessage, limits, DEFAULT_MAX_BATCH, true),
  decodeServer: (data, limits) => decodeJson(data, validateServerMessage, limits, SERVER_MAX_BATCH, false),
}

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

/** MessagePack: concatenated values, sent as binary frames; chosen with the `holdfast.v1.msgpack` subprotocol. */
export const msgpackCodec: Codec = {
  name: 'msgpack',
  subprotocol: Subprotocols.msgpack,
  binary: true,
  encode: (msg) => msgpackEncode(msg, { ignoreUndefined: true }),
  frame: (parts) => concat(parts, undefined),
  decodeClient: (data, limits) => decodeMsgpack(data, validateClientMessage, limits, DEFAULT_MAX_BATCH),
  decodeServer: (data, limits) => decodeMsgpack(data, validateServerMessage, limits, SERVER_MAX_BATCH),
}

/** The codec for a negotiated subprotocol; JSON when none (or an unknown one) was negotiated. */
export function codecFor(subprotocol: string | undefined | null): Codec {
  return subprotocol === Subprotocols.msgpack ? msgpackCodec : jsonCodec
}
