import { createHash, randomInt } from 'node:crypto'
import { decode, encode } from '@msgpack/msgpack'
import { HoldfastError, type ClientInfo, type Publication } from '@holdfast/protocol'
import type { StreamPublication } from './engine.js'

/**
 * The Lua side of the Redis engine, and the data layout it shares with the TypeScript side: key
 * names, the pub/sub message format the publish script builds, and the reply parsers. Every operation that reads and then writes runs as one script,
 * so it is atomic on the Redis thread: two nodes publishing to one channel can never be given the
 * same offset, and the PUBLISH that fans a publication out happens in the same step that stores
 * it, so the live feed carries a channel's publications in offset order.
 *
 * Time: every script takes `now` (ms) as its first argument. A negative value means "use the
 * Redis server clock" (TIME), which gives all nodes one clock; tests pass their own to make TTLs
 * deterministic. Expiry is therefore checked logically in the scripts (an `x` field, a zset score,
 * a prefix of the stored value), and PEXPIRE/PX are only the garbage collector behind it.
 *
 * Needs Redis ≥ 6.2 (XTRIM MINID) — effects replication, which lets a script write after TIME,
 * is the default since 5.0.
 */

const PRELUDE = `
local function now_ms(arg)
  local now = tonumber(arg)
  if now >= 0 then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua 5.1 prints large numbers in exponent form; ids, scores and timestamps must stay integers.
local function int(n)
  return string.format('%d', n)
end

-- Key TTLs only grow: a short-lived member must not cut the life of the others.
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- Drop the members of a (hash, expiry zset) pair whose expiry is at or before now.
local function prune(hash, zset, now)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', int(now))
  if #gone == 0 then return end
  for i = 1, #gone do redis.call('HDEL', hash, gone[i]) end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', int(now))
end

-- The stream's epoch and top offset. A missing or expired stream starts over in a new epoch;
-- entries that outlived their meta (evicted, or expired logically) are dropped with it, so an
-- offset is never reused inside one epoch. Concurrent callers agree: this runs atomically.
local function stream_meta(meta, stream, now, candidate, ttl)
  local m = redis.call('HMGET', meta, 'e', 't', 'x')
  if m[1] and m[3] and now < tonumber(m[3]) then return m[1], tonumber(m[2]) or 0 end
  redis.call('DEL', meta, stream)
  redis.call('HSET', meta, 'e', candidate, 't', '0', 'x', int(now + ttl))
  redis.call('PEXPIRE', meta, ttl)
  return candidate, 0
end
`

/**
 * KEYS: meta, stream[, idempotency]
 * ARGV: now, candidate epoch, historySize, streamTtlMs, pub/sub channel, data, info, idempotencyTtlMs
 * → { offset, epoch, duplicate (0|1) }
 */
const PUBLISH = `
local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms(ARGV[1])
local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local data, info = ARGV[6], ARGV[7]

if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local exp, offset, epoch = string.match(seen, '^(%d+):(%d+):(.+)$')
    if exp and now < tonumber(exp) then return { tonumber(offset), epoch, 1 } end
  end
end

local epoch = stream_meta(meta, stream, now, ARGV[2], ttl)
local top = redis.call('HINCRBY', meta, 't', 1)
redis.call('HSET', meta, 'x', int(now + ttl))
redis.call('PEXPIRE', meta, ttl)

if size > 0 then
  -- Explicit ids <offset>-1 make a range of offsets a plain XRANGE. 't' comes first so the
  -- history script finds an entry's age without scanning its fields.
  local id = int(top) .. '-1'
  if info == '' then
    redis.call('XADD', stream, 'MAXLEN', size, id, 't', int(now), 'd', data)
  else
    redis.call('XADD', stream, 'MAXLEN', size, id, 't', int(now), 'd', data, 'i', info)
  end
  redis.call('PEXPIRE', stream, ttl)
else
  -- Keeping nothing must also forget what an earlier, larger historySize kept: the history
  -- script relies on the stored entries being one run of consecutive offsets ending at the top.
  redis.call('DEL', stream)
end

if idem then
  local idem_ttl = tonumber(ARGV[8])
  redis.call('SET', idem, int(now + idem_ttl) .. ':' .. int(top) .. ':' .. epoch, 'PX', idem_ttl)
end

redis.call('PUBLISH', ARGV[5], 'p' .. int(top) .. ':' .. epoch .. ':' .. int(#info) .. ':' .. info .. data)
return { top, epoch, 0 }
`

/**
 * KEYS: meta, stream
 * ARGV: now, candidate epoch, historySize, historyTtlMs, streamTtlMs, since (-1: none), since epoch, limit
 * → { top, epoch, continuous (0|1), entries (XRANGE reply) }
 */
const HISTORY = `
local meta, stream = KEYS[1], KEYS[2]
local now = now_ms(ARGV[1])
local size, history_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local since, limit = tonumber(ARGV[6]), tonumber(ARGV[8])
local epoch, top = stream_meta(meta, stream, now, ARGV[2], tonumber(ARGV[5]))

-- Trim from the oldest end only, by size and then by age, stopping at the first entry that is
-- kept: what stays is one run of consecutive offsets, even if a clock stepped back.
if top - size + 1 > 1 then redis.call('XTRIM', stream, 'MINID', int(top - size + 1)) end
local first = top + 1
while true do
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 128)
  if #head == 0 then break end
  local live = nil
  for i = 1, #head do
    if now < tonumber(head[i][2][2]) + history_ttl then
      live = head[i][1]
      break
    end
  end
  if live then
    redis.call('XTRIM', stream, 'MINID', live)
    first = tonumber(string.match(live, '^(%d+)'))
    break
  end
  local last = tonumber(string.match(head[#head][1], '^(%d+)'))
  redis.call('XTRIM', stream, 'MINID', int(last + 1))
end

local from, to
if since >= 0 then
  if ARGV[7] ~= epoch or since > top or since + 1 < first then return { top, epoch, 0, {} } end
  from, to = since + 1, math.min(top, since + limit)
else
  from, to = math.max(first, top - limit + 1), top
end
if limit == 0 or from > to then return { top, epoch, 1, {} } end
return { top, epoch, 1, redis.call('XRANGE', stream, int(from), int(to)) }
`

/** KEYS: presence hash, presence expiry zset. ARGV: now, ttlMs, client id, info. */
const PRESENCE_ADD = `
local now, ttl = now_ms(ARGV[1]), tonumber(ARGV[2])
prune(KEYS[1], KEYS[2], now)
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], int(now + ttl), ARGV[3])
extend(KEYS[1], ttl)
extend(KEYS[2], ttl)
return 1
`

/** KEYS: hash, expiry zset. ARGV: member. Used for presence and for the node registry. */
const MEMBER_REMOVE = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`

/** KEYS: hash, expiry zset. ARGV: now. → HGETALL of the live members. */
const MEMBERS = `
prune(KEYS[1], KEYS[2], now_ms(ARGV[1]))
return redis.call('HGETALL', KEYS[1])
`

/** KEYS: registry hash, registry expiry zset. ARGV: now, ttlMs, node id, info. */
const NODE_REGISTER = PRESENCE_ADD

/**
 * KEYS: claim. ARGV: now, ttlMs.
 * Stored value: 'p<expiry>:' (pending) or 'd<expiry>:<msgpack result>' (done).
 * → { 'n' } for a new claim, { 'p' } pending, { 'd', result }
 */
const CLAIM = `
local now, ttl = now_ms(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('GET', KEYS[1])
if v then
  local colon = string.find(v, ':', 2, true)
  if colon and now < tonumber(string.sub(v, 2, colon - 1)) then
    return { string.sub(v, 1, 1), string.sub(v, colon + 1) }
  end
end
redis.call('SET', KEYS[1], 'p' .. int(now + ttl) .. ':', 'PX', ttl)
return { 'n', '' }
`

/** KEYS: claim. ARGV: now, ttlMs, msgpack result. */
const CLAIM_COMPLETE = `
local now, ttl = now_ms(ARGV[1]), tonumber(ARGV[2])
redis.call('SET', KEYS[1], 'd' .. int(now + ttl) .. ':' .. ARGV[3], 'PX', ttl)
return 1
`

/** What a script runs on: the part of an ioredis client (Redis or Cluster) the engine uses. */
export interface ScriptRunner {
  callBuffer(...args: [command: string, ...args: (string | Buffer | number)[]]): Promise<unknown>
}

/**
 * A script called by its SHA1, loaded on first use: after a Redis restart (the script cache is
 * empty) the NOSCRIPT reply makes it fall back to EVAL once, which caches it again.
 */
export class LuaScript {
  readonly sha: string
  readonly source: string

  constructor(
    readonly name: string,
    body: string,
  ) {
    this.source = PRELUDE + body
    this.sha = createHash('sha1').update(this.source).digest('hex')
  }

  async run(client: ScriptRunner, keys: readonly string[], args: readonly (string | Buffer | number)[]): Promise<unknown> {
    try {
      return await client.callBuffer('evalsha', this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await client.callBuffer('eval', this.source, keys.length, ...keys, ...args)
    }
  }
}

export const Scripts = {
  publish: new LuaScript('publish', PUBLISH),
  history: new LuaScript('history', HISTORY),
  presenceAdd: new LuaScript('presenceAdd', PRESENCE_ADD),
  memberRemove: new LuaScript('memberRemove', MEMBER_REMOVE),
  members: new LuaScript('members', MEMBERS),
  nodeRegister: new LuaScript('nodeRegister', NODE_REGISTER),
  claim: new LuaScript('claim', CLAIM),
  claimComplete: new LuaScript('claimComplete', CLAIM_COMPLETE),
} as const

// ------------------------------------------------------------------ layout and wire format

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
}

/** Pub/sub message kinds, the first byte of a message on a channel's pub/sub channel. */
const KIND_PUB = 0x70 // 'p' <offset>:<epoch>:<info length>:<info><data>, built by the publish script
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

export type FeedMessage = { kind: 'pub'; pub: StreamPublication } | { kind: 'join' | 'leave'; info: ClientInfo }

/**
 * A message from a channel's pub/sub channel. Hot path: a few byte scans and one MessagePack
 * decode. Throws on a malformed message; returns undefined for one it does not know.
 */
export function decodeFeedMessage(message: Buffer): FeedMessage | undefined {
  const kind = message[0]
  if (kind === KIND_PUB) {
    const [offset, afterOffset] = readInt(message, 1)
    const colon = message.indexOf(COLON, afterOffset)
    if (colon < 0) throw new Error('truncated message')
    const epoch = message.toString('latin1', afterOffset, colon)
    const [infoLength, infoAt] = readInt(message, colon + 1)
    const dataAt = infoAt + infoLength
    if (dataAt > message.length) throw new Error('truncated message')
    const data = unpack(message.subarray(dataAt))
    if (infoLength === 0) return { kind: 'pub', pub: { offset, epoch, data } }
    const info = unpack(message.subarray(infoAt, dataAt))
    return { kind: 'pub', pub: isClientInfo(info) ? { offset, epoch, data, info } : { offset, epoch, data } }
  }
  if (kind === KIND_JOIN || kind === KIND_LEAVE) {
    const info = unpack(message.subarray(1))
    if (isClientInfo(info)) return { kind: kind === KIND_JOIN ? 'join' : 'leave', info }
  }
  return undefined
}
