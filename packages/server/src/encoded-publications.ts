/**
 * Stored publications encoded once per codec. A history page or a recovery holds up to
 * `maxReplyBytes` of publications; encoding one as a single message (one string of a megabyte,
 * then its UTF-8 bytes) blocked the event loop for milliseconds per page, every time any client
 * read the same history. Here a reply is built from each publication's own encoded bytes, kept in
 * a small cache keyed by the publication as stored (`STORED_KEY`), and spliced into the envelope:
 * a page read again costs one copy of its bytes.
 *
 * The bytes are those the codec would produce for the whole message (the same values, the same
 * keys; only the order of a `pub` push's keys differs, which neither JSON nor MessagePack gives
 * a meaning to).
 */
import type { Codec, Publication, ServerMessage } from '@holdfast/protocol'
import { STORED_KEY, type StoredPublication } from './engine/engine.js'

/**
 * Most bytes of encoded publications kept per codec. A page is at most `maxReplyBytes` (1 MiB by
 * default), so a few hot pages stay encoded; what a cached entry pins beyond the engine's own
 * history (a publication the history dropped meanwhile) is bounded by the same figure.
 */
export const ENCODED_CACHE_BYTES = 8 * 1024 * 1024
/** An entry larger than this is encoded each time rather than evicting a quarter of the cache. */
const MAX_ENTRY_BYTES = ENCODED_CACHE_BYTES / 4
/** A message spliced from pieces smaller than this is joined into one buffer (cheaper to write than many small pieces). */
const JOIN_BELOW = 16 * 1024

const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const MSGPACK_EMPTY_ARRAY = 0x90

/** Least recently used first; bounded by the bytes it holds. */
class EncodedCache {
  readonly #entries = new Map<object, Uint8Array>()
  #bytes = 0

  get bytes(): number {
    return this.#bytes
  }

  get(key: object): Uint8Array | undefined {
    const hit = this.#entries.get(key)
    if (hit !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, hit)
    }
    return hit
  }

  set(key: object, bytes: Uint8Array): void {
    if (bytes.byteLength > MAX_ENTRY_BYTES) return
    this.#entries.set(key, bytes)
    this.#bytes += bytes.byteLength
    for (const [k, v] of this.#entries) {
      if (this.#bytes <= ENCODED_CACHE_BYTES) break
      this.#entries.delete(k)
      this.#bytes -= v.byteLength
    }
  }
}

const caches = { json: new EncodedCache(), msgpack: new EncodedCache() }

/**
 * One encoded message in pieces (a reply spliced from cached publications). It is written to the
 * socket as it is, piece after piece in one system call: a page of a megabyte is never copied
 * into one buffer first.
 */
export class Pieces {
  constructor(
    readonly parts: readonly Uint8Array[],
    readonly byteLength: number,
  ) {}
}

/** What a connection queues: one buffer, or a message in pieces. */
export type Encoded = Uint8Array | Pieces

/** The pieces as one buffer (for a transport that cannot write pieces). */
export function joined(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (const p of parts) {
    out.set(p, pos)
    pos += p.byteLength
  }
  return out
}

function pieces(parts: Uint8Array[], size: number): Encoded {
  return size < JOIN_BELOW ? joined(parts, size) : new Pieces(parts, size)
}

/** What a codec puts between the messages of one frame (JSON: a newline; MessagePack: nothing). */
export function separatorOf(codec: Codec): Uint8Array | undefined {
  return codec.name === 'json' ? NEWLINE : undefined
}
const NEWLINE = Uint8Array.of(0x0a)

/** Bytes of encoded publications held now, all codecs together (a gauge for the node's metrics). */
export function encodedCacheBytes(): number {
  return caches.json.bytes + caches.msgpack.bytes
}

function keyOf(pub: Publication): object | undefined {
  return (pub as StoredPublication)[STORED_KEY]
}

/** A publication as a list entry (`{offset, data, info?}`): from the cache when it is a stored one. */
function entryBytes(codec: Codec, pub: Publication): Uint8Array {
  const key = keyOf(pub)
  const cache = caches[codec.name]
  if (key !== undefined) {
    const hit = cache.get(key)
    if (hit !== undefined) return hit
  }
  const entry = pub.info === undefined ? { offset: pub.offset, data: pub.data } : { offset: pub.offset, data: pub.data, info: pub.info }
  // A list entry is not a message of its own, but every codec encodes any value the same way.
  const bytes = codec.encode(entry as unknown as ServerMessage)
  if (key !== undefined) cache.set(key, bytes)
  return bytes
}

function msgpackArrayHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x90 | n)
  if (n < 65_536) return Uint8Array.of(0xdc, n >>> 8, n & 0xff)
  return Uint8Array.of(0xdd, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}

/**
 * `shell` is the message encoded with an empty publications list as its last value; the entries
 * go where that list is. Undefined when the shell does not end that way (then the caller encodes
 * the message whole).
 */
function spliceList(codec: Codec, shell: Uint8Array, entries: readonly Uint8Array[]): Encoded | undefined {
  const len = shell.byteLength
  const parts: Uint8Array[] = []
  let size = 0
  const add = (p: Uint8Array): void => {
    parts.push(p)
    size += p.byteLength
  }
  if (codec.name === 'json') {
    // ...,"publications":[]}} : the list is followed by the objects that close around it.
    let tail = 0
    while (tail < len && shell[len - 1 - tail] === CLOSE_BRACE) tail++
    const close = len - 1 - tail
    if (shell[close] !== CLOSE_BRACKET || shell[close - 1] !== OPEN_BRACKET) return undefined
    add(shell.subarray(0, close))
    const comma = Uint8Array.of(COMMA)
    entries.forEach((e, i) => {
      if (i > 0) add(comma)
      add(e)
    })
    add(shell.subarray(close))
    return pieces(parts, size)
  }
  // MessagePack maps have no end marker: the empty array is the last byte.
  if (shell[len - 1] !== MSGPACK_EMPTY_ARRAY) return undefined
  add(shell.subarray(0, len - 1))
  add(msgpackArrayHeader(entries.length))
  for (const e of entries) add(e)
  return pieces(parts, size)
}

/**
 * Encode a server message. A reply whose result lists stored publications (a history page, a
 * subscribe's recovery) is built from their cached encodings; anything else is encoded whole.
 */
export function encodeMessage(codec: Codec, msg: ServerMessage): Encoded {
  const result = (msg as { result?: { publications?: unknown } }).result
  const pubs = result?.publications
  if (!Array.isArray(pubs) || pubs.length === 0 || !(pubs as Publication[]).some((p) => keyOf(p) !== undefined)) return codec.encode(msg)
  const { publications: _, ...rest } = result as { publications: Publication[] }
  const shell = codec.encode({ id: (msg as { id: number }).id, result: { ...rest, publications: [] } } as unknown as ServerMessage)
  return spliceList(codec, shell, (pubs as Publication[]).map((p) => entryBytes(codec, p))) ?? codec.encode(msg)
}

/** A MessagePack map header's entry count and length, for a fixmap or map16; undefined otherwise. */
function msgpackMap(bytes: Uint8Array): { count: number; head: number } | undefined {
  const t = bytes[0] as number
  if (t >= 0x80 && t <= 0x8f) return { count: t & 0x0f, head: 1 }
  if (t === 0xde) return { count: ((bytes[1] as number) << 8) | (bytes[2] as number), head: 3 }
  return undefined
}

/** `head`'s keys and then `entry`'s, as one object: undefined when either is not a plain map. */
function mergeObjects(codec: Codec, head: Uint8Array, entry: Uint8Array): Encoded | undefined {
  if (codec.name === 'json') {
    if (head.at(-1) !== CLOSE_BRACE || entry[0] !== OPEN_BRACE || head.byteLength < 3 || entry.byteLength < 3) return undefined
    return pieces([head.subarray(0, head.byteLength - 1), Uint8Array.of(COMMA), entry.subarray(1)], head.byteLength + entry.byteLength - 1)
  }
  const a = msgpackMap(head)
  const b = msgpackMap(entry)
  if (a === undefined || b === undefined) return undefined
  const count = a.count + b.count
  if (count >= 65_536) return undefined
  const header = count < 16 ? Uint8Array.of(0x80 | count) : Uint8Array.of(0xde, count >>> 8, count & 0xff)
  const body = [header, head.subarray(a.head), entry.subarray(b.head)]
  return pieces(body, body.reduce((n, p) => n + p.byteLength, 0))
}

/** A stored publication as a `pub` push (a recovery page past the subscribe reply). */
export function encodePubPush(codec: Codec, channel: string, epoch: string, pub: Publication): Encoded {
  if (keyOf(pub) !== undefined) {
    const merged = mergeObjects(codec, codec.encode({ type: 'pub', channel, epoch } as unknown as ServerMessage), entryBytes(codec, pub))
    if (merged !== undefined) return merged
  }
  return codec.encode(pubPush(channel, epoch, pub))
}

/** A publication as a `pub` push message. */
export function pubPush(channel: string, epoch: string, pub: Publication): ServerMessage {
  return pub.info === undefined
    ? { type: 'pub', channel, epoch, offset: pub.offset, data: pub.data }
    : { type: 'pub', channel, epoch, offset: pub.offset, data: pub.data, info: pub.info }
}
