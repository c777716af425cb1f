import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { HoldfastError, type ClientInfo } from '@holdfast/protocol'
import { optionChecks } from '@holdfast/protocol/internal'
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
} from './engine.js'
import { RedisLink, type BreakerSettings, type RedisConnection } from './redis-link.js'
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
  Scripts,
  unpack,
} from './redis-scripts.js'

export interface RedisEngineOptions {
  /** Redis URL (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS). @default 'redis://127.0.0.1:6379' */
  url?: string
  /**
   * ioredis options, or an existing client (`Redis` or `Cluster`) used as a template: the engine
   * always opens its own two connections from it (commands, subscriber) with its fail-fast
   * settings on top. With `url`, the options are applied over the URL.
   * @default {}
   */
  redis?: RedisOptions | Redis | Cluster
  /** Redis Cluster startup nodes; `redis` (options) then applies to each node connection. Not tested here, see docs/redis.md. @default undefined */
  cluster?: ClusterNode[]
  /** Prefix of every key and pub/sub channel, so several deployments can share one Redis. No braces. @default 'hf' */
  prefix?: string
  /** A Redis call that has not answered after this long fails with engine_unavailable, in ms. @default 2000 */
  commandTimeoutMs?: number
  /** Period of the PING on each connection that notices a Redis that stopped answering, in ms. @default 1000 */
  healthCheckIntervalMs?: number
  /** Circuit breaker around commands (opossum). @default { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 1000, rollingWindowMs: 10000 } */
  breaker?: Partial<BreakerSettings>
  /** First reconnect delay cap, in ms; it doubles per attempt up to `reconnectMaxMs`, with full jitter. @default 100 */
  reconnectBaseMs?: number
  /** Largest reconnect delay, in ms. @default 2000 */
  reconnectMaxMs?: number
  /** How long `start()` waits for Redis before resolving anyway (the engine keeps reconnecting and reports ready later), in ms. @default 5000 */
  startTimeoutMs?: number
  /** How long a publish `idempotencyKey` is remembered when the publish gives no `idempotencyTtlMs`, in ms. @default 300000 */
  idempotencyTtlMs?: number
  /**
   * Clock for every TTL (history, streams, presence, idempotency, registry), in ms. By default the
   * Redis server's clock (TIME) is used, so that all nodes agree whatever their own clocks say;
   * tests inject a fake one to make TTLs deterministic.
   * @default the Redis server clock
   */
  now?: () => number
  /**
   * Called when the handler throws during fan-out, or a message from Redis cannot be decoded.
   * @default reports through `process.emitWarning`
   */
  onError?: (err: unknown) => void
}

interface Resolved {
  url: string | undefined
  redis: RedisOptions | Redis | Cluster | undefined
  cluster: ClusterNode[] | undefined
  prefix: string
  commandTimeoutMs: number
  healthCheckIntervalMs: number
  breaker: BreakerSettings
  reconnectBaseMs: number
  reconnectMaxMs: number
  startTimeoutMs: number
  idempotencyTtlMs: number
  now: (() => number) | undefined
  onError: (err: unknown) => void
}

const DEFAULTS = {
  prefix: 'hf',
  commandTimeoutMs: 2000,
  healthCheckIntervalMs: 1000,
  breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 1000, rollingWindowMs: 10_000 },
  reconnectBaseMs: 100,
  reconnectMaxMs: 2000,
  startTimeoutMs: 5000,
  idempotencyTtlMs: 300_000,
} as const

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  const stack = err instanceof Error ? err.stack : undefined
  process.emitWarning(`holdfast redis engine: ${message}`, { code: 'HOLDFAST_ENGINE_HANDLER', ...(stack === undefined ? {} : { detail: stack }) })
}

const checks = optionChecks('holdfast')

function resolveOptions(o: RedisEngineOptions): Resolved {
  const { positiveInt: positive, fn } = checks
  const prefix = o.prefix ?? DEFAULTS.prefix
  // A brace in the prefix would move the hash tag, and one channel's keys could land in several slots.
  if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new TypeError(`holdfast: option "prefix" must be a non-empty string without braces, got ${String(prefix)}`)
  }
  if (o.url !== undefined && typeof o.url !== 'string') throw new TypeError('holdfast: option "url" must be a string')
  if (o.cluster !== undefined && (!Array.isArray(o.cluster) || o.cluster.length === 0)) {
    throw new TypeError('holdfast: option "cluster" must be a non-empty array of nodes')
  }
  if (o.redis !== undefined && (typeof o.redis !== 'object' || o.redis === null)) {
    throw new TypeError('holdfast: option "redis" must be ioredis options or a client')
  }
  const b = o.breaker ?? {}
  const pct = b.errorThresholdPercentage ?? DEFAULTS.breaker.errorThresholdPercentage
  if (typeof pct !== 'number' || !(pct > 0 && pct <= 100)) {
    throw new TypeError(`holdfast: option "breaker.errorThresholdPercentage" must be in (0, 100], got ${String(pct)}`)
  }
  const volume = b.volumeThreshold ?? DEFAULTS.breaker.volumeThreshold
  if (typeof volume !== 'number' || !Number.isSafeInteger(volume) || volume < 0) {
    throw new TypeError(`holdfast: option "breaker.volumeThreshold" must be a non-negative integer, got ${String(volume)}`)
  }
  const reconnectBaseMs = positive('reconnectBaseMs', o.reconnectBaseMs ?? DEFAULTS.reconnectBaseMs)
  const reconnectMaxMs = positive('reconnectMaxMs', o.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs)
  if (reconnectMaxMs < reconnectBaseMs) throw new TypeError('holdfast: option "reconnectMaxMs" must be at least "reconnectBaseMs"')
  return {
    url: o.url,
    redis: o.redis,
    cluster: o.cluster,
    prefix,
    commandTimeoutMs: positive('commandTimeoutMs', o.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs),
    healthCheckIntervalMs: positive('healthCheckIntervalMs', o.healthCheckIntervalMs ?? DEFAULTS.healthCheckIntervalMs),
    breaker: {
      errorThresholdPercentage: pct,
      volumeThreshold: volume,
      resetTimeoutMs: positive('breaker.resetTimeoutMs', b.resetTimeoutMs ?? DEFAULTS.breaker.resetTimeoutMs),
      rollingWindowMs: positive('breaker.rollingWindowMs', b.rollingWindowMs ?? DEFAULTS.breaker.rollingWindowMs),
    },
    reconnectBaseMs,
    reconnectMaxMs,
    startTimeoutMs: positive('startTimeoutMs', o.startTimeoutMs ?? DEFAULTS.startTimeoutMs),
    idempotencyTtlMs: positive('idempotencyTtlMs', o.idempotencyTtlMs ?? DEFAULTS.idempotencyTtlMs),
    now: o.now === undefined ? undefined : fn('now', o.now),
    onError: o.onError === undefined ? reportError : fn('onError', o.onError),
  }
}

/**
 * Full jitter with a capped exponent: delays stay spread at the cap and never overflow, however
 * many attempts a long outage takes (see PRODUCT.md, "Backoff").
 */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.floor(Math.random() * (cap + 1))
}

/** ioredis options with the reply shapes the engine parses (RESP2-style arrays). */
type ConnOptions = Omit<RedisOptions, 'replyMapping'> & { replyMapping?: 'legacy' }
type NodeOptions = NonNullable<ClusterOptions['redisOptions']> & { replyMapping?: 'legacy' }

/** Settings without which a dead Redis would make calls wait: the engine always applies them. */
function failFast(r: Resolved): NodeOptions {
  return {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    // A command resent after a reconnect may have run already; its caller has been told it failed.
    autoResendUnfulfilledCommands: false,
    // The engine resubscribes itself, so that it knows when the feed is whole again.
    autoResubscribe: false,
    commandTimeout: r.commandTimeoutMs,
    // The scripts' replies are parsed as RESP2 arrays; a user's RESP3 setting must not change them.
    protocol: 2,
    replyMapping: 'legacy',
    // What a replica answers after a failover: reconnect, to find the new primary.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
  }
}

function connect(r: Resolved): { cmd: RedisConnection; sub: RedisConnection } {
  const retryStrategy = (times: number): number => reconnectDelay(times, r.reconnectBaseMs, r.reconnectMaxMs)
  const ours: ConnOptions = { ...failFast(r), enableOfflineQueue: false, retryStrategy }
  if (r.redis instanceof Redis) {
    return { cmd: r.redis.duplicate(ours), sub: r.redis.duplicate(ours) }
  }
  const clusterOptions = (user: RedisOptions): ClusterOptions & { redisOptions: NodeOptions } => {
    // What a Cluster decides itself (addresses, retries, queueing) is not a per-node option.
    const {
      replyMapping: _mapping,
      port: _port,
      host: _host,
      path: _path,
      sentinels: _sentinels,
      retryStrategy: _retry,
      enableOfflineQueue: _queue,
      readOnly: _readOnly,
      ...rest
    } = user
    return {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { connectTimeout: r.commandTimeoutMs, ...rest, ...failFast(r) },
    }
  }
  if (r.redis instanceof Cluster) {
    return { cmd: r.redis.duplicate(undefined, clusterOptions({})), sub: r.redis.duplicate(undefined, clusterOptions({})) }
  }
  const { replyMapping: _mapping, ...user }: RedisOptions = r.redis ?? {}
  if (r.cluster !== undefined) {
    return { cmd: new Cluster(r.cluster, clusterOptions(user)), sub: new Cluster(r.cluster, clusterOptions(user)) }
  }
  const options: ConnOptions = { connectTimeout: r.commandTimeoutMs, ...user, ...ours }
  const make = (): Redis => (r.url === undefined ? new Redis(options) : new Redis(r.url, options))
  return { cmd: make(), sub: make() }
}

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

/**
 * Engine for a fleet of nodes sharing one Redis.
 *
 * - Streams: a hash (epoch, top offset, expiry) and a Redis Stream per channel, written by one
 *   Lua script per publish that also PUBLISHes the publication, so offsets are atomic across
 *   nodes and the live feed is in offset order.
 * - Fan-out: a node SUBSCRIBEs to a channel's pub/sub channel only while it has subscribers
 *   for it, so a node never receives traffic it does not need (no all-to-all).
 * - Presence, idempotency ids and the node registry: keys with logical expiry checked in scripts
 *   and PEXPIRE behind it, so a crashed node's entries age out by themselves.
 * - Outages: calls fail fast with engine_unavailable (breaker, no offline queue, command
 *   timeout); the handler hears `onStateChange(false)`, then `true` once both connections are
 *   back and every channel is resubscribed, so the gateway can find the gaps.
 */
export class RedisEngine implements Engine {
  readonly name = 'redis'

  readonly #opts: Resolved
  readonly #keys: RedisKeys
  #link: RedisLink | undefined
  #handler: EngineHandler | undefined
  #closed = false
  /** pub/sub channel → channel name, for the channels this node receives. */
  readonly #byPubKey = new Map<string, string>()

  constructor(options: RedisEngineOptions = {}) {
    this.#opts = resolveOptions(options)
    this.#keys = new RedisKeys(this.#opts.prefix)
  }

  async start(handler: EngineHandler): Promise<void> {
    if (this.#closed) throw new HoldfastError('engine_unavailable', 'redis engine is closed')
    if (this.#handler !== undefined) throw new HoldfastError('internal', 'redis engine already started')
    this.#handler = handler
    const { cmd, sub } = connect(this.#opts)
    this.#link = new RedisLink(
      cmd,
      sub,
      { commandTimeoutMs: this.#opts.commandTimeoutMs, healthCheckIntervalMs: this.#opts.healthCheckIntervalMs, breaker: this.#opts.breaker },
      {
        onMessage: (channel, message) => this.#onMessage(channel, message),
        onStateChange: (ready) => this.#handler?.onStateChange?.(ready),
        onError: (err) => this.#opts.onError(err),
      },
    )
    await this.#link.start([this.#keys.control], this.#opts.startTimeoutMs)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#handler = undefined
    this.#byPubKey.clear()
    await this.#link?.close()
  }

  isReady(): boolean {
    return !this.#closed && this.#link?.ready === true
  }

  /** State of the circuit breaker around commands, for metrics and tests. */
  breakerState(): 'closed' | 'open' | 'halfOpen' {
    return this.#link?.breakerState ?? 'closed'
  }

  async subscribe(channel: string): Promise<void> {
    const link = this.#live()
    const key = this.#keys.pub(checkChannel(channel))
    // Known before the SUBSCRIBE is acknowledged: a message may arrive right behind the ack.
    this.#byPubKey.set(key, channel)
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
    const link = this.#live()
    checkChannel(channel)
    validateStream(opts)
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
    ]
    const reply = asArray(await link.run('publish', (c) => Scripts.publish.run(c, keys, args)), 'publish')
    return {
      offset: asInt(reply[0], 'publish'),
      epoch: asString(reply[1], 'publish'),
      duplicate: asInt(reply[2], 'publish') === 1,
    }
  }

  async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    const link = this.#live()
    checkChannel(channel)
    if (!Number.isSafeInteger(q.limit) || q.limit < 0) {
      throw new HoldfastError('bad_request', `history limit must be a non-negative integer, got ${String(q.limit)}`)
    }
    validateStream(q.stream)
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
    ]
    const reply = asArray(await link.run('history', (c) => Scripts.history.run(c, [k.meta(channel), k.stream(channel)], args)), 'history')
    const page: HistoryPage = {
      offset: asInt(reply[0], 'history'),
      epoch: asString(reply[1], 'history'),
      publications: [],
      continuous: since === undefined ? true : validSince && asInt(reply[2], 'history') === 1,
    }
    for (const entry of asArray(reply[3], 'history')) page.publications.push(decodeEntry(entry))
    if (q.reverse === true) page.publications.reverse()
    return page
  }

  async removeHistory(channel: string): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    const k = this.#keys
    // Both keys share the channel's slot, so one DEL is fine in a Cluster too.
    await link.run('removeHistory', (c) => c.callBuffer('del', k.meta(channel), k.stream(channel)))
  }

  async addPresence(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    const link = this.#live()
    checkChannel(channel)
    positiveTtl(ttlMs)
    const k = this.#keys
    const args = [this.#now(), ttlMs, info.client, pack(info)]
    await link.run('addPresence', (c) => Scripts.presenceAdd.run(c, [k.presence(channel), k.presenceExp(channel)], args))
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
        await link.run('publishJoinLeave', (c) => c.callBuffer('publish', this.#keys.pub(channel), encodeJoinLeave(kind, info)))
  }

  async publishControl(msg: ControlMessage): Promise<void> {
    const link = this.#live()
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
      const channel = this.#byPubKey.get(key)
      if (channel === undefined) return
      const msg = decodeFeedMessage(message)
      if (msg === undefined) return
      if (msg.kind === 'pub') handler.onPublication(channel, msg.pub)
      else handler.onJoinLeave(channel, msg.kind, msg.info)
    } catch (err) {
      // A throwing handler or a foreign message must not stop the feed of every other channel.
      this.#opts.onError(err)
    }
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
