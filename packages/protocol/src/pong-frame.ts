import { toBytes, type FrameData } from './codec.js'
import type { DecodedClientMessage } from './validate-client.js'

/**
 * Recognises the pong the SDK answers every ping with, byte for byte, before any decoding. On an
 * idle node nearly every frame is one, so the codecs answer it without a UTF-8 decode, a parse
 * and a validation (a tenth of a heartbeat's CPU on the `ws` transport). Any other spelling of a
 * pong, or a pong batched with commands, takes the ordinary path. `text`: whether a text frame
 * may carry it (JSON), or only a binary one (MessagePack refuses text frames).
 */
export function pongFrame(encoded: Uint8Array, text: boolean): (data: FrameData) => DecodedClientMessage[] | undefined {
  const spelled = text ? new TextDecoder().decode(encoded) : undefined
  return (data) => {
    if (typeof data === 'string') return data === spelled ? [{ type: 'pong' }] : undefined
    const bytes = toBytes(data)
    if (bytes.byteLength !== encoded.byteLength) return undefined
    for (let i = 0; i < encoded.byteLength; i++) if (bytes[i] !== encoded[i]) return undefined
    return [{ type: 'pong' }]
  }
}
