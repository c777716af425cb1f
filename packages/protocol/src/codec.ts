import { HoldfastError } from './errors.js'
import { Subprotocols, type ClientMessage, type ServerMessage } from './messages.js'
import { bytesReplacer, hasBytes, reviveBytes } from './json-bytes.js'
import { validateServerMessage } from './validate.js'
import type { DecodedClientMessage } from './validate-client.js'

/** What a WebSocket hands over: a text frame as string, a binary frame as bytes. */
export type FrameData = string | Uint8Array | ArrayBuffer

export interface DecodeLimits {
  /** Most messages accepted in one frame. @default 100 for client frames; unlimited for server frames */
  maxBatch?: number
}

/** @internal */
export const DEFAULT_MAX_BATCH = 100
// A server coalesces everything queued for a connection in one turn into one frame (hundreds of
// publications under load); a client trusts its server's frame size instead of a count.
/** @internal */
export const SERVER_MAX_BATCH = Number.POSITIVE_INFINITY

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
  /**
   * Decode a client frame as a server does: a malformed command whose `id` can be read comes back
   * as an `InvalidCommand` in its place (the server answers it with an error reply); anything
   * else malformed (the frame, a message without a readable id) throws `HoldfastError('bad_request')`.
   */
  decodeCommands(data: FrameData, limits?: DecodeLimits): DecodedClientMessage[]
  /** Decode a frame from a server; every message is validated. Throws `HoldfastError('bad_request')`. */
  decodeServer(data: FrameData, limits?: DecodeLimits): ServerMessage[]
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })
const NEWLINE = 0x0a

/** @internal A binary frame's bytes (a text frame is each codec's own case). */
export function toBytes(data: Uint8Array | ArrayBuffer): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data)
}

/** @internal */
export function concat(parts: readonly Uint8Array[], separator: number | undefined): Uint8Array {
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

/** @internal */
export function tooMany(max: number): HoldfastError {
  return new HoldfastError('bad_request', `frame holds more than ${max} messages`)
}

/** @internal */
export function decodeJson<T>(
  data: FrameData,
  /** Validates each decoded line (`line` is its text, for checks that need it). */
  validate: (v: unknown, line: string) => T,
  limits: DecodeLimits | undefined,
  defaultMax: number,
): T[] {
  let text: string
  try {
    text = typeof data === 'string' ? data : textDecoder.decode(toBytes(data))
  } catch (cause) {
    throw new HoldfastError('bad_request', 'frame is not valid UTF-8', { cause })
  }
  const max = limits?.maxBatch ?? defaultMax
  // Bytes travel as {"$bytes": base64} (json-bytes.ts); only a frame that spells the key is walked.
  const withBytes = text.includes('"$bytes"')
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
        value = JSON.parse(line, withBytes ? reviveBytes : undefined)
      } catch (cause) {
        throw new HoldfastError('bad_request', 'frame is not valid JSON', { cause })
      }
      out.push(validate(value, line))
    }
    start = end + 1
  }
  if (out.length === 0) throw new HoldfastError('bad_request', 'empty frame')
  return out
}

/** What a client uses of a codec: it never decodes client frames. */
export type ClientCodec = Omit<Codec, 'decodeClient' | 'decodeCommands'>

/** @internal A strict decode from a lenient one: the first malformed command fails the frame. */
export function strictly(decode: (data: FrameData, limits?: DecodeLimits) => DecodedClientMessage[]): (data: FrameData, limits?: DecodeLimits) => ClientMessage[] {
  return (data, limits) => {
    const out = decode(data, limits)
    for (const m of out) if (m.type === 'invalid') throw m.error
    return out as ClientMessage[]
  }
}

/** @internal */
export const encodeJson = (msg: ServerMessage | ClientMessage): Uint8Array =>
  textEncoder.encode(JSON.stringify(msg, hasBytes(msg) ? bytesReplacer : undefined))
/** @internal */
export const frameJson = (parts: readonly Uint8Array[]): Uint8Array => concat(parts, NEWLINE)
/** @internal */
export const decodeServerJson = (data: FrameData, limits?: DecodeLimits): ServerMessage[] => decodeJson(data, validateServerMessage, limits, SERVER_MAX_BATCH)

/**
 * The JSON codec without `decodeClient`, for the browser client: a bundle that uses only this
 * leaves out the validation of client frames. @internal
 */
export const jsonClientCodec: ClientCodec = { name: 'json', subprotocol: Subprotocols.json, binary: false, encode: encodeJson, frame: frameJson, decodeServer: decodeServerJson }



/**
 * Most bytes a client batches into one frame. The server limits a frame to its max payload plus an
 * envelope (64 KiB by default); one larger message still goes out alone.
 */
const MAX_CLIENT_FRAME_BYTES = 60 * 1024

/**
 * A client's queued messages split into frames of at most `maxBatch` messages and about
 * MAX_CLIENT_FRAME_BYTES each, in order (shared by the client's WebSocket and HTTP-stream links). @internal
 */
export function batches(parts: readonly Uint8Array[], maxBatch: number): Uint8Array[][] {
  const out: Uint8Array[][] = []
  let i = 0
  while (i < parts.length) {
    const start = i
    let bytes = 0
    while (i < parts.length && i - start < maxBatch) {
      const size = (parts[i] as Uint8Array).byteLength + 1
      if (i > start && bytes + size > MAX_CLIENT_FRAME_BYTES) break
      bytes += size
      i++
    }
    out.push(parts.slice(start, i))
  }
  return out
}
