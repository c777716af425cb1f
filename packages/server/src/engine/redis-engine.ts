import { HoldfastError, type ClientInfo } from '@holdfast/protocol'
import type {
  ControlMessage,
  Engine,
  EngineHandler,
  HistoryPage,
  HistoryQuery,
  IdempotencyClaim,
  NodeInfo,
  PublishOptions,
  PublishOutcome,
  StreamOptions,
  StreamPublication,
} from './engine.js'
import { connections, type Connections } from './redis-connect.js'
import { closeConnection } from './redis-feed.js'
import { RedisLink, type RedisConnection } from './redis-link.js'
import { toEngineError } from './redis-errors.js'
import { resolveOptions, type RedisEngineOptions, type Resolved } from './redis-options.js'
import { PublishOrder } from './redis-publish-order.js'
import { Scripts } from './redis-scripts.js'
import {
  asArray,
  asBuffer,
  asInt,
  asString,
  decodeEntry,
  decodeFeedMessage,
  EMPTY,
  encodeJoinLeave,
  isClientInfo,
  malformed,
  newEpoch,
  pack,
  RedisKeys,
  unpack,
} from './redis-wire.js'

export type { RedisEngineOptions } from './redis-options.js'

/**
 * Full jitter with a capped exponent: delays stay spread at the cap and never overflow, however
 * many attempts a long outage takes (see PRODUCT.md, "Backoff").
 */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.floor(Math.random() * (cap + 1))
}

/** A regression may not move a stream to a new epoch more often than this (a client can claim one). */
const REGRESSION_COOLDOWN_MS = 10_000

/** Most publications of one channel sent in one pipeline (with one WAIT when replicated). */
const PUBLISH_BATCH = 64

interface PublishJob {
  key: string | undefined
  keys: string[]
  args: (string | number | Buffer)[]
  replicated: boolean
  resolve: (o: PublishOutcome) => void
  reject: (err: unknown) => void
}

interface PublishQueue {
  waiting: PublishJob[]
  busy: boolean
}

/** Most live publications held for one channel while its epoch is being moved. */
const MAX_HELD = 10_000

function isNodeInfo(v: unknown): v is NodeInfo {
  if (typeof v !== 'object' || v === null) return false
  const n = v as Record<string, unknown>
  return typeof n['id'] === 'string' && ['connections', 'subscriptions', 'channels', 'startedAt', 'updatedAt'].every((k) => typeof n[k] === 'number')
}

function isControl(v: unknown): v is ControlMessage {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string'
}

function validateStream(s: StreamOptions): void {
  const ok = (v: number, min: number): boolean => Number.isSafeInteger(v) && v >= min
  if (!ok(s.historySize, 0) || !ok(s.historyTtlMs, 1) || !ok(s.streamTtlMs, 1)) {
    throw new HoldfastError('bad_request', 'stream options must be integers: historySize ≥ 0, historyTtlMs and streamTtlMs > 0')
  }
}

/** What the node's live feed last delivered for one channel, to notice a stream that went back. */
interface FeedState {
  channel: string
  epoch: string | undefined
  offset: number
  /** Publications held while the stream is moved to a new epoch (see #regression). */
  held: StreamPublication[] | undefined
}

function text(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}

/** A field of an INFO reply. */
function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1]
}

/**
 * Engine for a fleet of nodes sharing one Redis: a single server, a primary with replicas behind
 * Sentinel, or a Cluster (docs/redis.md).
 *
 * - Streams: a hash (epoch, top, commit mark, expiry, writer's replication id) and a Redis Stream
 *   per channel, written by one Lua script per publish that also PUBLISHes the publication, so
 *   offsets are atomic across nodes and the live feed is in offset order. A replicated publish
 *   waits for a replica (WAIT) and a commit script fans it out.
 * - Epochs change whenever continuity is not certain, including when the stream may have gone
 *   back: written under another replication history (failover, restart), a client that saw an
 *   offset beyond the top, an offset the feed delivered twice with different content.
 * - Fan-out: a node subscribes to a channel's pub/sub channel only while it has subscribers for
 *   it (sharded pub/sub in a Cluster), so a node never receives traffic it does not need.
 * - Presence, idempotency ids and the node registry: keys with logical expiry checked in scripts
 *   and PEXPIRE behind it, so a crashed node's entries age out by themselves.
 * - Outages: calls fail fast with engine_unavailable (breaker, no offline queue, command
 *   timeout); the handler hears `onStateChange(false)`, then `true` once the connections are
 *   back and every channel is resubscribed, so the gateway can find the gaps.
 */
export class RedisEngine implements Engine {
  readonly name = 'redis'

  readonly #opts: Resolved
  readonly #keys: RedisKeys
  #conns: Connections | undefined
  #link: RedisLink | undefined
  #durable: RedisConnection | undefined
  #handler: EngineHandler | undefined
  #closed = false
  /** pub/sub channel → what this node's feed delivered for it, for the channels it receives. */
  readonly #byPubKey = new Map<string, FeedState>()
  /** Channels whose stream went back while Redis could not be told: moved to a new epoch before any read. */
  readonly #needsBump = new Map<string, string>()
  /**
   * How far the scripts may trust a stream written under another replication history (see the
   * fence in redis-scripts.ts): '1' when the server runs appendfsync always (its restart loses
   * nothing), 'c' in a Cluster (keys migrate between primaries), '0' otherwise.
   */
  #trust: '0' | '1' | 'c' = '0'
  /** run_id and replication id of the server the command connection last reached. */
  #server: { runId: string; replId: string } | undefined
  #publishCommand: 'publish' | 'spublish' = 'publish'
  /** Keeps publications in their publishers' order across a failed publish (redis-publish-order.ts). */
  readonly #order = new PublishOrder()
  /** Publishes per channel, sent one batch at a time (see #enqueue). */
  readonly #queues = new Map<string, PublishQueue>()

  constructor(options: RedisEngineOptions = {}) {
    this.#opts = resolveOptions(options)
    this.#keys = new RedisKeys(this.#opts.prefix)
  }

  async start(handler: EngineHandler): Promise<void> {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'redis engine is closed')
    if (this.#handler !== undefined) throw new HoldfastError('internal', 'redis engine already started')
    this.#handler = handler
    const o = this.#opts
    const conns = connections({
      url: o.url,
      redis: o.redis,
      cluster: o.cluster,
      shardedPubSub: o.shardedPubSub,
      commandTimeoutMs: o.commandTimeoutMs,
      startTimeoutMs: o.startTimeoutMs,
      reconnectDelay: (times) => reconnectDelay(times, o.reconnectBaseMs, o.reconnectMaxMs),
    })
    this.#conns = conns
    this.#publishCommand = conns.kind === 'cluster' && o.shardedPubSub ? 'spublish' : 'publish'
    try {
      // A configuration that cannot work (a wrong master name, not a cluster...) fails the start.
      await conns.check()
    } catch (err) {
      this.#closed = true
      this.#handler = undefined
      conns.cmd.disconnect()
      throw err
    }
    let link: RedisLink | undefined
    const feed = conns.feed({
      onMessage: (channel, message) => this.#onMessage(channel, message),
      onChange: () => link?.update(),
      onError: (err) => o.onError(err),
    })
    link = new RedisLink(
      conns.cmd,
      feed,
      { commandTimeoutMs: o.commandTimeoutMs, healthCheckIntervalMs: o.healthCheckIntervalMs, breaker: o.breaker },
      {
        onStateChange: (ready, reason) => {
          if (!ready) o.onError(new HoldfastError('engine_unavailable', `redis (${conns.describe}) not ready: ${reason}`))
          this.#handler?.onStateChange?.(ready)
        },
        onStillNotReady: (reason) => o.onError(new HoldfastError('engine_unavailable', `redis (${conns.describe}) still not ready: ${reason}`)),
        onError: (err) => o.onError(err),
        onConnected: () => this.#onConnected(),
      },
    )
    this.#link = link
    await link.start([this.#keys.control], o.startTimeoutMs)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#handler = undefined
    this.#byPubKey.clear()
    const durable = this.#durable
    await Promise.all([this.#link?.close(), durable === undefined ? undefined : closeConnection(durable, this.#opts.commandTimeoutMs)])
  }

  isReady(): boolean {
    return !this.#closed && this.#link?.ready === true
  }

  /** State of the circuit breaker around commands, for metrics and tests. */
  breakerState(): 'closed' | 'open' | 'halfOpen' {
    return this.#link?.breakerState ?? 'closed'
  }

  /** The topology in use: `single`, `sentinel` or `cluster` (after start). */
  get topology(): Connections['kind'] | undefined {
    return this.#conns?.kind
  }

  async subscribe(channel: string): Promise<void> {
    const link = this.#live()
    const key = this.#keys.pub(checkChannel(channel))
    // Known before the SUBSCRIBE is acknowledged: a message may arrive right behind the ack.
    if (!this.#byPubKey.has(key)) this.#byPubKey.set(key, { channel, epoch: undefined, offset: 0, held: undefined })
    try {
      await link.subscribe(key)
    } catch (err) {
      if (!link.isWanted(key)) this.#byPubKey.delete(key)
      throw err
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    const link = this.#live()
    const key = this.#keys.pub(checkChannel(channel))
    // Dropped before the UNSUBSCRIBE: what is still in flight for this channel is not delivered.
    this.#byPubKey.delete(key)
    await link.unsubscribe(key)
  }

  async publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome> {
    this.#live()
    checkChannel(channel)
    validateStream(opts)
    const replicated = opts.durability === 'replicated'
    if (opts.durability !== undefined && opts.durability !== 'none' && !replicated) {
      throw new HoldfastError('bad_request', `durability must be 'none' or 'replicated', got ${String(opts.durability)}`)
    }
    if (replicated && opts.historySize < 1) {
      throw new HoldfastError('bad_request', "durability 'replicated' needs historySize >= 1 (a publication is fanned out from the stream once a replica has it)")
    }
    const idemTtl = opts.idempotencyTtlMs ?? this.#opts.idempotencyTtlMs
    if (opts.idempotencyKey !== undefined && (!Number.isSafeInteger(idemTtl) || idemTtl <= 0)) {
      throw new HoldfastError('bad_request', 'idempotencyTtlMs must be a positive integer')
    }
    const k = this.#keys
    const keys = [k.meta(channel), k.stream(channel)]
    if (opts.idempotencyKey !== undefined) keys.push(k.idem(channel, opts.idempotencyKey))
    const args = [
      this.#now(),
      newEpoch(),
      opts.historySize,
      opts.streamTtlMs,
      k.pub(channel),
      pack(data),
      opts.info === undefined ? EMPTY : pack(opts.info),
      idemTtl,
      replicated ? 'r' : 'n',
      this.#trust,
      this.#publishCommand,
    ]
    const key = opts.idempotencyKey
    this.#order.admit(channel, key)
    return this.#enqueue(channel, { key, keys, args, replicated })
  }

  async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    this.#live()
    checkChannel(channel)
    if (!Number.isSafeInteger(q.limit) || q.limit < 0) {
      throw new HoldfastError('bad_request', `history limit must be a non-negative integer, got ${String(q.limit)}`)
    }
    validateStream(q.stream)
    const seen = this.#needsBump.get(channel)
    if (seen !== undefined) await this.#bump(channel, seen)
    let reply = await this.#readHistory(channel, q)
    if (reply.state === 2) {
      // The position lies between the commit mark and the stored top: entries a commit fanned out
      // before a failover lost its mark. Confirm they are on a replica, commit them, read again.
      await this.#sync(channel)
      reply = await this.#readHistory(channel, q)
    }
    const since = q.since
    const page: HistoryPage = {
      offset: reply.top,
      epoch: reply.epoch,
      publications: [],
      continuous: since === undefined ? true : reply.validSince && reply.state === 1,
    }
    for (const entry of reply.entries) page.publications.push(decodeEntry(entry))
    if (q.reverse === true) page.publications.reverse()
    return page
  }

  async removeHistory(channel: string): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    const k = this.#keys
    await link.run('removeHistory', (c) => Scripts.remove.run(c, [k.meta(channel), k.stream(channel)], [this.#now(), newEpoch()]))
  }

  async addPresence(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    positiveTtl(ttlMs)
    const k = this.#keys
    const args = [this.#now(), ttlMs, info.client, pack(info)]
    await link.run('addPresence', (c) => Scripts.presenceAdd.run(c, [k.presence(channel), k.presenceExp(channel)], args))
  }

  /** Fleet-wide channel occupancy for the occupied/vacated webhooks (backend/gateway-backend.ts). */
  async occupancy(channel: string, node: string, occupied: boolean, ttlMs: number): Promise<boolean> {
    const link = this.#live()
    checkChannel(channel)
    positiveTtl(ttlMs)
    const reply = await link.run('occupancy', (c) => Scripts.occupancy.run(c, [this.#keys.occupancy(channel)], [this.#now(), ttlMs, node, occupied ? '1' : '0']))
    return Number(reply) === 1
  }

  async removePresence(channel: string, clientId: string): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    const k = this.#keys
    await link.run('removePresence', (c) => Scripts.memberRemove.run(c, [k.presence(channel), k.presenceExp(channel)], [clientId]))
  }

  async presence(channel: string): Promise<Record<string, ClientInfo>> {
    const out: Record<string, ClientInfo> = {}
    for (const info of await this.#presence(channel)) out[info.client] = info
    return out
  }

  async presenceStats(channel: string): Promise<{ clients: number; users: number }> {
    const infos = await this.#presence(channel)
    return { clients: infos.length, users: new Set(infos.map((i) => i.user)).size }
  }

  async publishJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    await link.run('publishJoinLeave', (c) => c.callBuffer(this.#publishCommand, this.#keys.pub(channel), encodeJoinLeave(kind, info)))
  }

  async publishControl(msg: ControlMessage): Promise<void> {
    const link = this.#live()
    // Classic pub/sub in every topology: every node must hear it.
    await link.run('publishControl', (c) => c.callBuffer('publish', this.#keys.control, pack(msg)))
  }

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    const link = this.#live()
    positiveTtl(ttlMs)
    const k = this.#keys
    const args = [this.#now(), ttlMs, info.id, pack(info)]
    await link.run('registerNode', (c) => Scripts.nodeRegister.run(c, [k.nodes, k.nodesExp], args))
  }

  async unregisterNode(id: string): Promise<void> {
    const link = this.#live()
    const k = this.#keys
    await link.run('unregisterNode', (c) => Scripts.memberRemove.run(c, [k.nodes, k.nodesExp], [id]))
  }

  async nodes(): Promise<NodeInfo[]> {
    const out: NodeInfo[] = []
    for (const value of await this.#members('nodes', this.#keys.nodes, this.#keys.nodesExp)) {
      const info = this.#unpack(value)
      if (isNodeInfo(info)) out.push(info)
      else this.#opts.onError(malformed('nodes'))
    }
    return out
  }

  async claimIdempotent(key: string, ttlMs: number): Promise<IdempotencyClaim> {
    const link = this.#live()
    positiveTtl(ttlMs)
    const reply = asArray(
      await link.run('claimIdempotent', (c) => Scripts.claim.run(c, [this.#keys.claim(key)], [this.#now(), ttlMs])),
      'claimIdempotent',
    )
    const state = asString(reply[0], 'claimIdempotent')
    if (state === 'n') return { state: 'new' }
    if (state === 'p') return { state: 'pending' }
    if (state === 'd') return { state: 'done', result: unpack(asBuffer(reply[1], 'claimIdempotent')) }
    throw malformed('claimIdempotent')
  }

  async completeIdempotent(key: string, result: unknown, ttlMs: number): Promise<void> {
    const link = this.#live()
    positiveTtl(ttlMs)
    const args = [this.#now(), ttlMs, pack(result)]
    await link.run('completeIdempotent', (c) => Scripts.claimComplete.run(c, [this.#keys.claim(key)], args))
  }

  async releaseIdempotent(key: string): Promise<void> {
    const link = this.#live()
    await link.run('releaseIdempotent', (c) => c.callBuffer('del', this.#keys.claim(key)))
  }

  // ------------------------------------------------------------------ internals

  #live(): RedisLink {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'redis engine is closed')
    if (this.#link === undefined) throw new HoldfastError('engine_unavailable', 'redis engine is not started')
    return this.#link
  }

  /** `-1` tells the scripts to read the Redis clock. */
  #now(): number {
    const now = this.#opts.now
    if (now === undefined) return -1
    const t = now()
    if (!Number.isSafeInteger(t) || t < 0) throw new HoldfastError('internal', `redis engine: the clock returned ${String(t)}`)
    return t
  }

  #notReplicated(): HoldfastError {
    return new HoldfastError(
      'engine_unavailable',
      `no replica confirmed the publication within ${this.#opts.replicaWaitMs} ms (durability 'replicated'): it was not delivered; retry with the same id`,
    )
  }

  /** The connection replicated publishes run on (their WAIT blocks it), opened on first use. */
  async #durableConnection(): Promise<RedisConnection> {
    const conns = this.#conns
    if (conns === undefined) throw new HoldfastError('engine_unavailable', 'redis engine is not started')
    let conn = this.#durable
    if (conn === undefined) {
      conn = conns.durable()
      conn.on('error', () => {})
      this.#durable = conn
      conn.connect().catch(() => {})
    }
    if (conn.status === 'ready') return conn
    const c = conn
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.off('ready', onReady)
        reject(new HoldfastError('engine_unavailable', 'redis: the connection for replicated publishes is not up'))
      }, this.#opts.commandTimeoutMs)
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      c.once('ready', onReady)
    })
    return c
  }

  /** Fan out every stored entry up to `offset` that is not committed yet. → the stream's epoch ('' if it is gone). */
  async #commit(channel: string, offset: number): Promise<string> {
    const k = this.#keys
    const reply = asArray(
      await this.#live().run('commit', (c) => Scripts.commit.run(c, [k.meta(channel), k.stream(channel)], [this.#now(), offset, this.#publishCommand, k.pub(channel)])),
      'commit',
    )
    return asString(reply[1], 'commit')
  }

  /** Confirm that a replica holds every stored entry of the channel, then commit them. */
  async #sync(channel: string): Promise<void> {
    const link = this.#live()
    const durable = await this.#durableConnection()
    const { replies, replicas } = (await link.run(
      'history',
      (c) => Scripts.sync.runAll(c, [{ keys: [this.#keys.meta(channel)], args: [this.#now(), newEpoch(), this.#trust] }], { numReplicas: 1, timeoutMs: this.#opts.replicaWaitMs }),
      durable,
    )) as { replies: Array<[Error | null, unknown]>; replicas: number }
    const [err, raw] = replies[0] ?? [new Error('no reply'), undefined]
    if (err !== null) throw toEngineError('history', err)
    const top = asInt(asArray(raw, 'history')[0], 'history')
    if (top < 0) return
    if (replicas < 1) throw new HoldfastError('engine_unavailable', `no replica confirmed the channel's latest publications within ${this.#opts.replicaWaitMs} ms; retry`)
    await this.#commit(channel, top)
  }

  /**
   * One channel's publishes go to Redis in batches, one batch at a time: each batch is one
   * pipeline, so one round trip serves many, and Redis runs them in the order they came. A batch
   * in flight holds the next back: were they sent side by side, a failover could refuse an
   * earlier publication and store a later one (sent a moment after, once the new primary
   * answered), and the earlier one's retry would land behind it. When a publication fails with a
   * temporary error, so does everything behind it (the rest of its batch, and what is queued,
   * unsent), and the channel's publish order gate closes (see PublishOrder): a publisher's
   * retries then come back in the order it issued them.
   *
   * A replicated publish is stored, then acknowledged by a replica (one WAIT per batch), then
   * committed, which fans it out: no client sees an offset that a failover to that replica could
   * take back.
   */
  #enqueue(channel: string, job: Omit<PublishJob, 'resolve' | 'reject'>): Promise<PublishOutcome> {
    let q = this.#queues.get(channel)
    if (q === undefined) {
      q = { waiting: [], busy: false }
      this.#queues.set(channel, q)
    }
    const queue = q
    return new Promise((resolve, reject) => {
      queue.waiting.push({ ...job, resolve, reject })
      if (!queue.busy) void this.#flush(channel, queue)
    })
  }

  async #flush(channel: string, q: PublishQueue): Promise<void> {
    q.busy = true
    // One kind per batch: a WAIT covers the connection's every write, the unreplicated ones too.
    const replicated = (q.waiting[0] as PublishJob).replicated
    let n = 1
    while (n < q.waiting.length && n < PUBLISH_BATCH && (q.waiting[n] as PublishJob).replicated === replicated) n++
    const batch = q.waiting.splice(0, n)
    let done = 0
    try {
      const link = this.#live()
      const durable = replicated ? await this.#durableConnection() : undefined
      const wait = replicated ? { numReplicas: 1, timeoutMs: this.#opts.replicaWaitMs } : undefined
      const { replies, replicas } = (await link.run('publish', (c) => Scripts.publish.runAll(c, batch, wait), durable)) as {
        replies: Array<[Error | null, unknown]>
        replicas: number
      }
      const outcomes: Array<PublishOutcome | HoldfastError> = replies.map(([err, raw]) => {
        if (err !== null) return toEngineError('publish', err)
        const r = asArray(raw, 'publish')
        return { offset: asInt(r[0], 'publish'), epoch: asString(r[1], 'publish'), duplicate: asInt(r[2], 'publish') === 1 }
      })
      if (replicated) {
        const failed = outcomes.find((o): o is HoldfastError => o instanceof Error)
        if (failed !== undefined || replicas < 1) throw failed ?? this.#notReplicated()
        let top = 0
        for (const o of outcomes) top = Math.max(top, (o as PublishOutcome).offset)
        const epoch = await this.#commit(channel, top)
        for (const [i, job] of batch.entries()) {
          const o = outcomes[i] as PublishOutcome
          this.#order.stored(channel, job.key)
          job.resolve({ offset: o.offset, epoch: epoch === '' ? o.epoch : epoch, duplicate: o.duplicate })
        }
        return
      }
      for (const [i, job] of batch.entries()) {
        const o = outcomes[i] as PublishOutcome | HoldfastError
        if (o instanceof Error && o.temporary) throw o
        done = i + 1
        if (o instanceof Error) job.reject(o)
        else {
          this.#order.stored(channel, job.key)
          job.resolve(o)
        }
      }
    } catch (err) {
      const error = err instanceof HoldfastError ? err : toEngineError('publish', err)
      // This publication fails, and so does everything behind it: the rest of its batch (a later
      // one stored there is found by its retry's dedupe) and what is queued, unsent.
      const failed = batch.slice(done)
      const behind = q.waiting.splice(0)
      if (error.temporary) this.#order.failed(channel, [...failed, ...behind].map((j) => j.key))
      for (const job of failed) job.reject(error)
      const held = new HoldfastError('engine_unavailable', `an earlier publication to this channel failed (${error.message}): retry in order`)
      for (const job of behind) job.reject(held)
    } finally {
      q.busy = false
      if (q.waiting.length > 0) void this.#flush(channel, q)
      else if (this.#queues.get(channel) === q) this.#queues.delete(channel)
    }
  }

  async #readHistory(
    channel: string,
    q: HistoryQuery,
  ): Promise<{ top: number; epoch: string; state: number; entries: unknown[]; validSince: boolean }> {
    // A position that cannot exist (negative, fractional) is simply not continuous; the page
    // still reports the stream top.
    const since = q.since
    const validSince = since !== undefined && Number.isSafeInteger(since.offset) && since.offset >= 0 && typeof since.epoch === 'string'
    const k = this.#keys
    const args = [
      this.#now(),
      newEpoch(),
      q.stream.historySize,
      q.stream.historyTtlMs,
      q.stream.streamTtlMs,
      validSince ? since.offset : -1,
      validSince ? since.epoch : '',
      since !== undefined && !validSince ? 0 : q.limit,
      this.#trust,
      REGRESSION_COOLDOWN_MS,
      q.maxBytes ?? 0,
    ]
    const reply = asArray(await this.#live().run('history', (c) => Scripts.history.run(c, [k.meta(channel), k.stream(channel)], args)), 'history')
    return {
      top: asInt(reply[0], 'history'),
      epoch: asString(reply[1], 'history'),
      state: asInt(reply[2], 'history'),
      entries: asArray(reply[3], 'history'),
      validSince,
    }
  }

  /** Move the channel's stream off epoch `seen` (if it is still on it). → the current epoch. */
  async #bump(channel: string, seen: string): Promise<string> {
    const reply = asArray(
      await this.#live().run('bump', (c) => Scripts.bump.run(c, [this.#keys.meta(channel)], [this.#now(), seen, newEpoch()])),
      'bump',
    )
    if (this.#needsBump.get(channel) === seen) this.#needsBump.delete(channel)
    return asString(reply[0], 'bump')
  }

  /**
   * The command connection reached a server: learn which one. A different run_id or replication
   * id than before means a restart or a failover happened meanwhile (the scripts move the streams
   * it may have cost to new epochs); `appendfsync always` means a restart of this server keeps
   * every acknowledged write.
   */
  async #onConnected(): Promise<void> {
    const conns = this.#conns
    const link = this.#link
    if (conns === undefined || link === undefined) return
    if (conns.kind === 'cluster') {
      this.#trust = 'c'
      return
    }
    const cmd = link.cmd
    const server = text(await cmd.callBuffer('info', 'server'))
    const replication = text(await cmd.callBuffer('info', 'replication'))
    const now = { runId: infoField(server, 'run_id') ?? '', replId: infoField(replication, 'master_replid') ?? '' }
    const role = infoField(replication, 'role')
    if (role !== undefined && role !== 'master') {
      this.#opts.onError(new HoldfastError('engine_unavailable', `redis (${conns.describe}) is a replica (role ${role}): publishes fail until it is a primary`))
    }
    const before = this.#server
    if (before !== undefined && (before.runId !== now.runId || before.replId !== now.replId)) {
      this.#opts.onError(
        new HoldfastError(
          'engine_unavailable',
          `redis (${conns.describe}) is now served by ${before.runId === now.runId ? 'the same process under a new replication id' : 'another or a restarted server'} ` +
            `(run_id ${before.runId.slice(0, 8)} → ${now.runId.slice(0, 8)}, replication id ${before.replId.slice(0, 8)} → ${now.replId.slice(0, 8)}): ` +
            'streams written before continue in new epochs unless they are known whole',
        ),
      )
      // The subscriber may still be on the old primary (demoted, not dead): follow to the new one.
      if (conns.kind === 'sentinel') link.feed.reconnect()
    }
    this.#server = now
    let trust: '0' | '1' | 'c' = '0'
    try {
      const aof = asArray(await cmd.callBuffer('config', 'get', 'appendonly'), 'config').map(text)
      const fsync = asArray(await cmd.callBuffer('config', 'get', 'appendfsync'), 'config').map(text)
      trust = aof[1] === 'yes' && fsync[1] === 'always' ? '1' : '0'
    } catch {
      // CONFIG may be disabled (managed Redis): then a restart is not trusted to keep everything.
    }
    this.#trust = trust
  }

  async #presence(channel: string): Promise<ClientInfo[]> {
    this.#live()
    checkChannel(channel)
    const out: ClientInfo[] = []
    for (const value of await this.#members('presence', this.#keys.presence(channel), this.#keys.presenceExp(channel))) {
      const info = this.#unpack(value)
      if (isClientInfo(info)) out.push(info)
      else this.#opts.onError(malformed('presence'))
    }
    return out
  }

  /** Values of a (hash, expiry zset) pair after pruning the expired members. */
  async #members(what: string, hash: string, zset: string): Promise<Buffer[]> {
    const link = this.#live()
    const reply = asArray(await link.run(what, (c) => Scripts.members.run(c, [hash, zset], [this.#now()])), what)
    const values: Buffer[] = []
    for (let i = 1; i < reply.length; i += 2) values.push(asBuffer(reply[i], what))
    return values
  }

  #unpack(value: Buffer): unknown {
    try {
      return unpack(value)
    } catch (err) {
      this.#opts.onError(err)
      return undefined
    }
  }

  /** The live feed. Hot path: one map lookup, one decode per message and node. */
  #onMessage(channelKey: Buffer, message: Buffer): void {
    const handler = this.#handler
    if (handler === undefined) return
    try {
      const key = channelKey.toString('utf8')
      if (key === this.#keys.control) {
        const msg = unpack(message)
        if (isControl(msg)) handler.onControl(msg)
        return
      }
      const st = this.#byPubKey.get(key)
      if (st === undefined) return
      const msg = decodeFeedMessage(message)
      if (msg === undefined) return
      if (msg.kind !== 'pub') {
        handler.onJoinLeave(st.channel, msg.kind, msg.info)
        return
      }
      const pub = msg.pub
      if (st.held !== undefined) {
        if (st.held.length < MAX_HELD) st.held.push(pub)
        return
      }
      if (st.epoch === pub.epoch && pub.offset <= st.offset) {
        // A direct publication is fanned out exactly once per offset: seeing an offset of this
        // epoch again means the stream went back and reused it for another publication.
        if (!msg.repeatable) {
          this.#regression(st, pub)
          return
        }
      } else {
        st.epoch = pub.epoch
        st.offset = pub.offset
      }
      handler.onPublication(st.channel, pub)
    } catch (err) {
      // A throwing handler or a foreign message must not stop the feed of every other channel.
      this.#opts.onError(err)
    }
  }

  /**
   * The feed delivered offset `pub.offset` of epoch E again, with other content: the stream went
   * back (a lossy failover the scripts could not see). Move the stream to a new epoch and deliver
   * what arrived meanwhile in it, so that the gateway sends the channel's subscribers to recovery
   * and they learn `recovered: false` instead of dropping the reused offsets as duplicates.
   */
  #regression(st: FeedState, pub: StreamPublication): void {
    const seen = pub.epoch
    st.held = [pub]
    this.#opts.onError(new HoldfastError('internal', `redis: the stream of ${st.channel} went back (offset ${pub.offset} of epoch ${seen} again): moving it to a new epoch`))
    const release = (epoch: string): void => {
      const held = st.held ?? []
      st.held = undefined
      for (const p of held) {
        const moved = p.epoch === seen ? { ...p, epoch } : p
        st.epoch = moved.epoch
        st.offset = moved.offset
        if (this.#byPubKey.get(this.#keys.pub(st.channel)) === st) this.#handler?.onPublication(st.channel, moved)
      }
    }
    this.#needsBump.set(st.channel, seen)
    this.#bump(st.channel, seen).then(
      (epoch) => release(epoch === '' ? `${seen}.gone` : epoch),
      // Redis is away: the subscribers still go to recovery (an epoch that matches no stream), and
      // the next history read of the channel moves the stream before it answers.
      () => release(`${seen}.went-back`),
    )
  }
}

/** Channel names become part of hash-tagged keys: a brace would change which part is the tag. */
function checkChannel(channel: string): string {
  if (typeof channel !== 'string' || channel.length === 0 || channel.includes('{') || channel.includes('}')) {
    throw new HoldfastError('bad_request', 'redis engine: channel names must be non-empty and without braces')
  }
  return channel
}

function positiveTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new HoldfastError('bad_request', `ttl must be a positive integer, got ${String(ttlMs)}`)
}
