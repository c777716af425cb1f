import { createHash } from 'node:crypto'

/**
 * The Lua side of the Redis engine (the layout it shares with the TypeScript side is in
 * redis-wire.ts). Every operation that reads and then writes runs as one script, so it is atomic
 * on the Redis thread: two nodes publishing to one channel can never be given the same offset, and
 * the PUBLISH that fans a publication out happens in the same step that stores it (or, for a
 * replicated publish, in the commit that follows the replica's acknowledgement), so the live feed
 * carries a channel's publications in offset order.
 *
 * Time: every script takes `now` (ms) as its first argument. A negative value means "use the
 * Redis server clock" (TIME), which gives all nodes one clock; tests pass their own to make TTLs
 * deterministic. Expiry is therefore checked logically in the scripts (an `x` field, a zset score,
 * a prefix of the stored value), and PEXPIRE/PX are only the garbage collector behind it.
 *
 * Stream meta hash fields: e epoch, t top (the last offset given out), c committed (the last offset
 * readers and the live feed may see; equal to t unless replicated publishes wait for a replica),
 * x logical expiry, l the replication id of the server that last wrote it, d 'r' when that write
 * was a replicated publish, p the streamTtlMs it was written with, b when a regression last forced
 * a new epoch.
 *
 * Needs Redis >= 6.2 (XTRIM MINID) — effects replication, which lets a script write after TIME,
 * is the default since 5.0. Sharded pub/sub (SPUBLISH) needs Redis 7.
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

-- Which replication history this server's data belongs to. master_replid changes when a replica
-- is promoted (the one it followed moves to master_replid2) and when a primary restarts.
local NO_ID = '0000000000000000000000000000000000000000'
local function lineage()
  local info = redis.call('INFO', 'replication')
  return string.match(info, 'master_replid:(%x+)') or '', string.match(info, 'master_replid2:(%x+)') or NO_ID
end

-- A live stream's state, or nil. Reads nothing else and writes nothing.
local function load_stream(meta, now)
  local m = redis.call('HMGET', meta, 'e', 't', 'c', 'x', 'l', 'd', 'b')
  if not m[1] or not m[4] or now >= tonumber(m[4]) then return nil end
  local t = tonumber(m[2]) or 0
  return { e = m[1], t = t, c = tonumber(m[3]) or t, l = m[5], d = m[6], b = tonumber(m[7]) or 0 }
end

-- The epoch of a stream that does not exist: derived, not stored, so that reads create nothing
-- and the first publish of the same period and replication history starts the stream in it.
-- A stream lives at least ttl after its last publish, so one that expired is never recreated in
-- the period it was created in; a lost dataset comes back under another replication id.
local function virtual_epoch(meta, id, now, ttl)
  return string.sub(redis.sha1hex(meta .. '|' .. id .. '|' .. int(math.floor(now / ttl)) .. '|' .. int(ttl)), 1, 12)
end

-- A stream last written under another replication history may have lost its latest writes (an
-- asynchronously replicated primary failed over, a primary restarted from a lagging AOF): unless
-- it is known to be whole, it continues in a new epoch, so that no client takes a reused offset
-- for one it saw. Known whole: this server was promoted from that history and the stream's last
-- write was a replicated publish (the replica acknowledged it before it was fanned out); or it
-- came from no history this server followed and either this server restarted with appendfsync
-- always (trust = '1', checked by the node), or it is a Cluster node (trust = 'c'), where keys
-- move between primaries whole (MIGRATE) and only a promotion tells of a loss.
local function fence(meta, st, id, id2, candidate, trust)
  if st.l == id then return end
  local whole
  if st.l == id2 then whole = st.d == 'r'
  else whole = trust == 'c' or (trust == '1' and id2 == NO_ID) end
  if st.l and not whole then
    st.e = candidate
    redis.call('HSET', meta, 'e', candidate)
  end
  redis.call('HSET', meta, 'l', id)
  st.l = id
end

-- The feed message of one stored entry (XRANGE item): 'q' + the layout of the publish script's.
local function committed_message(entry, epoch)
  local f = entry[2]
  local data, info = '', ''
  for i = 1, #f, 2 do
    if f[i] == 'd' then data = f[i + 1] elseif f[i] == 'i' then info = f[i + 1] end
  end
  return 'q' .. string.match(entry[1], '^(%d+)') .. ':' .. epoch .. ':' .. int(#info) .. ':' .. info .. data
end
`

/**
 * KEYS: meta, stream[, idempotency]
 * ARGV: now, candidate epoch, historySize, streamTtlMs, pub/sub channel, data, info,
 *       idempotencyTtlMs, mode ('n' none | 'r' replicated), trust, publish command
 * → { offset, epoch, duplicate (0|1), committed }
 * Mode 'n' fans the publication out at once. Mode 'r' only stores it: the caller waits for a
 * replica (WAIT) and then runs COMMIT, which fans it out.
 */
const PUBLISH = `
local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms(ARGV[1])
local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local data, info, mode = ARGV[6], ARGV[7], ARGV[9]
local id, id2 = lineage()

if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local exp, offset, epoch = string.match(seen, '^(%d+):(%d+):(.+)$')
    if exp and now < tonumber(exp) then
      local st = load_stream(meta, now)
      local committed = tonumber(offset)
      if st then
        committed = st.c
        -- A write for the caller's WAIT to wait for: the entry was written before it.
        if mode == 'r' then redis.call('HSET', meta, 'l', st.l or id) end
      end
      return { tonumber(offset), epoch, 1, committed }
    end
  end
end

local st = load_stream(meta, now)
if st then
  fence(meta, st, id, id2, ARGV[2], ARGV[10])
else
  -- A new stream: drop what an expired one left behind; start in the epoch readers were shown.
  redis.call('DEL', meta, stream)
  st = { e = virtual_epoch(meta, id, now, ttl), t = 0, c = 0 }
  redis.call('HSET', meta, 'e', st.e, 't', '0', 'c', '0', 'l', id)
end
local top = redis.call('HINCRBY', meta, 't', 1)
redis.call('HSET', meta, 'x', int(now + ttl), 'd', mode, 'p', int(ttl))
redis.call('PEXPIRE', meta, ttl)
if mode ~= 'r' then
  redis.call('HSET', meta, 'c', int(top))
  st.c = top
end

if size > 0 then
  -- Explicit ids <offset>-1 make a range of offsets a plain XRANGE. 't' comes first so the
  -- history script finds an entry's age without scanning its fields.
  local sid = int(top) .. '-1'
  if info == '' then
    redis.call('XADD', stream, 'MAXLEN', size, sid, 't', int(now), 'd', data)
  else
    redis.call('XADD', stream, 'MAXLEN', size, sid, 't', int(now), 'd', data, 'i', info)
  end
  redis.call('PEXPIRE', stream, ttl)
else
  -- Keeping nothing must also forget what an earlier, larger historySize kept: the history
  -- script relies on the stored entries being one run of consecutive offsets ending at the top.
  redis.call('DEL', stream)
end

if idem then
  local idem_ttl = tonumber(ARGV[8])
  redis.call('SET', idem, int(now + idem_ttl) .. ':' .. int(top) .. ':' .. st.e, 'PX', idem_ttl)
end

if mode ~= 'r' then
  redis.call(ARGV[11], ARGV[5], 'p' .. int(top) .. ':' .. st.e .. ':' .. int(#info) .. ':' .. info .. data)
end
return { top, st.e, 0, st.c }
`

/**
 * KEYS: meta, stream. ARGV: now, up to offset, publish command, pub/sub channel.
 * Run after a replica acknowledged the writes up to `up to`: marks them committed and fans out,
 * in order, every stored entry between the old mark and it. → { committed, epoch } ({ 0, '' }
 * when the stream is gone).
 */
const COMMIT = `
local meta, stream = KEYS[1], KEYS[2]
local st = load_stream(meta, now_ms(ARGV[1]))
if not st then return { 0, '' } end
local to = math.min(tonumber(ARGV[2]), st.t)
if to <= st.c then return { st.c, st.e } end
local entries = redis.call('XRANGE', stream, int(st.c + 1), int(to))
for i = 1, #entries do redis.call(ARGV[3], ARGV[4], committed_message(entries[i], st.e)) end
redis.call('HSET', meta, 'c', int(to))
return { to, st.e }
`

/**
 * KEYS: meta. ARGV: now, candidate epoch, trust.
 * A write for a WAIT to wait for, on a stream with entries above its commit mark. → { top } or { -1 }.
 */
const SYNC = `
local meta = KEYS[1]
local st = load_stream(meta, now_ms(ARGV[1]))
if not st then return { -1 } end
local id, id2 = lineage()
fence(meta, st, id, id2, ARGV[2], ARGV[3])
redis.call('HSET', meta, 'l', id)
return { st.t }
`

/**
 * KEYS: meta. ARGV: now, the epoch seen, candidate epoch.
 * A node saw one offset of this epoch twice with different content: the stream went back. Move
 * it to a new epoch (once: the epoch must still be the one seen). → { epoch, committed } or { '', 0 }.
 */
const BUMP = `
local meta = KEYS[1]
local now = now_ms(ARGV[1])
local st = load_stream(meta, now)
if not st then return { '', 0 } end
if st.e == ARGV[2] then
  redis.call('HSET', meta, 'e', ARGV[3], 'b', int(now))
  st.e = ARGV[3]
end
return { st.e, st.c }
`

/**
 * KEYS: meta, stream. ARGV: now, candidate epoch.
 * Drop the history. A live stream leaves a tombstone in a new epoch until the end of the current
 * period (its streamTtlMs, kept in 'p'), so that a stream recreated in that period does not take
 * the derived epoch again.
 */
const REMOVE = `
local meta, stream = KEYS[1], KEYS[2]
local now = now_ms(ARGV[1])
redis.call('DEL', stream)
local st = load_stream(meta, now)
local ttl = tonumber(redis.call('HGET', meta, 'p') or '') or 86400000
redis.call('DEL', meta)
if not st then return 0 end
local id = lineage()
local until_ms = (math.floor(now / ttl) + 1) * ttl
redis.call('HSET', meta, 'e', ARGV[2], 't', '0', 'c', '0', 'x', int(until_ms), 'l', id, 'p', int(ttl))
redis.call('PEXPIRE', meta, math.max(1, until_ms - now))
return 1
`

/**
 * KEYS: meta, stream
 * ARGV: now, candidate epoch, historySize, historyTtlMs, streamTtlMs, since (-1: none), since
 *       epoch, limit, trust, regression cooldown (ms), maxBytes (0: none)
 * → { top, epoch, continuous (0 | 1 | 2: committed entries may lie beyond the mark, commit first), entries (XRANGE reply) }
 * Never creates a stream: an unknown one is answered with its derived epoch at offset 0.
 */
const HISTORY = `
local meta, stream = KEYS[1], KEYS[2]
local now = now_ms(ARGV[1])
local size, history_ttl, stream_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local since, since_epoch, limit = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local id, id2 = lineage()
local st = load_stream(meta, now)
if not st then
  local e = virtual_epoch(meta, id, now, stream_ttl)
  -- Offset 0 (nothing delivered yet) lies in every epoch; anything beyond it is gone.
  if since > 0 then return { 0, e, 0, {} } end
  return { 0, e, 1, {} }
end
fence(meta, st, id, id2, ARGV[2], ARGV[9])
local top = st.c

-- Trim from the oldest end only, by size and then by age, stopping at the first entry that is
-- kept: what stays is one run of consecutive offsets, even if a clock stepped back.
if st.t - size + 1 > 1 then redis.call('XTRIM', stream, 'MINID', int(st.t - size + 1)) end
local first = st.t + 1
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
  if since_epoch == st.e and since > top then
    -- Someone saw an offset beyond the mark. Within the stored entries it was committed by a
    -- commit whose mark was lost in a failover: commit again, then ask again. Beyond them the
    -- stream went back: a new epoch, so that everyone who saw the lost offsets learns it.
    if since <= st.t then return { top, st.e, 2, {} } end
    if now - st.b >= tonumber(ARGV[10]) then
      st.e = ARGV[2]
      redis.call('HSET', meta, 'e', st.e, 'b', int(now))
    end
    return { top, st.e, 0, {} }
  end
  -- Offset 0 lies in every epoch: it continues while offset 1 is still held.
  if (since_epoch ~= st.e and since > 0) or (since < top and since + 1 < first) then return { top, st.e, 0, {} } end
  from, to = since + 1, math.min(top, since + limit)
else
  from, to = math.max(first, top - limit + 1), top
end
if limit == 0 or from > to then return { top, st.e, 1, {} } end
local max_bytes = tonumber(ARGV[11]) or 0
if max_bytes <= 0 then return { top, st.e, 1, redis.call('XRANGE', stream, int(from), int(to)) } end
-- A page of at most max_bytes of entry fields (at least one entry), cut at the far end: the
-- first entries after since, or the newest without it. Read in chunks so a cut page never
-- copies the whole range.
local forward = since >= 0
local out, bytes, lo, hi = {}, 0, from, to
while lo <= hi do
  local chunk
  if forward then chunk = redis.call('XRANGE', stream, int(lo), int(hi), 'COUNT', 64)
  else chunk = redis.call('XREVRANGE', stream, int(hi), int(lo), 'COUNT', 64) end
  if #chunk == 0 then break end
  for i = 1, #chunk do
    local f, n = chunk[i][2], 0
    for j = 2, #f, 2 do n = n + #f[j] end
    bytes = bytes + n
    if bytes > max_bytes and #out > 0 then lo = hi + 1 break end
    out[#out + 1] = chunk[i]
  end
  if lo <= hi then
    local last = tonumber(string.match(chunk[#chunk][1], '^(%d+)'))
    if forward then lo = last + 1 else hi = last - 1 end
  end
end
if not forward then
  local n = #out
  for i = 1, math.floor(n / 2) do out[i], out[n - i + 1] = out[n - i + 1], out[i] end
end
return { top, st.e, 1, out }
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

/**
 * KEYS: occupancy zset (node → expiry). ARGV: now, ttlMs, node id, '1' occupied / '0' not.
 * → 1 when this changed whether any live node holds the channel (occupied or vacated), else 0.
 * A node that stopped refreshing (crashed) drops out at its expiry, before the count is taken.
 */
const OCCUPANCY = `
local now, ttl = now_ms(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local before = redis.call('ZCARD', KEYS[1])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], int(now + ttl), ARGV[3])
  extend(KEYS[1], ttl)
else
  redis.call('ZREM', KEYS[1], ARGV[3])
end
local after = redis.call('ZCARD', KEYS[1])
if (before == 0) ~= (after == 0) then return 1 end
return 0
`

type Arg = string | Buffer | number

/** A pipeline of commands sent together on one connection (ioredis `pipeline()`). */
export interface ScriptPipeline {
  callBuffer(...args: [command: string, ...args: Arg[]]): ScriptPipeline
  call(...args: [command: string, ...args: Arg[]]): ScriptPipeline
  exec(): Promise<[Error | null, unknown][] | null>
}

/** What a script runs on: the part of an ioredis client (Redis or Cluster) the engine uses. */
export interface ScriptRunner {
  callBuffer(...args: [command: string, ...args: Arg[]]): Promise<unknown>
  pipeline(): ScriptPipeline
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

  /**
   * Run the script once per argument list, all in one pipeline on one connection (in a Cluster
   * every call must be for keys of one slot), then, when asked, `WAIT numReplicas timeoutMs` (it
   * goes to that node and answers how many replicas acknowledged every write the connection made
   * so far, the scripts' included). Redis runs a pipeline's commands in order, so a later call
   * never takes effect before an earlier one. → each script's reply or error, and the replica
   * count (0 without a WAIT).
   */
  async runAll(
    client: ScriptRunner,
    calls: ReadonlyArray<{ keys: readonly string[]; args: readonly Arg[] }>,
    wait?: { numReplicas: number; timeoutMs: number },
  ): Promise<{ replies: Array<[Error | null, unknown]>; replicas: number }> {
    const once = async (how: 'evalsha' | 'eval'): Promise<{ replies: Array<[Error | null, unknown]>; replicas: number }> => {
      const p = client.pipeline()
      for (const c of calls) p.callBuffer(how, how === 'evalsha' ? this.sha : this.source, c.keys.length, ...c.keys, ...c.args)
      if (wait !== undefined) p.call('wait', wait.numReplicas, wait.timeoutMs)
      const replies = (await p.exec()) ?? []
      if (wait === undefined) {
        if (replies.length !== calls.length) throw new Error(`no reply to ${this.name}`)
        return { replies, replicas: 0 }
      }
      const waited = replies.pop()
      if (waited === undefined || replies.length !== calls.length) throw new Error(`no reply to ${this.name}`)
      if (waited[0] !== null) throw waited[0]
      return { replies, replicas: Number(waited[1]) }
    }
    const first = await once('evalsha')
    // Scripts are not replicated: a promoted replica has none cached yet. NOSCRIPT did nothing.
    if (first.replies.length > 0 && first.replies.every(([err]) => err?.message.startsWith('NOSCRIPT') === true)) return once('eval')
    return first
  }
}

export const Scripts = {
  publish: new LuaScript('publish', PUBLISH),
  commit: new LuaScript('commit', COMMIT),
  sync: new LuaScript('sync', SYNC),
  bump: new LuaScript('bump', BUMP),
  remove: new LuaScript('remove', REMOVE),
  history: new LuaScript('history', HISTORY),
  presenceAdd: new LuaScript('presenceAdd', PRESENCE_ADD),
  memberRemove: new LuaScript('memberRemove', MEMBER_REMOVE),
  members: new LuaScript('members', MEMBERS),
  nodeRegister: new LuaScript('nodeRegister', NODE_REGISTER),
  claim: new LuaScript('claim', CLAIM),
  claimComplete: new LuaScript('claimComplete', CLAIM_COMPLETE),
  occupancy: new LuaScript('occupancy', OCCUPANCY),
} as const

