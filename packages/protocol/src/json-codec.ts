import { DEFAULT_MAX_BATCH, decodeJson, decodeServerJson, encodeJson, frameJson, strictly, type Codec, type DecodeLimits, type FrameData } from './codec.js'
import { HoldfastError } from './errors.js'
import { Subprotocols } from './messages.js'
import { pongFrame } from './pong-frame.js'
import { validateClientCommand, type DecodedClientMessage } from './validate-client.js'

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

function refuseProtoKey(line: string, value: unknown): void {
  if (hasProtoKey(line, value)) throw new HoldfastError('bad_request', 'the key __proto__ is not allowed')
}

const sdkPong = pongFrame(encodeJson({ type: 'pong' }), true)

function decodeCommands(data: FrameData, limits?: DecodeLimits): DecodedClientMessage[] {
  return sdkPong(data) ?? decodeJson(data, (value, line) => validateClientCommand(value, () => refuseProtoKey(line, value)), limits, DEFAULT_MAX_BATCH)
}

/** JSON: one message per line, sent as text frames. The default codec. */
export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: Subprotocols.json,
  binary: false,
  encode: encodeJson,
  frame: frameJson,
  decodeClient: strictly(decodeCommands),
  decodeCommands,
  decodeServer: decodeServerJson,
}
