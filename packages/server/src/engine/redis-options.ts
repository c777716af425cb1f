import type { Cluster, ClusterNode, Redis, RedisOptions } from 'ioredis'
import { optionChecks } from '@holdfast/protocol/internal'
import type { BreakerSettings } from './redis-link.js'
import { parseRedisUrl } from './redis-url.js'

export interface RedisEngineOptions {
  /**
   * Redis URL: `redis://[user:pass@]host:port[/db]` (one server; `rediss://` for TLS),
   * `redis+sentinel://[:pass@]host:port,host:port/<master-name>` (Sentinel), or
   * `redis+cluster://host:port,host:port` (Cluster). See docs/redis.md.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string
  /**
   * ioredis options, or an existing client (`Redis` or `Cluster`) used as a template: the engine
   * always opens its own connections from it (commands, subscriber, replicated publishes) with its fail-fast
   * settings on top. With `url`, the options are applied over the URL.
   * @default {}
   */
  redis?: RedisOptions | Redis | Cluster
  /** Redis Cluster startup nodes (or use a `redis+cluster://` URL); `redis` (options) then applies to each node connection. @default undefined */
  cluster?: ClusterNode[]
  /**
   * In a Cluster, fan publications out with sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7): a
   * channel's traffic stays on its shard. false: classic PUBLISH, which the cluster bus copies to
   * every node. Ignored outside a Cluster.
   * @default true
   */
  shardedPubSub?: boolean
  /**
   * For channels with `durability: 'replicated'`: how long a publish waits (Redis WAIT) for a
   * replica to acknowledge it before failing with a temporary engine_unavailable error, in ms.
   * Must be below `commandTimeoutMs`.
   * @default 1000, or half of `commandTimeoutMs` when that is below 2000
   */
  replicaWaitMs?: number
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

export interface Resolved {
  url: string | undefined
  redis: RedisOptions | Redis | Cluster | undefined
  cluster: ClusterNode[] | undefined
  shardedPubSub: boolean
  replicaWaitMs: number
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
  shardedPubSub: true,
  replicaWaitMs: 1000,
} as const

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  const stack = err instanceof Error ? err.stack : undefined
  process.emitWarning(`holdfast redis engine: ${message}`, { code: 'HOLDFAST_ENGINE_HANDLER', ...(stack === undefined ? {} : { detail: stack }) })
}

const checks = optionChecks('holdfast')

export function resolveOptions(o: RedisEngineOptions): Resolved {
  const { positiveInt: positive, fn } = checks
  const prefix = o.prefix ?? DEFAULTS.prefix
  // A brace in the prefix would move the hash tag, and one channel's keys could land in several slots.
  if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new TypeError(`holdfast: option "prefix" must be a non-empty string without braces, got ${String(prefix)}`)
  }
  if (o.url !== undefined) {
    if (typeof o.url !== 'string') throw new TypeError('holdfast: option "url" must be a string')
    // Names what is wrong with it (scheme, hosts, master name).
    parseRedisUrl(o.url)
  }
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
  const commandTimeoutMs = positive('commandTimeoutMs', o.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs)
  const replicaWaitMs = positive('replicaWaitMs', o.replicaWaitMs ?? Math.max(1, Math.min(DEFAULTS.replicaWaitMs, Math.floor(commandTimeoutMs / 2))))
  if (replicaWaitMs >= commandTimeoutMs) throw new TypeError('holdfast: option "replicaWaitMs" must be below "commandTimeoutMs"')
  return {
    url: o.url,
    redis: o.redis,
    cluster: o.cluster,
    shardedPubSub: checks.bool('shardedPubSub', o.shardedPubSub ?? DEFAULTS.shardedPubSub),
    replicaWaitMs,
    prefix,
    commandTimeoutMs,
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

