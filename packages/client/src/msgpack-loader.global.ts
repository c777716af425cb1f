import type { ClientCodec } from '@holdfast/protocol/internal'

// Replaces msgpack-loader.ts in the script-tag (IIFE) build, which cannot load a chunk: the codec
// comes from holdfast-msgpack.global.js, loaded by its own <script> tag before the client connects.
export function loadMsgpack(): Promise<ClientCodec> {
  const codec = (globalThis as { HoldfastMsgpack?: { msgpackCodec?: ClientCodec } }).HoldfastMsgpack?.msgpackCodec
  return codec !== undefined
    ? Promise.resolve(codec)
    : Promise.reject(new Error('protocol "msgpack" in the script-tag build needs holdfast-msgpack.global.js loaded first'))
}
