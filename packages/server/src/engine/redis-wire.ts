import { randomInt } from 'node:crypto'
import { decode, encode } from '@msgpack/msgpack'
import { HoldfastError, type ClientInfo, type Publication } from '@holdfast/protocol'
import type { StreamPublication } from './engine.js'

/**
 * The data layout the Redis engine's TypeScript side shares with its Lua side (redis-scripts.ts):
 * key names, the pub/sub message format the scripts build, and the reply parsers.
 */

/**
 * Key layout. Every key of a channel carries the channel as its hash tag, so in a Cluster they
 * share a slot and one script can touch them all.
 */
export class RedisKeys {
  readonly #p: string
  readonly control: string
  readonly nodes: string
  readonly nodesExp: string

  constructor(prefix: string) {
    this.#p = prefix
    this.control = `${prefix}:control`
    // The tag may equal a channel name, so the suffixes must differ from every per-channel suffix.
    this.nodes = `${prefix}:{nodes}:registry`
    this.nodesExp = `${prefix}:{nodes}:registry-exp`
  }

  /** Hash: e (epoch), t (top offset), x (expiry, ms). */
  meta(ch: string): string {
    return `${this.#p}:{${ch}}:meta`
  }
  /** Stream of publications with ids `<offset>-1` and fields t (time), d (data), i (info). */
  stream(ch: string): string {
    return `${this.#p}:{${ch}}:stream`
  }
  idem(ch: string, key: string): string {
    return `${this.#p}:{${ch}}:idem:${key}`
  }
  /** Hash clientId → msgpack ClientInfo. */
  presence(ch: string): string {
    return `${this.#p}:{${ch}}:presence`
  }
  /** Zset clientId → expiry (ms). */
  presenceExp(ch: string): string {
    return `${this.#p}:{${ch}}:presence-exp`
  }
  /** Pub/sub channel of publications, joins and leaves. */
  pub(ch: string): string {
    return `${this.#p}:{${ch}}:pub`
  }
  claim(key: string): string {
    return `${this.#p}:rpc:${key}`
  }
  /** Zset node id → expiry (ms): the nodes with subscribers of the channel (webhooks' occupied/vacated). */
  occupancy(ch: string): string {
    return `${this.#p}:{${ch}}:occupancy`
  }
}

/** Pub/sub message kinds, the first byte of a message on a channel's pub/sub channel. */
const KIND_PUB = 0x70 // 'p' <offset>:<epoch>:<info length>:<info><data>, built by the publish script
// 'q', the same layout, built by the commit script of a replicated publish. A commit may publish an
// offset again (after a failover, the new primary's commit mark can lag what was fanned out), with
// the same content; a 'p' offset is published exactly once.
const KIND_COMMITTED = 0x71
const KIND_JOIN = 0x6a // 'j' <msgpack ClientInfo>
const KIND_LEAVE = 0x6c // 'l' <msgpack ClientInfo>
const COLON = 0x3a

export const EMPTY = Buffer.alloc(0)

export function pack(value: unknown): Buffer {
  const u8 = encode(value)
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength)
}

/**
 * Decode from a private copy: msgpack binaries are views of the input, and the input is a slice
 * of ioredis's socket chunk — a view would keep that whole chunk alive and surface as a Buffer
 * where the publisher sent a plain Uint8Array.
 */
export function unpack(bytes: Uint8Array): unknown {
  return decode(new Uint8Array(bytes))
}

export function newEpoch(): string {
  // 36^8 ≈ 2.8e12 values, as in the memory engine. Lua's math.random is seeded identically on
  // every script run, so the randomness comes from here and the script only decides to use it.
  return randomInt(36 ** 8)
    .toString(36)
    .padStart(8, '0')
}

export function isClientInfo(v: unknown): v is ClientInfo {
  return typeof v === 'object' && v !== null && typeof (v as ClientInfo).client === 'string' && typeof (v as ClientInfo).user === 'string'
}

export function malformed(what: string): HoldfastError {
  return new HoldfastError('internal', `redis engine: unexpected reply to ${what}`)
}

export function asArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw malformed(what)
  return v
}

export function asInt(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v
  if (Buffer.isBuffer(v)) {
    const n = Number(v.toString('latin1'))
    if (Number.isSafeInteger(n)) return n
  }
  throw malformed(what)
}

export function asString(v: unknown, what: string): string {
  if (Buffer.isBuffer(v)) return v.toString('utf8')
  if (typeof v === 'string') return v
  throw malformed(what)
}

export function asBuffer(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v
  throw malformed(what)
}

/** Reads `<digits>:` from `buf` at `at`; returns the number and where its colon ends. */
function readInt(buf: Buffer, at: number): [number, number] {
  const colon = buf.indexOf(COLON, at)
  if (colon < 0) throw new Error('truncated message')
  const n = Number(buf.toString('latin1', at, colon))
  if (!Number.isSafeInteger(n) || n < 0) throw new Error('bad number in message')
  return [n, colon + 1]
}

/** One XRANGE entry of a channel stream, `[id, [field, value, ...]]`, as a publication. */
export function decodeEntry(raw: unknown): Publication {
  const [id, fields] = asArray(raw, 'history')
  const offset = Number.parseInt(asString(id, 'history'), 10)
  const list = asArray(fields, 'history')
  let data: unknown = null
  let info: ClientInfo | undefined
  for (let i = 0; i + 1 < list.length; i += 2) {
    const field = asString(list[i], 'history')
    if (field === 'd') data = unpack(asBuffer(list[i + 1], 'history'))
    else if (field === 'i') {
      const v = unpack(asBuffer(list[i + 1], 'history'))
      if (isClientInfo(v)) info = v
    }
  }
  return info === undefined ? { offset, data } : { offset, data, info }
}

export function encodeJoinLeave(kind: 'join' | 'leave', info: ClientInfo): Buffer {
  return Buffer.concat([Buffer.of(kind === 'join' ? KIND_JOIN : KIND_LEAVE), pack(info)])
}

export type FeedMessage = { kind: 'pub'; pub: StreamPublication; repeatable: boolean } | { kind: 'join' | 'leave'; info: ClientInfo }

/**
 * A message from a channel's pub/sub channel. Hot path: a few byte scans and one MessagePack
 * decode. Throws on a malformed message; returns undefined for one it does not know.
 */
export function decodeFeedMessage(message: Buffer): FeedMessage | undefined {
  const kind = message[0]
  if (kind === KIND_PUB || kind === KIND_COMMITTED) {
    const repeatable = kind === KIND_COMMITTED
    const [offset, afterOffset] = readInt(message, 1)
    const colon = message.indexOf(COLON, afterOffset)
    if (colon < 0) throw new Error('truncated message')
    const epoch = message.toString('latin1', afterOffset, colon)
    const [infoLength, infoAt] = readInt(message, colon + 1)
    const dataAt = infoAt + infoLength
    if (dataAt > message.length) throw new Error('truncated message')
    const data = unpack(message.subarray(dataAt))
    if (infoLength === 0) return { kind: 'pub', pub: { offset, epoch, data }, repeatable }
    const info = unpack(message.subarray(infoAt, dataAt))
    return { kind: 'pub', pub: isClientInfo(info) ? { offset, epoch, data, info } : { offset, epoch, data }, repeatable }
  }
  if (kind === KIND_JOIN || kind === KIND_LEAVE) {
    const info = unpack(message.subarray(1))
    if (isClientInfo(info)) return { kind: kind === KIND_JOIN ? 'join' : 'leave', info }
  }
  return undefined
}
