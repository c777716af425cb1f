import type { Codec } from './codec.js'
import { jsonCodec } from './json-codec.js'
import { Subprotocols } from './messages.js'
import { msgpackCodec } from './msgpack-codec.js'

/** The codec for a negotiated subprotocol; JSON when none (or an unknown one) was negotiated. */
export function codecFor(subprotocol: string | undefined | null): Codec {
  return subprotocol === Subprotocols.msgpack ? msgpackCodec : jsonCodec
}
