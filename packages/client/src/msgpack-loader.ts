import type { ClientCodec } from '@holdfast/protocol/internal'

/**
 * The MessagePack codec, imported when a client asks for `protocol: 'msgpack'` and not before: a
 * bundler puts it in a chunk of its own, so a JSON client never downloads the MessagePack library.
 */
export function loadMsgpack(): Promise<ClientCodec> {
  return import('@holdfast/protocol/msgpack').then((m) => m.msgpackCodec)
}
