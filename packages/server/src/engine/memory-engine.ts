import { createHash, randomBytes, randomInt } from 'node:crypto'
import { HoldfastError, type ClientInfo, type Publication } from '@holdfast/protocol'
import { optionChecks } from '@holdfast/protocol/internal'
import type {
  ControlMessage,
  NodeInfo,
  Engine,
  EngineHandler,
  HistoryPage,
  HistoryQuery,
  IdempotencyClaim,
  PublishOptions,
  PublishOutcome,
  StreamOptions,
  StreamPublication,
} from './engine.js'
import { STORED_KEY } from './engine.js'

export interface MemoryEngineOptions {
  /** Clock used for every TTL (history, streams, presence, idempotency); tests inject a fake one. @default Date.now */
  now?: () => number
  /** Period of the one sweep that frees expired streams, history, presence and idempotency ids, in ms. @default 5000 */
  sweepIntervalMs?: number
  /** How long a publish `idempotencyKey` is remembered when the publish gives no `idempotencyTtlMs`, in ms. @default 300000 */
  idempotencyTtlMs?: number
  /**
   * Most streams (channels with an offset and epoch) held at once. Past it, streams with no history
   * left and no subscriber on this node are forgotten, least recently published first; when none
   * can go, a publish to a new channel is refused with `limit_exceeded` (temporary). @default 100000
   */
  maxStreams?: number
  /**
   * Most bytes of publication data held in history, all channels together. Past it, the oldest
   * publications of the least recently published channels are dropped (their subscribers learn
   * `recovered: false` if they need them). @default 268435456 (256 MiB)
   */
  maxHistoryBytes?: number
  /**
   * Most idempotency ids (publish keys and RPC claims) held at once. Past it, a publish or RPC with
   * a new id is refused with `limit_exceeded` (temporary) rather than forgetting another client's id,
   * which would let its retry run twice. @default 500000
   */
  maxIdempotencyKeys?: number
  /** Most presence entries held at once; past it, a new entry is refused with `limit_exceeded` (temporary). @default 1000000 */
  maxPresenceEntries?: number
  /**
   * Called when the handler throws while a publication is fanned out. The publish still succeeds:
   * the publication is stored, so failing the publisher would only make it retry into a duplicate.
   * @default reports through `process.emitWarning`
   */
  onError?: (err: unknown) => void
}

interface ResolvedMemoryOptions {
  now: () => number
  sweepIntervalMs: number
  idempotencyTtlMs: number
  maxStreams: number
  maxHistoryBytes: number
  maxIdempotencyKeys: number
  maxPresenceEntries: number
  onError: (err: unknown) => void
}

const DEFAULTS = {
  sweepIntervalMs: 5000,
  idempotencyTtlMs: 300_000,
  maxStreams: 100_000,
  maxHistoryBytes: 256 * 1024 * 1024,
  maxIdempotencyKeys: 500_000,
  maxPresenceEntries: 1_000_000,
} as const

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  const stack = err instanceof Error ? err.stack : undefined
  process.emitWarning(`holdfast memory engine: the handler threw during fan-out: ${message}`, {
    code: 'HOLDFAST_ENGINE_HANDLER',
    ...(stack === undefined ? {} : { detail: stack }),
  })
}

const checks = optionChecks('holdfast')

function resolveOptions(o: MemoryEngineOptions): ResolvedMemoryOptions {
  const { positiveInt: positive, fn } = checks
  return {
    now: o.now === undefined ? Date.now : fn('now', o.now),
    sweepIntervalMs: positive('sweepIntervalMs', o.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs),
    idempotencyTtlMs: positive('idempotencyTtlMs', o.idempotencyTtlMs ?? DEFAULTS.idempotencyTtlMs),
    maxStreams: positive('maxStreams', o.maxStreams ?? DEFAULTS.maxStreams),
    maxHistoryBytes: positive('maxHistoryBytes', o.maxHistoryBytes ?? DEFAULTS.maxHistoryBytes),
    maxIdempotencyKeys: positive('maxIdempotencyKeys', o.maxIdempotencyKeys ?? DEFAULTS.maxIdempotencyKeys),
    maxPresenceEntries: positive('maxPresenceEntries', o.maxPresenceEntries ?? DEFAULTS.maxPresenceEntries),
    onError: o.onError === undefined ? reportError : fn('onError', o.onError),
  }
}

interface Entry {
  offset: number
  data: unknown
  info: ClientInfo | undefined
  /** History TTL is measured from here. */
  at: number
  /** Bytes counted against maxHistoryBytes. */
  size: number
}

/** Below this many dead slots the buffer is not compacted: copying small arrays often costs more than it saves. */
const COMPACT_MIN = 1024

interface Stream {
  epoch: string
  top: number
  /**
   * History, oldest first, from `head`. Trimming moves `head` instead of shifting, and the array is
   * compacted once the dead prefix outweighs the live part, so a publish is O(1) amortized.
   * Live entries always hold the offsets `top - count + 1 .. top` with no gap.
   */
  buf: (Entry | undefined)[]
  head: number
  /** The stream (offset and epoch) is forgotten at this time unless a publish extends it. */
  expiresAt: number
  /** Retention of the latest publish, for the sweep, which has no call options to go by. */
  historySize: number
  historyTtlMs: number
}

interface Expiring<T> {
  value: T
  expiresAt: number
}

type Claim = { state: 'pending' } | { state: 'done'; result: unknown }

function newEpoch(): string {
  // 36^8 ≈ 2.8e12 values: two epochs of one channel colliding is not a practical concern.
  return randomInt(36 ** 8)
    .toString(36)
    .padStart(8, '0')
}

/** A fresh object for the caller, keyed to its entry: the node reuses the entry's encoding (STORED_KEY). */
function toPublication(e: Entry): Publication {
  const pub = e.info === undefined ? { offset: e.offset, data: e.data } : { offset: e.offset, data: e.data, info: e.info }
  return Object.defineProperty(pub, STORED_KEY, { value: e })
}

/** A rough size of data the caller did not measure (engine used without a gateway). */
function estimateSize(data: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(data) ?? '')
  } catch {
    return 0
  }
}

/** How many streams at the cold end one publish to a new channel looks at to make room. */
const EVICT_SCAN = 256

/** What the engine holds and refused, for metrics and tests. */
export interface MemoryEngineState {
  /** Channels with a stream (offset and epoch). */
  streams: number
  /** Publications held in history. */
  publications: number
  /** Bytes of publication data held in history (counted against maxHistoryBytes). */
  historyBytes: number
  presence: number
  /** Publish keys and RPC claims. */
  idempotency: number
  /** Refusals by budget since start, and what the budgets made the engine forget. */
  refused: { streams: number; idempotency: number; presence: number }
  evicted: { streams: number; publications: number }
}

/**
 * Single-process engine: streams, presence and idempotency ids live in this process's memory,
 * and the live feed is a direct call into the handler. A restart loses everything, which is why
 * epochs are random: clients then learn `recovered: false` instead of trusting reused offsets.
 *
 * Everything a client can make it hold has a budget (streams, history bytes, idempotency ids,
 * presence entries), and reads create nothing: the position of a channel that was never published
 * is answered from a derived epoch, the one its first publish will take.
 *
 * Every method does all its work before its first `await` (it has none), so concurrent publishes
 * get offsets in call order and fan-out happens in offset order, with no locks.
 */
export class MemoryEngine implements Engine {
  readonly name = 'memory'

  readonly #opts: ResolvedMemoryOptions
  #handler: EngineHandler | undefined
  #closed = false
  #timer: ReturnType<typeof setInterval> | undefined
  /** Least recently published first: the history budget and the stream budget take from the front. */
  readonly #streams = new Map<string, Stream>()
  readonly #subscribed = new Set<string>()
  /** Keyed by channel, then idempotency key: a key names one publication to one channel. */
  readonly #published = new Map<string, Map<string, Expiring<PublishOutcome>>>()
  readonly #claims = new Map<string, Expiring<Claim>>()
  readonly #presence = new Map<string, Map<string, Expiring<ClientInfo>>>()
  /** Keys in #published (all channels) plus #claims, kept as they change. */
  #idempotency = 0
  #presenceEntries = 0
  #historyBytes = 0
  /** Makes this process's derived epochs its own: another process never derives the same. */
  readonly #epochSeed = randomBytes(16)
  /** Moves on whenever a stream is forgotten before it expired (see #forget). */
  #generation = 0
  readonly #refused = { streams: 0, idempotency: 0, presence: 0 }
  readonly #evicted = { streams: 0, publications: 0 }

  constructor(options: MemoryEngineOptions = {}) {
    this.#opts = resolveOptions(options)
  }

  async start(handler: EngineHandler): Promise<void> {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'memory engine is closed')
    if (this.#handler !== undefined) throw new HoldfastError('internal', 'memory engine already started')
    this.#handler = handler
    this.#timer = setInterval(() => this.#sweep(), this.#opts.sweepIntervalMs)
    // The sweep only frees memory; it must never keep a process alive on its own.
    this.#timer.unref()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#handler = undefined
    this.#streams.clear()
    this.#subscribed.clear()
    this.#published.clear()
    this.#claims.clear()
    this.#presence.clear()
    this.#idempotency = 0
    this.#presenceEntries = 0
    this.#historyBytes = 0
  }

  isReady(): boolean {
    return this.#handler !== undefined && !this.#closed
  }

  /** How much state is held, for metrics and tests: channels with a stream, stored publications, presence entries, idempotency ids. */
  counts(): { streams: number; publications: number; presence: number; idempotency: number } {
    const { streams, publications, presence, idempotency } = this.state()
    return { streams, publications, presence, idempotency }
  }

  /** Everything the budgets watch, with their refusals and evictions. */
  state(): MemoryEngineState {
    let publications = 0
    for (const s of this.#streams.values()) publications += s.buf.length - s.head
    return {
      streams: this.#streams.size,
      publications,
      historyBytes: this.#historyBytes,
      presence: this.#presenceEntries,
      idempotency: this.#idempotency,
      refused: { ...this.#refused },
      evicted: { ...this.#evicted },
    }
  }

  /**
   * Memory held around what `counts()` reports, for leak tests: history buffer slots (dead ones
   * not yet compacted included) and the per-channel maps of idempotency keys, of presence and of
   * occupancy.
   * @internal
   */
  footprint(): { historySlots: number; keyMaps: number; presenceMaps: number; occupancyMaps: number } {
    let historySlots = 0
    for (const s of this.#streams.values()) historySlots += s.buf.length
    return { historySlots, keyMaps: this.#published.size, presenceMaps: this.#presence.size, occupancyMaps: this.#occupancy.size }
  }

  async subscribe(channel: string): Promise<void> {
    this.#ready()
    this.#subscribed.add(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#ready()
    this.#subscribed.delete(channel)
  }

  async publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome> {
    const handler = this.#ready()
    const now = this.#opts.now()
    const key = opts.idempotencyKey
    if (key !== undefined) {
      const seen = this.#published.get(channel)?.get(key)
      if (seen !== undefined && now < seen.expiresAt) return { ...seen.value, duplicate: true }
      this.#roomForId()
    }

    const s = this.#live(channel, now) ?? this.#create(channel, opts, now)
    // Most recently published last: the budgets take from the cold end.
    this.#streams.delete(channel)
    this.#streams.set(channel, s)
    s.expiresAt = now + opts.streamTtlMs
    s.historySize = opts.historySize
    s.historyTtlMs = opts.historyTtlMs
    const offset = ++s.top
    if (opts.historySize > 0) {
      const size = opts.size ?? estimateSize(data)
      s.buf.push({ offset, data, info: opts.info, at: now, size })
      this.#historyBytes += size
    }
    this.#trim(s, opts, now)
    if (this.#historyBytes > this.#opts.maxHistoryBytes) this.#evictHistory(now)

    const outcome: PublishOutcome = { offset, epoch: s.epoch, duplicate: false }
    if (key !== undefined) {
      let keys = this.#published.get(channel)
      if (keys === undefined) this.#published.set(channel, (keys = new Map()))
      const had = keys.has(key)
      keys.set(key, { value: outcome, expiresAt: now + (opts.idempotencyTtlMs ?? this.#opts.idempotencyTtlMs) })
      if (!had) this.#idempotency++
    }

    if (this.#subscribed.has(channel)) {
      const pub: StreamPublication =
        opts.info === undefined ? { offset, epoch: s.epoch, data } : { offset, epoch: s.epoch, data, info: opts.info }
      try {
        handler.onPublication(channel, pub)
      } catch (err) {
        this.#opts.onError(err)
      }
    }
    return { ...outcome }
  }

  async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    this.#ready()
    if (!Number.isSafeInteger(q.limit) || q.limit < 0) {
      throw new HoldfastError('bad_request', `history limit must be a non-negative integer, got ${String(q.limit)}`)
    }
    const now = this.#opts.now()
    // A read never creates a stream: one that does not exist is at offset 0 of its derived epoch.
    const s = this.#live(channel, now)
    if (s === undefined) {
      const since = q.since
      const continuous = since === undefined || (since.offset === 0 && Number.isSafeInteger(since.offset))
      return { offset: 0, epoch: this.#derivedEpoch(channel, q.stream, now), publications: [], continuous }
    }
    this.#trim(s, q.stream, now)
    const count = s.buf.length - s.head
    const first = s.top - count + 1
    const page: HistoryPage = { offset: s.top, epoch: s.epoch, publications: [], continuous: true }

    let from: number
    let to: number
    if (q.since === undefined) {
      to = s.top
      from = Math.max(first, s.top - q.limit + 1)
    } else {
      const since = q.since.offset
      // Offset 0 is "nothing delivered yet", in any epoch: it continues into this one from offset 1.
      page.continuous =
        (q.since.epoch === s.epoch || since === 0) && Number.isSafeInteger(since) && since >= 0 && since <= s.top && since + 1 >= first
      if (!page.continuous) return page
      from = since + 1
      to = Math.min(s.top, since + q.limit)
    }
    // Cut by bytes at the far end: from `since` forwards, or from the newest backwards.
    const maxBytes = q.maxBytes ?? Number.POSITIVE_INFINITY
    const forward = q.since !== undefined
    let bytes = 0
    for (let i = 0; i <= to - from; i++) {
      const e = s.buf[s.head + ((forward ? from + i : to - i) - first)]
      if (e === undefined) continue
      bytes += e.size
      if (bytes > maxBytes && page.publications.length > 0) break
      page.publications.push(toPublication(e))
    }
    if (forward === (q.reverse === true)) page.publications.reverse()
    return page
  }

  async removeHistory(channel: string): Promise<void> {
    this.#ready()
    const s = this.#live(channel, this.#opts.now())
    if (s !== undefined) this.#forget(channel, s)
  }

  async addPresence(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    this.#ready()
    let clients = this.#presence.get(channel)
    if (clients?.has(info.client) !== true) {
      if (this.#presenceEntries >= this.#opts.maxPresenceEntries) {
        this.#refused.presence++
        throw new HoldfastError('limit_exceeded', `this node holds its most presence entries (${this.#opts.maxPresenceEntries}); try later`, { temporary: true })
      }
      this.#presenceEntries++
    }
    if (clients === undefined) this.#presence.set(channel, (clients = new Map()))
    clients.set(info.client, { value: info, expiresAt: this.#opts.now() + ttlMs })
  }

  async removePresence(channel: string, clientId: string): Promise<void> {
    this.#ready()
    const clients = this.#presence.get(channel)
    if (clients === undefined) return
    if (clients.delete(clientId)) this.#presenceEntries--
    if (clients.size === 0) this.#presence.delete(channel)
  }

  async presence(channel: string): Promise<Record<string, ClientInfo>> {
    this.#ready()
    const out: Record<string, ClientInfo> = {}
    for (const [client, info] of this.#livePresence(channel)) out[client] = info
    return out
  }

  async presenceStats(channel: string): Promise<{ clients: number; users: number }> {
    this.#ready()
    const users = new Set<string>()
    let clients = 0
    for (const [, info] of this.#livePresence(channel)) {
      clients++
      users.add(info.user)
    }
    return { clients, users: users.size }
  }

  async publishJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): Promise<void> {
    const handler = this.#ready()
    if (this.#subscribed.has(channel)) handler.onJoinLeave(channel, kind, info)
  }

  async publishControl(msg: ControlMessage): Promise<void> {
    this.#ready().onControl(msg)
  }

  /** channel → node → expiry (ms): which gateways sharing this engine have subscribers of it. */
  readonly #occupancy = new Map<string, Map<string, number>>()

  async occupancy(channel: string, node: string, occupied: boolean, ttlMs: number): Promise<boolean> {
    this.#ready()
    const now = this.#opts.now()
    let nodes = this.#occupancy.get(channel)
    if (nodes === undefined) this.#occupancy.set(channel, (nodes = new Map()))
    for (const [n, exp] of nodes) if (exp <= now) nodes.delete(n)
    const before = nodes.size
    if (occupied) nodes.set(node, now + ttlMs)
    else nodes.delete(node)
    if (nodes.size === 0) this.#occupancy.delete(channel)
    return (before === 0) !== (nodes.size === 0)
  }

  // One process, so the registry is this process's own nodes (usually one gateway).
  readonly #nodes = new Map<string, Expiring<NodeInfo>>()

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    this.#ready()
    this.#nodes.set(info.id, { value: { ...info }, expiresAt: this.#opts.now() + ttlMs })
  }

  async unregisterNode(id: string): Promise<void> {
    this.#nodes.delete(id)
  }

  async nodes(): Promise<NodeInfo[]> {
    this.#ready()
    const now = this.#opts.now()
    return [...this.#nodes.values()].filter((n) => now < n.expiresAt).map((n) => ({ ...n.value }))
  }

  async claimIdempotent(key: string, ttlMs: number): Promise<IdempotencyClaim> {
    this.#ready()
    const now = this.#opts.now()
    const claim = this.#claims.get(key)
    if (claim !== undefined && now < claim.expiresAt) {
      return claim.value.state === 'done' ? { state: 'done', result: claim.value.result } : { state: 'pending' }
    }
    if (claim === undefined) this.#roomForId()
    // A pending claim expires too, so a command whose node died mid-run can be retried.
    this.#setClaim(key, { value: { state: 'pending' }, expiresAt: now + ttlMs })
    return { state: 'new' }
  }

  async completeIdempotent(key: string, result: unknown, ttlMs: number): Promise<void> {
    this.#ready()
    this.#setClaim(key, { value: { state: 'done', result }, expiresAt: this.#opts.now() + ttlMs })
  }

  async releaseIdempotent(key: string): Promise<void> {
    this.#ready()
    if (this.#claims.delete(key)) this.#idempotency--
  }

  #setClaim(key: string, claim: Expiring<Claim>): void {
    if (!this.#claims.has(key)) this.#idempotency++
    this.#claims.set(key, claim)
  }

  /** Refuse a new idempotency id when the budget is spent: forgetting another client's would let its retry run twice. */
  #roomForId(): void {
    if (this.#idempotency < this.#opts.maxIdempotencyKeys) return
    this.#refused.idempotency++
    throw new HoldfastError('limit_exceeded', `this node holds its most message ids (${this.#opts.maxIdempotencyKeys}); try later`, { temporary: true })
  }

  #ready(): EngineHandler {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'memory engine is closed')
    if (this.#handler === undefined) throw new HoldfastError('engine_unavailable', 'memory engine is not started')
    return this.#handler
  }

  /** The channel's live stream, or undefined; an expired one is forgotten here. */
  #live(channel: string, now: number): Stream | undefined {
    const s = this.#streams.get(channel)
    if (s === undefined || now < s.expiresAt) return s
    this.#drop(channel, s)
    return undefined
  }

  /**
   * The epoch of a channel with no stream: derived from this process's seed, the channel and the
   * current period of its streamTtlMs, so reads agree with each other and with the first publish.
   * A stream lives at least streamTtlMs after its last publish, so one that expired is never
   * recreated in the period it was created in; one forgotten earlier moves the generation on.
   */
  #derivedEpoch(channel: string, opts: StreamOptions, now: number): string {
    const period = Math.floor(now / opts.streamTtlMs)
    return createHash('sha256')
      .update(this.#epochSeed)
      .update(`${channel}\n${period}\n${opts.streamTtlMs}\n${this.#generation}`)
      .digest('base64url')
      .slice(0, 12)
  }

  /** A new stream for a publish, within the stream budget. */
  #create(channel: string, opts: StreamOptions, now: number): Stream {
    if (this.#streams.size >= this.#opts.maxStreams) this.#evictStream(now)
    return {
      epoch: this.#derivedEpoch(channel, opts, now),
      top: 0,
      buf: [],
      head: 0,
      expiresAt: now + opts.streamTtlMs,
      historySize: opts.historySize,
      historyTtlMs: opts.historyTtlMs,
    }
  }

  /**
   * Make room for one stream: forget the coldest one that holds no history and that no subscriber
   * on this node follows (a client that comes back to it learns `recovered: false`). Refuse when
   * the cold end holds only streams that still matter.
   */
  #evictStream(now: number): void {
    let looked = 0
    for (const [channel, s] of this.#streams) {
      if (looked++ >= EVICT_SCAN) break
      this.#trim(s, s, now)
      if (now >= s.expiresAt || (s.buf.length === s.head && !this.#subscribed.has(channel))) {
        this.#forget(channel, s)
        this.#evicted.streams++
        return
      }
    }
    this.#refused.streams++
    throw new HoldfastError('limit_exceeded', `this node holds its most channel streams (${this.#opts.maxStreams}); try later`, { temporary: true })
  }

  /** Over the history budget: drop the oldest publications of the least recently published streams. */
  #evictHistory(now: number): void {
    const max = this.#opts.maxHistoryBytes
    for (const s of this.#streams.values()) {
      while (this.#historyBytes > max && s.head < s.buf.length) {
        const e = s.buf[s.head] as Entry
        s.buf[s.head++] = undefined
        this.#historyBytes -= e.size
        this.#evicted.publications++
      }
      this.#trim(s, s, now)
      if (this.#historyBytes <= max) return
    }
  }

  /**
   * Forget a stream before its time (removeHistory, the stream budget). It could then be recreated
   * within its derived epoch's period, so the derivation moves on: offsets restarting at 1 must
   * never reuse the epoch a client saw higher offsets in.
   */
  #forget(channel: string, s: Stream): void {
    this.#drop(channel, s)
    this.#generation++
  }

  /** Forget a stream and what its history held. */
  #drop(channel: string, s: Stream): void {
    for (let i = s.head; i < s.buf.length; i++) this.#historyBytes -= (s.buf[i] as Entry).size
    s.buf = []
    s.head = 0
    if (this.#streams.get(channel) === s) this.#streams.delete(channel)
  }

  #trim(s: Stream, opts: Pick<StreamOptions, 'historySize' | 'historyTtlMs'>, now: number): void {
    this.#historyBytes -= trim(s, opts, now)
  }

  *#livePresence(channel: string): Generator<[string, ClientInfo]> {
    const clients = this.#presence.get(channel)
    if (clients === undefined) return
    const now = this.#opts.now()
    for (const [client, entry] of clients) {
      if (now < entry.expiresAt) yield [client, entry.value]
      else if (clients.delete(client)) this.#presenceEntries--
    }
    if (clients.size === 0) this.#presence.delete(channel)
  }

  #sweep(): void {
    const now = this.#opts.now()
    for (const [channel, s] of this.#streams) {
      if (now >= s.expiresAt) this.#drop(channel, s)
      else this.#trim(s, s, now)
    }
    for (const [channel, keys] of this.#published) {
      for (const [key, e] of keys) {
        if (now >= e.expiresAt) {
          keys.delete(key)
          this.#idempotency--
        }
      }
      if (keys.size === 0) this.#published.delete(channel)
    }
    for (const [key, e] of this.#claims) {
      if (now >= e.expiresAt) {
        this.#claims.delete(key)
        this.#idempotency--
      }
    }
    for (const [channel, clients] of this.#presence) {
      for (const [client, e] of clients) {
        if (now >= e.expiresAt) {
          clients.delete(client)
          this.#presenceEntries--
        }
      }
      if (clients.size === 0) this.#presence.delete(channel)
    }
  }
}

/**
 * Drop entries beyond `historySize` or older than `historyTtlMs`, only ever from the oldest end and
 * stopping at the first live one, so what stays has no gap even if the clock stepped back.
 * Returns the bytes dropped.
 */
function trim(s: Stream, opts: Pick<StreamOptions, 'historySize' | 'historyTtlMs'>, now: number): number {
  const { buf } = s
  const keepFrom = Math.max(0, buf.length - opts.historySize)
  let dropped = 0
  while (s.head < buf.length) {
    const e = buf[s.head]
    if (e === undefined || (s.head >= keepFrom && now < e.at + opts.historyTtlMs)) break
    dropped += e.size
    buf[s.head++] = undefined
  }
  if (s.head === buf.length) {
    if (s.head > 0) {
      s.buf = []
      s.head = 0
    }
  } else if (s.head >= COMPACT_MIN && s.head * 2 >= buf.length) {
    s.buf = buf.slice(s.head)
    s.head = 0
  }
  return dropped
}
