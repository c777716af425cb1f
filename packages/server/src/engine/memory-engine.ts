import { randomInt } from 'node:crypto'
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

export interface MemoryEngineOptions {
  /** Clock used for every TTL (history, streams, presence, idempotency); tests inject a fake one. @default Date.now */
  now?: () => number
  /** Period of the one sweep that frees expired streams, history, presence and idempotency ids, in ms. @default 5000 */
  sweepIntervalMs?: number
  /** How long a publish `idempotencyKey` is remembered when the publish gives no `idempotencyTtlMs`, in ms. @default 300000 */
  idempotencyTtlMs?: number
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
  onError: (err: unknown) => void
}

const DEFAULTS = {
  sweepIntervalMs: 5000,
  idempotencyTtlMs: 300_000,
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
    onError: o.onError === undefined ? reportError : fn('onError', o.onError),
  }
}

interface Entry {
  offset: number
  data: unknown
  info: ClientInfo | undefined
  /** History TTL is measured from here. */
  at: number
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

function toPublication(e: Entry): Publication {
  return e.info === undefined ? { offset: e.offset, data: e.data } : { offset: e.offset, data: e.data, info: e.info }
}

/**
 * Single-process engine: streams, presence and idempotency ids live in this process's memory,
 * and the live feed is a direct call into the handler. A restart loses everything, which is why
 * epochs are random: clients then learn `recovered: false` instead of trusting reused offsets.
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
  readonly #streams = new Map<string, Stream>()
  readonly #subscribed = new Set<string>()
  /** Keyed by channel, then idempotency key: a key names one publication to one channel. */
  readonly #published = new Map<string, Map<string, Expiring<PublishOutcome>>>()
  readonly #claims = new Map<string, Expiring<Claim>>()
  readonly #presence = new Map<string, Map<string, Expiring<ClientInfo>>>()

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
  }

  isReady(): boolean {
    return this.#handler !== undefined && !this.#closed
  }

  /** How much state is held, for metrics and tests: channels with a stream, stored publications, presence entries, idempotency ids. */
  counts(): { streams: number; publications: number; presence: number; idempotency: number } {
    let publications = 0
    for (const s of this.#streams.values()) publications += s.buf.length - s.head
    let presence = 0
    for (const m of this.#presence.values()) presence += m.size
    let idempotency = this.#claims.size
    for (const m of this.#published.values()) idempotency += m.size
    return { streams: this.#streams.size, publications, presence, idempotency }
  }

  /**
   * Memory held around what `counts()` reports, for leak tests: history buffer slots (dead ones
   * not yet compacted included) and the per-channel maps of idempotency keys and of presence.
   * @internal
   */
  footprint(): { historySlots: number; keyMaps: number; presenceMaps: number } {
    let historySlots = 0
    for (const s of this.#streams.values()) historySlots += s.buf.length
    return { historySlots, keyMaps: this.#published.size, presenceMaps: this.#presence.size }
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
    }

    const s = this.#stream(channel, opts, now)
    s.expiresAt = now + opts.streamTtlMs
    s.historySize = opts.historySize
    s.historyTtlMs = opts.historyTtlMs
    const offset = ++s.top
    if (opts.historySize > 0) s.buf.push({ offset, data, info: opts.info, at: now })
    trim(s, opts, now)

    const outcome: PublishOutcome = { offset, epoch: s.epoch, duplicate: false }
    if (key !== undefined) {
      let keys = this.#published.get(channel)
      if (keys === undefined) this.#published.set(channel, (keys = new Map()))
      keys.set(key, { value: outcome, expiresAt: now + (opts.idempotencyTtlMs ?? this.#opts.idempotencyTtlMs) })
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
    const s = this.#stream(channel, q.stream, now)
    trim(s, q.stream, now)
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
      page.continuous =
        q.since.epoch === s.epoch && Number.isSafeInteger(since) && since >= 0 && since <= s.top && since + 1 >= first
      if (!page.continuous) return page
      from = since + 1
      to = Math.min(s.top, since + q.limit)
    }
    for (let o = from; o <= to; o++) {
      const e = s.buf[s.head + (o - first)]
      if (e !== undefined) page.publications.push(toPublication(e))
    }
    if (q.reverse === true) page.publications.reverse()
    return page
  }

  async removeHistory(channel: string): Promise<void> {
    this.#ready()
    this.#streams.delete(channel)
  }

  async addPresence(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    this.#ready()
    let clients = this.#presence.get(channel)
    if (clients === undefined) this.#presence.set(channel, (clients = new Map()))
    clients.set(info.client, { value: info, expiresAt: this.#opts.now() + ttlMs })
  }

  async removePresence(channel: string, clientId: string): Promise<void> {
    this.#ready()
    const clients = this.#presence.get(channel)
    if (clients === undefined) return
    clients.delete(clientId)
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
    // A pending claim expires too, so a command whose node died mid-run can be retried.
    this.#claims.set(key, { value: { state: 'pending' }, expiresAt: now + ttlMs })
    return { state: 'new' }
  }

  async completeIdempotent(key: string, result: unknown, ttlMs: number): Promise<void> {
    this.#ready()
    this.#claims.set(key, { value: { state: 'done', result }, expiresAt: this.#opts.now() + ttlMs })
  }

  async releaseIdempotent(key: string): Promise<void> {
    this.#ready()
    this.#claims.delete(key)
  }

  #ready(): EngineHandler {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'memory engine is closed')
    if (this.#handler === undefined) throw new HoldfastError('engine_unavailable', 'memory engine is not started')
    return this.#handler
  }

  /** The channel's live stream; an unknown or expired one starts over in a new epoch so no client mistakes it for the old one. */
  #stream(channel: string, opts: StreamOptions, now: number): Stream {
    let s = this.#streams.get(channel)
    if (s === undefined || now >= s.expiresAt) {
      s = {
        epoch: newEpoch(),
        top: 0,
        buf: [],
        head: 0,
        expiresAt: now + opts.streamTtlMs,
        historySize: opts.historySize,
        historyTtlMs: opts.historyTtlMs,
      }
      this.#streams.set(channel, s)
    }
    return s
  }

  *#livePresence(channel: string): Generator<[string, ClientInfo]> {
    const clients = this.#presence.get(channel)
    if (clients === undefined) return
    const now = this.#opts.now()
    for (const [client, entry] of clients) {
      if (now < entry.expiresAt) yield [client, entry.value]
      else clients.delete(client)
    }
    if (clients.size === 0) this.#presence.delete(channel)
  }

  #sweep(): void {
    const now = this.#opts.now()
    for (const [channel, s] of this.#streams) {
      if (now >= s.expiresAt) this.#streams.delete(channel)
      else trim(s, s, now)
    }
    for (const [channel, keys] of this.#published) {
      for (const [key, e] of keys) if (now >= e.expiresAt) keys.delete(key)
      if (keys.size === 0) this.#published.delete(channel)
    }
    for (const [key, e] of this.#claims) if (now >= e.expiresAt) this.#claims.delete(key)
    for (const [channel, clients] of this.#presence) {
      for (const [client, e] of clients) if (now >= e.expiresAt) clients.delete(client)
      if (clients.size === 0) this.#presence.delete(channel)
    }
  }
}

/**
 * Drop entries beyond `historySize` or older than `historyTtlMs`, only ever from the oldest end and
 * stopping at the first live one, so what stays has no gap even if the clock stepped back.
 */
function trim(s: Stream, opts: Pick<StreamOptions, 'historySize' | 'historyTtlMs'>, now: number): void {
  const { buf } = s
  const keepFrom = Math.max(0, buf.length - opts.historySize)
  while (s.head < buf.length) {
    const e = buf[s.head]
    if (e === undefined || (s.head >= keepFrom && now < e.at + opts.historyTtlMs)) break
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
}
