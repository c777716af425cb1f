import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { ClusterFeed, type ClusterTopology } from './redis-cluster-feed.js'
import { RedisConfigError } from './redis-errors.js'
import { SubscriberFeed, type Feed, type FeedEvents, type SubscriberConnection } from './redis-feed.js'
import type { RedisConnection } from './redis-link.js'
import { endpointName, parseRedisUrl, redact, type RedisEndpoint, type RedisTopology } from './redis-url.js'

/**
 * Which Redis the engine talks to, and the ioredis clients it opens for it: a command connection,
 * the live feed (one subscriber, or one per Cluster shard), and on demand a connection for
 * replicated publishes (their WAIT blocks the connection it runs on, so it gets its own).
 */

export interface ConnectSettings {
  url: string | undefined
  redis: RedisOptions | Redis | Cluster | undefined
  cluster: ClusterNode[] | undefined
  shardedPubSub: boolean
  commandTimeoutMs: number
  startTimeoutMs: number
  reconnectDelay: (attempt: number) => number
}

export type TopologyKind = RedisTopology['kind']

export interface Connections {
  kind: TopologyKind
  /** The address(es) for log lines, without passwords. */
  describe: string
  cmd: RedisConnection
  feed(events: FeedEvents): Feed
  /** A new connection of the same kind for replicated publishes; lazy (call `connect()`). */
  durable(): RedisConnection
  /** Refuse a configuration that cannot work, before connecting for real (see `checkConfig`). */
  check(): Promise<void>
}

type ConnOptions = Omit<RedisOptions, 'replyMapping'> & { replyMapping?: 'legacy' }

/** Settings without which a dead Redis would make calls wait: the engine always applies them. */
function failFast(s: ConnectSettings): ConnOptions {
  return {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    // A command resent after a reconnect may have run already; its caller has been told it failed.
    autoResendUnfulfilledCommands: false,
    // The engine resubscribes itself, so that it knows when the feed is whole again.
    autoResubscribe: false,
    commandTimeout: s.commandTimeoutMs,
    // The scripts' replies are parsed as RESP2 arrays; a user's RESP3 setting must not change them.
    protocol: 2,
    replyMapping: 'legacy',
    // What a demoted primary answers after a failover: reconnect, to find the new primary.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
  }
}

/** The topology the options name: an explicit cluster, a Cluster client, a URL, or ioredis options. */
export function topologyOf(s: ConnectSettings): RedisTopology {
  if (s.redis instanceof Cluster || s.cluster !== undefined) {
    const template = s.redis instanceof Cluster ? (s.redis as unknown as { startupNodes: ClusterNode[] }).startupNodes : []
    const nodes = (s.cluster ?? template).map(toEndpoint)
    return { kind: 'cluster', nodes, tls: false }
  }
  if (s.url !== undefined) return parseRedisUrl(s.url)
  const user = s.redis instanceof Redis ? s.redis.options : (s.redis ?? {})
  if (user.sentinels !== undefined && user.sentinels !== null && user.sentinels.length > 0) {
    return {
      kind: 'sentinel',
      sentinels: user.sentinels.map((e) => ({ host: e.host ?? '127.0.0.1', port: e.port ?? 26379 })),
      name: user.name ?? '',
      db: user.db ?? 0,
      tls: false,
    }
  }
  return { kind: 'single', url: `redis://${user.host ?? '127.0.0.1'}:${user.port ?? 6379}`, tls: false }
}

function toEndpoint(n: ClusterNode): RedisEndpoint {
  if (typeof n === 'number') return { host: '127.0.0.1', port: n }
  if (typeof n === 'string') {
    const m = /^(?:redis:\/\/)?(.*?)(?::(\d+))?$/.exec(n)
    return { host: m?.[1] || '127.0.0.1', port: Number(m?.[2] ?? 6379) }
  }
  return { host: n.host ?? '127.0.0.1', port: n.port ?? 6379 }
}

function auth(t: RedisTopology): ConnOptions {
  return {
    ...(t.username === undefined ? {} : { username: t.username }),
    ...(t.password === undefined ? {} : { password: t.password }),
    ...(t.tls ? { tls: {} } : {}),
  }
}

export function connections(s: ConnectSettings): Connections {
  const topology = topologyOf(s)
  const retryStrategy = s.reconnectDelay
  const ours: ConnOptions = { ...failFast(s), enableOfflineQueue: false, retryStrategy }
  // A client given as a template is duplicated; plain options apply under ours.
  const user: ConnOptions = (() => {
    const u = s.redis instanceof Redis || s.redis instanceof Cluster ? {} : (s.redis ?? {})
    const { replyMapping: _mapping, ...rest } = u as RedisOptions
    return rest
  })()

  if (topology.kind === 'cluster') {
    // What a Cluster decides itself (addresses, retries, queueing) is not a per-node option.
    const { port: _port, host: _host, path: _path, sentinels: _sentinels, retryStrategy: _retry, enableOfflineQueue: _queue, readOnly: _readOnly, ...rest } = user
    const nodeOptions: ConnOptions = { connectTimeout: s.commandTimeoutMs, ...rest, ...auth(topology), ...failFast(s) }
    const clusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: retryStrategy,
      // A failover inside the cluster is only learnt from the slot table: read it often.
      slotsRefreshInterval: 1000,
      redisOptions: nodeOptions,
    } as ClusterOptions & { redisOptions: ConnOptions }
    const seeds = topology.nodes.map((n) => ({ host: n.host, port: n.port }))
    const make = (): Cluster => (s.redis instanceof Cluster ? s.redis.duplicate(undefined, clusterOptions) : new Cluster(seeds, clusterOptions))
    const cmd = make()
    return {
      kind: 'cluster',
      describe: `cluster ${topology.nodes.map(endpointName).join(',')}`,
      cmd: cmd as unknown as RedisConnection,
      feed: (events) =>
        new ClusterFeed(cmd as unknown as ClusterTopology, {
          sharded: s.shardedPubSub,
          closeBoundMs: s.commandTimeoutMs,
          events,
          seeds: topology.nodes.map(endpointName),
          connect: (nodeKey) => {
            const at = nodeKey.lastIndexOf(':')
            return new Redis({ ...nodeOptions, ...ours, host: nodeKey.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(nodeKey.slice(at + 1)) }) as unknown as SubscriberConnection
          },
        }),
      durable: () => make() as unknown as RedisConnection,
      check: () => checkCluster(topology.nodes, nodeOptions, s),
    }
  }

  if (topology.kind === 'sentinel') {
    const options: ConnOptions = {
      connectTimeout: s.commandTimeoutMs,
      ...user,
      ...auth(topology),
      sentinels: topology.sentinels.map((e) => ({ host: e.host, port: e.port })),
      name: topology.name,
      db: topology.db,
      role: 'master',
      ...(topology.sentinelPassword === undefined ? {} : { sentinelPassword: topology.sentinelPassword }),
      ...(topology.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // No failoverDetector: its Sentinel connections have no error listener, so ioredis would print
      // every failed reconnect of theirs. A demoted primary that stays up answers writes with
      // READONLY, which reconnects the command connection, and the engine then moves the feed.
      sentinelRetryStrategy: retryStrategy,
      sentinelCommandTimeout: s.commandTimeoutMs,
      ...ours,
    }
    const make = (): Redis => (s.redis instanceof Redis ? s.redis.duplicate(options) : new Redis(options))
    return {
      kind: 'sentinel',
      describe: `sentinel ${topology.sentinels.map(endpointName).join(',')} master ${topology.name}`,
      cmd: make() as unknown as RedisConnection,
      feed: (events) => new SubscriberFeed(make() as unknown as SubscriberConnection, 'subscribe', events, s.commandTimeoutMs),
      durable: () => make() as unknown as RedisConnection,
      check: () => checkSentinels(topology.sentinels, topology.name, { ...user, ...auth(topology) }, topology.sentinelPassword, s),
    }
  }

  const options: ConnOptions = { connectTimeout: s.commandTimeoutMs, ...user, ...ours }
  const make = (): Redis => {
    if (s.redis instanceof Redis) return s.redis.duplicate(ours)
    return s.url === undefined ? new Redis(options) : new Redis(s.url, options)
  }
  return {
    kind: 'single',
    describe: s.url === undefined ? topology.url : redact(s.url),
    cmd: make() as unknown as RedisConnection,
    feed: (events) => new SubscriberFeed(make() as unknown as SubscriberConnection, 'subscribe', events, s.commandTimeoutMs),
    durable: () => make() as unknown as RedisConnection,
    check: () => checkSingle(make, s),
  }
}

// ------------------------------------------------------------------ configuration checks at start

/** One throwaway connection, one command; never retries. Resolves with the reply or rejects. */
async function ask<T>(client: Redis, run: (c: Redis) => Promise<T>): Promise<T> {
  client.on('error', () => {})
  try {
    await client.connect()
    return await run(client)
  } finally {
    client.disconnect()
  }
}

function probeOptions(s: ConnectSettings, extra: ConnOptions): ConnOptions {
  const { sentinels: _sentinels, ...rest } = extra
  return {
    ...rest,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    connectTimeout: Math.min(s.startTimeoutMs, 2000),
    commandTimeout: Math.min(s.startTimeoutMs, 2000),
    protocol: 2,
    replyMapping: 'legacy',
  }
}

function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1]
}

/**
 * A single server that turns out to be a Cluster node or a Sentinel is a configuration error; a
 * server that does not answer is not (the node serves not-ready and keeps trying).
 */
async function checkSingle(make: () => Redis, s: ConnectSettings): Promise<void> {
  const client = make()
  const where = `${client.options.host ?? '127.0.0.1'}:${client.options.port ?? 6379}`
  let info: string
  try {
    info = await ask(new Redis(probeOptions(s, client.options as ConnOptions)), (c) => c.info())
  } catch {
    return
  } finally {
    client.disconnect()
  }
  if (field(info, 'redis_mode') === 'sentinel') {
    throw new RedisConfigError(`holdfast: redis ${where} is a Sentinel, not a Redis server: use redis+sentinel://${where}/<master-name>`)
  }
  if (field(info, 'cluster_enabled') === '1') {
    throw new RedisConfigError(`holdfast: redis ${where} is a Redis Cluster node: use redis+cluster://${where} (one server URL cannot reach the other shards)`)
  }
}

/**
 * Every startup node that answers must be a cluster node. None answering is not a configuration
 * error (the node serves not-ready and keeps trying).
 */
async function checkCluster(nodes: RedisEndpoint[], nodeOptions: ConnOptions, s: ConnectSettings): Promise<void> {
  for (const n of nodes) {
    let info: string
    try {
      info = await ask(new Redis(probeOptions(s, { ...nodeOptions, host: n.host, port: n.port })), (c) => c.info('cluster'))
    } catch {
      continue
    }
    if (field(info, 'cluster_enabled') !== '1') {
      throw new RedisConfigError(`holdfast: redis ${endpointName(n)} is not a Redis Cluster node (cluster support is disabled): use redis://${endpointName(n)} for one server`)
    }
    return
  }
}

/**
 * The Sentinels must answer, and know the master by its name. Without them the engine could never
 * find a primary, so at startup this is a configuration error; later, Sentinels that go away only
 * make the node not ready until they are back.
 */
async function checkSentinels(sentinels: RedisEndpoint[], name: string, user: ConnOptions, sentinelPassword: string | undefined, s: ConnectSettings): Promise<void> {
  const unknownAt: string[] = []
  const notSentinel: string[] = []
  let lastError = ''
  for (const e of sentinels) {
    const options = probeOptions(s, {
      host: e.host,
      port: e.port,
      ...(sentinelPassword === undefined ? {} : { password: sentinelPassword }),
      ...(user.tls === undefined ? {} : { tls: user.tls }),
    })
    let reply: unknown
    try {
      reply = await ask(new Redis(options), (c) => c.call('sentinel', 'get-master-addr-by-name', name))
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      if (/unknown command|unknown subcommand/i.test(message)) notSentinel.push(endpointName(e))
      else lastError = `${endpointName(e)}: ${message}`
      continue
    }
    if (Array.isArray(reply) && reply.length === 2) return
    unknownAt.push(endpointName(e))
  }
  if (unknownAt.length > 0) {
    throw new RedisConfigError(`holdfast: the Sentinels at ${unknownAt.join(', ')} know no master named "${name}" (check the name at the end of the redis+sentinel:// URL)`)
  }
  if (notSentinel.length > 0) {
    throw new RedisConfigError(`holdfast: ${notSentinel.join(', ')} ${notSentinel.length === 1 ? 'is not a Sentinel' : 'are not Sentinels'} (SENTINEL is an unknown command there)`)
  }
  throw new RedisConfigError(`holdfast: no Sentinel answered at ${sentinels.map(endpointName).join(', ')}${lastError === '' ? '' : ` (last error: ${lastError})`}`)
}
