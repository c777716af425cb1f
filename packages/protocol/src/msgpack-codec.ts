import { decodeMulti, encode as msgpackEncode } from '@msgpack/msgpack'
import { concat, DEFAULT_MAX_BATCH, SERVER_MAX_BATCH, toBytes, tooMany, type Codec, type DecodeLimits, type FrameData } from './codec.js'
import { HoldfastError } from './errors.js'
import { Subprotocols } from './messages.js'
import { validateClientMessage } from './validate-client.js'
import { validateServerMessage } from './validate.js'

// Its own module (and the `@holdfast/protocol/msgpack` subpath), so that a browser client speaking
// JSON never loads the MessagePack library: the client imports it only when asked for MessagePack.

function decodeMsgpack<T>(data: FrameData, validate: (v: unknown) => T, limits: DecodeLimits | undefined, defaultMax: number): T[] {
  if (typeof data === 'string') throw new HoldfastError('bad_request', 'msgpack protocol expects binary frames')
  const bytes = toBytes(data)
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

