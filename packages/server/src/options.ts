import { randomBytes } from 'node:crypto'
import { optionChecks } from '@holdfast/protocol/internal'
import { hostname } from 'node:os'
import type { Tracer } from '@opentelemetry/api'
import type { Logger } from 'pino'
import type { AuthenticateHook, JwtAuthOptions } from './auth/types.js'
import { NAMESPACE_RE } from './channel-name.js'
import { resolveTrustProxy, type TrustedProxies } from './client-address.js'
import type { Durability, Engine } from './engine/engine.js'
import { resolveChannelSchemas, type ChannelSchemas } from './schema.js'
import type { ProxyOptions, WebhookOptions } from './backend/options.js'

/** Per-namespace channel behaviour. A channel `chat:lobby` takes the options of namespace `chat`. */
export interface ChannelOptions {
  /** Publications kept per channel for recovery and history. @default 1000 */
  historySize?: number
  /** How long a publication stays in history, in ms. @default 300000 */
  historyTtlMs?: number
  /** How long a stream's offset and epoch survive without publishes, in ms; then a new epoch starts. @default 86400000 */
  streamTtlMs?: number
  /** Most publications replayed by one recovery; more missed means `recovered: false`. @default historySize */
  maxRecoverPublications?: number
  /** Clients may publish to the channel. @default true */
  allowPublish?: boolean
  /** Clients may subscribe. @default true */
  allowSubscribe?: boolean
  /** Clients may read history. @default true */
  allowHistory?: boolean
  /** Keep presence for subscribers. @default false */
  presence?: boolean
  /** Push join/leave to subscribers (needs `presence`). @default false */
  joinLeave?: boolean
  /** Clients may ask for presence and presence stats. @default true */
  allowPresence?: boolean
  /**
   * `replicated`: with an engine that has replicas (Redis with Sentinel or Cluster), a publication is
   * acknowledged and fanned out only after a replica has it, so a failover cannot take it back;
   * publishes fail with a temporary error when no replica confirms in time. Needs historySize >= 1.
   * @default 'none'
   */
  durability?: Durability
}

export type ResolvedChannelOptions = Required<ChannelOptions>

export interface CommandRate {
  /** Tokens added per second. */
  perSecond: number
  /** Bucket size: the largest burst allowed. */
  burst: number
}

export interface ConnectionInfo {
  /** Connection id. */
  client: string
  user: string
  session: string
  /** Remote address. */
  ip: string
  /** Connection-token `info` claim (or what `authenticate` returned). */
  info?: unknown
}

export interface ChannelHookContext {
  client: ConnectionInfo
  channel: string
}

/** The read commands a `canRead` hook is asked about. */
export type ReadKind = 'history' | 'presence' | 'presence_stats'

export interface ReadHookContext extends ChannelHookContext {
  /** Which read the client asked for. */
  read: ReadKind
}

export interface PublishHookContext extends ChannelHookContext {
  data: unknown
}

/** What `onConnect` hears: the connection, and whether it resumed an earlier session. */
export interface ConnectInfo extends ConnectionInfo {
  resumed: boolean
}

/** What `onDisconnect` hears: the connection and why it closed. */
export interface DisconnectInfo extends ConnectionInfo {
  /** The close code (4xxx from the close code table, or a WebSocket code such as 1000 or 1006). */
  code: number
  /** Its name in the close code table (`slow_consumer`, `kicked`...); `no_status` for 1005, `other` outside the table. */
  codeName: string
  /** The close reason text. */
  reason: string
}

export interface HoldfastOptions {
  /** Where streams, presence and idempotency ids live. @default a new MemoryEngine */
  engine?: Engine
  /** This node's id, shown to clients and in logs. @default `${hostname}-${pid}-${random}` */
  nodeId?: string
  /** The ws:// or wss:// URL clients reach this node at, advertised by `GET /discovery`. @default undefined (not advertised) */
  publicUrl?: string
  /** JWT verification of connection tokens (jose). */
  jwt?: JwtAuthOptions
  /** Custom authentication; runs instead of JWT verification when given. */
  authenticate?: AuthenticateHook
  /**
   * Key and rules for channel tokens (JWT with `sub`, `channel`, `exp`, optional `info`) that let a
   * client subscribe where the rules alone would refuse; `exp` is always required.
   * @default the `jwt` options (none: channel tokens are refused)
   */
  channelTokens?: JwtAuthOptions
  /** Accept clients without a token when no `jwt` or `authenticate` is configured. @default true */
  allowAnonymous?: boolean
  /** Allowed `Origin` header values (exact, or `*.example.com`); empty allows any. Requests without Origin are allowed. @default [] */
  allowedOrigins?: string[]
  /** Application ping period, in ms. @default 25000 */
  pingIntervalMs?: number
  /** Time allowed for a pong after a ping, in ms. @default 10000 */
  pongTimeoutMs?: number
  /** Time allowed between the WebSocket upgrade and the connect command, in ms. @default 10000 */
  connectTimeoutMs?: number
  /** Largest `data` of a publish or RPC, in bytes (encoded). @default 65536 */
  maxPayload?: number
  /** Most messages in one inbound frame. @default 100 */
  maxBatch?: number
  /** Most subscriptions per connection. @default 128 */
  maxSubscriptionsPerConnection?: number
  /** Per-connection command rate (token bucket). @default { perSecond: 100, burst: 200 } */
  commandRate?: CommandRate
  /**
   * Per-connection rate of inbound bytes (token bucket over client frames, publish data included);
   * a frame past it is refused whole with `rate_limited`. `burst` must hold the largest frame
   * (maxPayload plus 16 KiB of envelope). @default { perSecond: 262144, burst: 1048576 }
   */
  inboundByteRate?: CommandRate
  /** Most connections on this node; beyond it the upgrade gets 503. @default 100000 */
  maxConnections?: number
  /** Most concurrent connections from one IP; beyond it the upgrade gets 429. @default 1000 */
  maxConnectionsPerIp?: number
  /** New connections per second from one IP (token bucket); beyond it the upgrade gets 429. @default { perSecond: 100, burst: 200 } */
  connectRatePerIp?: CommandRate
  /**
   * Proxies whose `X-Forwarded-For` / `X-Real-IP` (and PROXY protocol headers) name the client:
   * CIDRs or addresses, or `loopback` / `linklocal` / `uniquelocal`; a list or one comma-separated
   * string. The per-IP limits, logs and hooks then use the client's address. See docs/deploy.md.
   * @default undefined (no proxy trusted: a client is its socket's address)
   */
  trustProxy?: string | readonly string[]
  /** Bytes allowed in a connection's send queue (pending writes); beyond it the slow consumer is closed. @default 1048576 */
  maxQueueBytes?: number
  /**
   * Most bytes of publications in one history page or recovery page (at least one publication): a
   * longer history is read in pages, a longer recovery continues in `pub` pushes as the client
   * reads. A read is refused (`rate_limited`) while this much of earlier replies is still buffered.
   * @default 1048576
   */
  maxReplyBytes?: number
  /** How long publish/RPC message ids are remembered for deduplication, in ms. @default 300000 */
  idempotencyTtlMs?: number
  /**
   * Most message ids (publishes and RPCs) one user may have remembered on this node within
   * `idempotencyTtlMs` (anonymous clients: per session); past it a command gets `limit_exceeded`
   * (temporary). Bounds what one user makes the engine hold. @default 30000 (100 per second sustained)
   */
  maxMessageIdsPerUser?: number
  /** Presence entries expire this long after their last refresh, in ms. @default 60000 */
  presenceTtlMs?: number
  /** Secret for signing session resume tokens; share it between nodes so sessions resume anywhere. @default random per process */
  sessionSecret?: string
  /**
   * How long a session resume token stays valid after it was issued, in ms. Every connect issues
   * a fresh one, so a client that reconnects within this time keeps its session. @default 86400000
   */
  sessionMaxAgeMs?: number
  /** Default drain window for `close()`, in ms. @default 10000 */
  drainMs?: number
  /** Enable permessage-deflate (off by default: it fragments memory badly in Node). @default false */
  compression?: boolean
  /**
   * What carries the WebSockets: `ws` (attaches to a node:http server) or `uws` (uWebSockets.js,
   * which owns its listening socket: use `listen()`; loaded only when chosen). See docs/transports.md.
   * @default 'ws'
   */
  transport?: TransportName
  /** Channel options: `default` for channels without a namespace, `namespaces` by name. */
  channels?: { default?: ChannelOptions; namespaces?: Record<string, ChannelOptions> }
  /**
   * Schemas of client publications by namespace (`{ chat: schema }` checks `chat:*`), any Standard
   * Schema (zod, valibot, arktype...); data that fails gets `bad_request`. @default {} (none)
   */
  channelSchemas?: ChannelSchemas
  /** Authorize a subscription (after the built-in checks). Return false or throw a HoldfastError to refuse. */
  canSubscribe?: (ctx: ChannelHookContext) => boolean | Promise<boolean>
  /**
   * Authorize a read (history, presence, presence stats) of a channel the connection is not
   * subscribed to, after the same built-in checks as subscribe. Return false or throw a
   * HoldfastError to refuse. @default `canSubscribe` (a read shows what a subscription would)
   */
  canRead?: (ctx: ReadHookContext) => boolean | Promise<boolean>
  /** Authorize a client publish (after the built-in checks). Return false or throw a HoldfastError to refuse. */
  canPublish?: (ctx: PublishHookContext) => boolean | Promise<boolean>
  /** pino logger; false for none. @default a pino logger at level info to stdout */
  logger?: Logger | false
  /** Called when a connection completed its connect handshake. Throws and rejections are logged, never fatal. */
  onConnect?: (info: ConnectInfo) => void | Promise<void>
  /** Called when a connected connection closed, with the close code and its name. */
  onDisconnect?: (info: DisconnectInfo) => void | Promise<void>
  /** Called when a subscription is established (by the client or by the server), after recovery. */
  onSubscribe?: (info: ConnectionInfo, channel: string) => void | Promise<void>
  /** Called after a client's publication is stored (not for duplicates, not for server-API publishes). */
  onPublish?: (info: ConnectionInfo, channel: string, data: unknown) => void | Promise<void>
  /** OpenTelemetry tracer (`@opentelemetry/api`): spans for connect, subscribe, publish and rpc. @default none */
  tracer?: Tracer
  /** Export Node process metrics (CPU, memory, event loop, GC) with the `holdfast_` prefix. @default true */
  processMetrics?: boolean
  /**
   * Proxy `connect`, `refresh`, `subscribe`, `publish` and `rpc` to an application backend over
   * HTTP (docs/proxy.md). A proxied connect replaces `authenticate`/`jwt`; a proxied subscribe or
   * publish runs after the built-in checks and `canSubscribe`/`canPublish`; a proxied rpc serves
   * methods without an `onRpc` handler. @default undefined (nothing proxied)
   */
  proxy?: ProxyOptions
  /** Post connection and channel events to the application, signed, at least once (docs/proxy.md). @default undefined */
  webhooks?: WebhookOptions
}

export const CHANNEL_DEFAULTS: ResolvedChannelOptions = {
  historySize: 1000,
  historyTtlMs: 300_000,
  streamTtlMs: 86_400_000,
  maxRecoverPublications: 1000,
  allowPublish: true,
  allowSubscribe: true,
  allowHistory: true,
  presence: false,
  joinLeave: false,
  allowPresence: true,
  durability: 'none',
}

export const DEFAULTS = {
  allowAnonymous: true,
  allowedOrigins: [] as string[],
  pingIntervalMs: 25_000,
  pongTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxPayload: 65_536,
  maxBatch: 100,
  maxSubscriptionsPerConnection: 128,
  commandRate: { perSecond: 100, burst: 200 },
  inboundByteRate: { perSecond: 262_144, burst: 1_048_576 },
  maxConnections: 100_000,
  maxConnectionsPerIp: 1000,
  connectRatePerIp: { perSecond: 100, burst: 200 },
  maxQueueBytes: 1_048_576,
  maxReplyBytes: 1_048_576,
  idempotencyTtlMs: 300_000,
  maxMessageIdsPerUser: 30_000,
  presenceTtlMs: 60_000,
  sessionMaxAgeMs: 86_400_000,
  drainMs: 10_000,
  compression: false,
  transport: 'ws',
  processMetrics: true,
} as const

export interface ResolvedOptions {
  engine: Engine | undefined
  nodeId: string
  publicUrl: string | undefined
  jwt: JwtAuthOptions | undefined
  authenticate: AuthenticateHook | undefined
  channelTokens: JwtAuthOptions | undefined
  allowAnonymous: boolean
  allowedOrigins: string[]
  pingIntervalMs: number
  pongTimeoutMs: number
  connectTimeoutMs: number
  maxPayload: number
  maxBatch: number
  maxSubscriptionsPerConnection: number
  commandRate: CommandRate
  inboundByteRate: CommandRate
  maxConnections: number
  maxConnectionsPerIp: number
  connectRatePerIp: CommandRate
  trustProxy: TrustedProxies | undefined
  maxQueueBytes: number
  maxReplyBytes: number
  idempotencyTtlMs: number
  maxMessageIdsPerUser: number
  presenceTtlMs: number
  sessionSecret: string
  sessionMaxAgeMs: number
  drainMs: number
  compression: boolean
  transport: TransportName
  defaultChannel: ResolvedChannelOptions
  namespaces: Map<string, ResolvedChannelOptions>
  channelSchemas: ChannelSchemas
  canSubscribe: HoldfastOptions['canSubscribe']
  canRead: HoldfastOptions['canRead']
  canPublish: HoldfastOptions['canPublish']
  logger: Logger | false | undefined
  onConnect: HoldfastOptions['onConnect']
  onDisconnect: HoldfastOptions['onDisconnect']
  onSubscribe: HoldfastOptions['onSubscribe']
  onPublish: HoldfastOptions['onPublish']
  tracer: Tracer | undefined
  processMetrics: boolean
  /** Checked and resolved by the gateway's backend (backend/options.ts). */
  proxy: ProxyOptions | undefined
  webhooks: WebhookOptions | undefined
}

/** Extra room for the command envelope around a `maxPayload` of data in one frame. */
export const FRAME_OVERHEAD = 16 * 1024

const checks = optionChecks('holdfast')

function positiveInt(name: string, v: unknown, allowZero = false): number {
  return allowZero ? checks.nonNegativeInt(name, v) : checks.positiveInt(name, v)
}

function rate(name: string, v: CommandRate): CommandRate {
  if (typeof v !== 'object' || v === null) throw new TypeError(`holdfast: option "${name}" must be { perSecond, burst }`)
  if (typeof v.perSecond !== 'number' || !(v.perSecond > 0)) throw new TypeError(`holdfast: option "${name}.perSecond" must be a positive number`)
  positiveInt(`${name}.burst`, v.burst)
  return { perSecond: v.perSecond, burst: v.burst }
}

const bool = checks.bool

function resolveChannel(name: string, base: ResolvedChannelOptions, o: ChannelOptions | undefined): ResolvedChannelOptions {
  if (o === undefined) return base
  if (typeof o !== 'object' || o === null) throw new TypeError(`holdfast: option "${name}" must be an object`)
  const historySize = positiveInt(`${name}.historySize`, o.historySize ?? base.historySize, true)
  const out: ResolvedChannelOptions = {
    historySize,
    historyTtlMs: positiveInt(`${name}.historyTtlMs`, o.historyTtlMs ?? base.historyTtlMs),
    streamTtlMs: positiveInt(`${name}.streamTtlMs`, o.streamTtlMs ?? base.streamTtlMs),
    maxRecoverPublications: positiveInt(
      `${name}.maxRecoverPublications`,
      o.maxRecoverPublications ?? (o.historySize !== undefined ? historySize : base.maxRecoverPublications),
      true,
    ),
    allowPublish: bool(`${name}.allowPublish`, o.allowPublish ?? base.allowPublish),
    allowSubscribe: bool(`${name}.allowSubscribe`, o.allowSubscribe ?? base.allowSubscribe),
    allowHistory: bool(`${name}.allowHistory`, o.allowHistory ?? base.allowHistory),
    presence: bool(`${name}.presence`, o.presence ?? base.presence),
    joinLeave: bool(`${name}.joinLeave`, o.joinLeave ?? base.joinLeave),
    allowPresence: bool(`${name}.allowPresence`, o.allowPresence ?? base.allowPresence),
    durability: o.durability ?? base.durability,
  }
  if (out.joinLeave && !out.presence) throw new TypeError(`holdfast: option "${name}.joinLeave" needs "${name}.presence"`)
  if (out.durability !== 'none' && out.durability !== 'replicated') throw new TypeError(`holdfast: option "${name}.durability" must be 'none' or 'replicated'`)
  if (out.durability === 'replicated' && out.historySize < 1) throw new TypeError(`holdfast: option "${name}.durability" 'replicated' needs "${name}.historySize" of at least 1`)
  return out
}

export const TRANSPORTS = ['ws', 'uws'] as const
export type TransportName = (typeof TRANSPORTS)[number]

function transportName(v: unknown): TransportName {
  if (!TRANSPORTS.includes(v as TransportName)) throw new TypeError(`holdfast: option "transport" must be one of ${TRANSPORTS.join(', ')}`)
  return v as TransportName
}

/** Merge options with DEFAULTS and validate them once; a bad option throws a TypeError naming it. */
export function resolveOptions(options: HoldfastOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('holdfast: options must be an object')
  const defaultChannel = resolveChannel('channels.default', CHANNEL_DEFAULTS, options.channels?.default)
  const namespaces = new Map<string, ResolvedChannelOptions>()
  for (const [ns, o] of Object.entries(options.channels?.namespaces ?? {})) {
    if (!NAMESPACE_RE.test(ns)) throw new TypeError(`holdfast: namespace name "${ns}" must match ${NAMESPACE_RE}`)
    namespaces.set(ns, resolveChannel(`channels.namespaces.${ns}`, defaultChannel, o))
  }
  const origins = options.allowedOrigins ?? DEFAULTS.allowedOrigins
  if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string')) {
    throw new TypeError('holdfast: option "allowedOrigins" must be an array of strings')
  }
  const maxPayload = positiveInt('maxPayload', options.maxPayload ?? DEFAULTS.maxPayload)
  const inboundByteRate = rate('inboundByteRate', options.inboundByteRate ?? DEFAULTS.inboundByteRate)
  if (inboundByteRate.burst < maxPayload + FRAME_OVERHEAD) {
    throw new TypeError(`holdfast: option "inboundByteRate.burst" must hold the largest frame (maxPayload + ${FRAME_OVERHEAD} = ${maxPayload + FRAME_OVERHEAD} bytes)`)
  }
  const pingIntervalMs = positiveInt('pingIntervalMs', options.pingIntervalMs ?? DEFAULTS.pingIntervalMs)
  const nodeId = options.nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  if (typeof nodeId !== 'string' || nodeId.length === 0) throw new TypeError('holdfast: option "nodeId" must be a non-empty string')
  if (options.publicUrl !== undefined && (typeof options.publicUrl !== 'string' || !/^wss?:\/\/[^/]/i.test(options.publicUrl))) throw checks.bad('publicUrl', 'a ws:// or wss:// URL', options.publicUrl)
  const sessionSecret = options.sessionSecret ?? randomBytes(32).toString('base64url')
  if (typeof sessionSecret !== 'string' || sessionSecret.length < 16) {
    throw new TypeError('holdfast: option "sessionSecret" must be a string of at least 16 characters')
  }
  for (const hook of ['authenticate', 'canSubscribe', 'canRead', 'canPublish', 'onConnect', 'onDisconnect', 'onSubscribe', 'onPublish'] as const) {
    if (options[hook] !== undefined) checks.fn(hook, options[hook])
  }
  if (options.tracer !== undefined && (typeof options.tracer !== 'object' || options.tracer === null || typeof options.tracer.startSpan !== 'function')) {
    throw new TypeError('holdfast: option "tracer" must be an OpenTelemetry Tracer (with startSpan)')
  }
  return {
    engine: options.engine,
    nodeId,
    publicUrl: options.publicUrl,
    jwt: options.jwt,
    authenticate: options.authenticate,
    channelTokens: options.channelTokens ?? options.jwt,
    allowAnonymous: bool('allowAnonymous', options.allowAnonymous ?? DEFAULTS.allowAnonymous),
    allowedOrigins: [...origins],
    pingIntervalMs,
    pongTimeoutMs: positiveInt('pongTimeoutMs', options.pongTimeoutMs ?? DEFAULTS.pongTimeoutMs),
    connectTimeoutMs: positiveInt('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs),
    maxPayload,
    maxBatch: positiveInt('maxBatch', options.maxBatch ?? DEFAULTS.maxBatch),
    maxSubscriptionsPerConnection: positiveInt(
      'maxSubscriptionsPerConnection',
      options.maxSubscriptionsPerConnection ?? DEFAULTS.maxSubscriptionsPerConnection,
    ),
    commandRate: rate('commandRate', options.commandRate ?? DEFAULTS.commandRate),
    inboundByteRate,
    maxConnections: positiveInt('maxConnections', options.maxConnections ?? DEFAULTS.maxConnections),
    maxConnectionsPerIp: positiveInt('maxConnectionsPerIp', options.maxConnectionsPerIp ?? DEFAULTS.maxConnectionsPerIp),
    connectRatePerIp: rate('connectRatePerIp', options.connectRatePerIp ?? DEFAULTS.connectRatePerIp),
    trustProxy: resolveTrustProxy(options.trustProxy),
    maxQueueBytes: positiveInt('maxQueueBytes', options.maxQueueBytes ?? DEFAULTS.maxQueueBytes),
    maxReplyBytes: positiveInt('maxReplyBytes', options.maxReplyBytes ?? DEFAULTS.maxReplyBytes),
    idempotencyTtlMs: positiveInt('idempotencyTtlMs', options.idempotencyTtlMs ?? DEFAULTS.idempotencyTtlMs),
    maxMessageIdsPerUser: positiveInt('maxMessageIdsPerUser', options.maxMessageIdsPerUser ?? DEFAULTS.maxMessageIdsPerUser),
    presenceTtlMs: positiveInt('presenceTtlMs', options.presenceTtlMs ?? DEFAULTS.presenceTtlMs),
    sessionSecret,
    sessionMaxAgeMs: positiveInt('sessionMaxAgeMs', options.sessionMaxAgeMs ?? DEFAULTS.sessionMaxAgeMs),
    drainMs: positiveInt('drainMs', options.drainMs ?? DEFAULTS.drainMs, true),
    compression: bool('compression', options.compression ?? DEFAULTS.compression),
    transport: transportName(options.transport ?? DEFAULTS.transport),
    defaultChannel,
    namespaces,
    channelSchemas: resolveChannelSchemas(options.channelSchemas),
    canSubscribe: options.canSubscribe,
    canRead: options.canRead,
    canPublish: options.canPublish,
    logger: options.logger,
    onConnect: options.onConnect,
    onDisconnect: options.onDisconnect,
    onSubscribe: options.onSubscribe,
    onPublish: options.onPublish,
    tracer: options.tracer,
    processMetrics: bool('processMetrics', options.processMetrics ?? DEFAULTS.processMetrics),
    proxy: options.proxy,
    webhooks: options.webhooks,
  }
}

/** Options of the namespace a channel belongs to (`chat` in `chat:lobby`), else the default channel options. */
export function channelOptionsOf(o: Pick<ResolvedOptions, 'namespaces' | 'defaultChannel'>, channel: string): ResolvedChannelOptions {
  const colon = channel.indexOf(':')
  if (colon > 0) {
    const ns = o.namespaces.get(channel.slice(0, colon))
    if (ns !== undefined) return ns
  }
  return o.defaultChannel
}
