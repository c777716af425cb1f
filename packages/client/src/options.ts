import type { Codec } from '@holdfast/protocol'
import { optionChecks } from '@holdfast/protocol/internal'
import type { EndpointSource } from './endpoints.js'
import type { ClientStorage } from './storage.js'

/**
 * The minimal WebSocket surface the client uses. Both the browser's `WebSocket` and the `ws`
 * package's class fit it, so Node users pass `ws` and nothing Node-specific leaks into this package.
 * Handlers are typed `(ev: never) => unknown` so that either implementation's own event types are
 * accepted; the client reads only `data`, `code` and `reason` from them.
 */
export interface WebSocketLike {
  readonly readyState: number
  /** The negotiated subprotocol ('' when none). */
  readonly protocol: string
  binaryType: string
  onopen: ((ev: never) => unknown) | null
  onmessage: ((ev: never) => unknown) | null
  onclose: ((ev: never) => unknown) | null
  onerror: ((ev: never) => unknown) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

export interface ClientOptions {
  /** Connection token (a JWT from your backend). @default undefined (anonymous, or `getToken()` is asked) */
  token?: string
  /**
   * Gets a fresh connection token: called before the first connect when `token` is absent, shortly
   * before the token expires, and after the server closes with an unauthorized / token-expired code.
   * @default undefined (no refresh: an unauthorized close stops the client)
   */
  getToken?: () => string | Promise<string>
  /**
   * Gets a channel token (a JWT with `sub`, `channel`, `exp` from your backend) for a channel the
   * rules alone would not let this user join: asked before each subscribe, and again before the
   * token expires (`sub_refresh`). Return undefined for channels that need none.
   * @default undefined (subscribe without tokens)
   */
  getSubscriptionToken?: (channel: string) => string | undefined | Promise<string | undefined>
  /** WebSocket constructor; in Node pass the `ws` package's `WebSocket`. @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor
  /**
   * Wire encoding, negotiated as a WebSocket subprotocol. `'msgpack'` loads the MessagePack codec
   * on first connect (a chunk of its own); a `Codec` object (e.g. `msgpackCodec` from
   * `@holdfast/protocol/msgpack`) is used as given. @default 'json'
   */
  protocol?: 'json' | 'msgpack' | Codec
  /** Client name sent with connect (shown in server logs). @default undefined */
  name?: string
  /** Application data sent with connect (given to the server's authenticate hook). @default undefined */
  data?: unknown
  /** Lower bound of the reconnect delay, in ms. @default 500 */
  minReconnectDelayMs?: number
  /** Upper bound of the reconnect delay, in ms. @default 20000 */
  maxReconnectDelayMs?: number
  /** Reconnect delay window after a "restart"/"going away" close (reconnect now, jittered), in ms. @default 1000 */
  restartJitterMs?: number
  /** Consecutive failed reconnect attempts before giving up (state `closed`). @default Infinity */
  maxReconnectAttempts?: number
  /** A connection that stays up this long resets the backoff attempt counter, in ms. @default 5000 */
  stableAfterMs?: number
  /** Extra silence allowed beyond the server's ping interval before the connection is presumed dead, in ms. @default 10000 */
  maxServerPingDelayMs?: number
  /**
   * Deadline of the health check (a ping) the client runs when the page comes back (visible again,
   * resumed after a freeze, back online) or when its own timers ran late, in ms. No reply: the
   * connection is dropped and a new one made. @default 5000
   */
  healthCheckTimeoutMs?: number
  /** Time allowed for the socket to open and the connect reply to arrive, in ms. @default 10000 */
  connectTimeoutMs?: number
  /** Overall deadline of publish/rpc/presence/history calls (queued time included), in ms; per-call override. @default 30000 */
  commandTimeoutMs?: number
  /** Most commands waiting for an ack (queued offline or in flight); beyond it a call rejects with `queue_full`. @default 1000 */
  maxQueuedCommands?: number
  /** Most encoded bytes of commands waiting for an ack; beyond it a call rejects with `queue_full`. @default 1048576 */
  maxQueuedBytes?: number
  /** Most messages batched into one outgoing frame (the server's `maxBatch` must allow it). @default 100 */
  maxBatch?: number
  /**
   * Where unacknowledged publish/rpc commands and subscription positions are kept, so that they
   * survive a reload or a restart (`indexedDbStorage(name)`, `fileStorage(dir)`, or your own).
   * @default undefined (memory only)
   */
  storage?: ClientStorage
  /**
   * When WebSocket attempts fail twice in a row (an upgrade refused or cut by a proxy), connect
   * over HTTP streaming to the same node instead, with the same protocol (`<url>/stream`), and
   * go back to WebSocket as soon as a probe gets through. @default true
   */
  httpFallback?: boolean
  /** While on the HTTP fallback, the pause between WebSocket probes after a first one at 1 s (doubling up to 10 min), in ms. @default 60000 */
  webSocketRetryMs?: number
  /**
   * With a discovery function (or a discovery answer without `ttl`): how long a resolved list is
   * used before it is resolved again, in ms. @default 30000
   */
  discoveryTtlMs?: number
  /**
   * How long the server remembers a message id (its `idempotencyTtlMs`). A stored command that was
   * sent longer ago than this is not sent again after a reload: the server could no longer tell it
   * is a repeat. It is reported in the `queue` event as `unknown_outcome` instead. @default 300000
   */
  idempotencyWindowMs?: number
}

export const DEFAULTS = {
  protocol: 'json',
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 20_000,
  restartJitterMs: 1000,
  maxReconnectAttempts: Infinity,
  stableAfterMs: 5000,
  maxServerPingDelayMs: 10_000,
  healthCheckTimeoutMs: 5000,
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 30_000,
  maxQueuedCommands: 1000,
  maxQueuedBytes: 1_048_576,
  maxBatch: 100,
  idempotencyWindowMs: 300_000,
  discoveryTtlMs: 30_000,
  httpFallback: true,
  webSocketRetryMs: 60_000,
} as const

export interface ResolvedOptions {
  urls: readonly string[]
  discovery: string | (() => readonly string[] | Promise<readonly string[]>) | undefined
  discoveryTtlMs: number
  httpFallback: boolean
  webSocketRetryMs: number
  token: string | undefined
  getToken: (() => string | Promise<string>) | undefined
  getSubscriptionToken: ClientOptions['getSubscriptionToken']
  WebSocket: WebSocketConstructor
  protocol: 'json' | 'msgpack' | Codec
  name: string | undefined
  data: unknown
  minReconnectDelayMs: number
  maxReconnectDelayMs: number
  restartJitterMs: number
  maxReconnectAttempts: number
  stableAfterMs: number
  maxServerPingDelayMs: number
  healthCheckTimeoutMs: number
  connectTimeoutMs: number
  commandTimeoutMs: number
  maxQueuedCommands: number
  maxQueuedBytes: number
  maxBatch: number
  storage: ClientStorage | undefined
  idempotencyWindowMs: number
}

// Shared wording with the server's options: `holdfast client: option "x" must be ...`.
const { bad, bool, fn, positiveInt, nonNegativeNumber } = optionChecks('holdfast client')
const string = (name: string, v: unknown): string => {
  if (typeof v !== 'string') throw bad(name, 'a string', v)
  return v
}

/** A fixed list of ws:// URLs, or a discovery source (an http(s):// URL of `GET /discovery`, or a function). */
function endpointSource(source: unknown): { urls: string[]; discovery: string | (() => readonly string[] | Promise<readonly string[]>) | undefined } {
  if (typeof source === 'function') return { urls: [], discovery: source as () => readonly string[] | Promise<readonly string[]> }
  if (typeof source === 'string' && /^https?:\/\/./i.test(source)) return { urls: [], discovery: source }
  const list = typeof source === 'string' ? [source] : source
  const what = 'a ws:// or wss:// URL, a non-empty array of them, an http(s):// discovery URL or a function returning URLs'
  if (!Array.isArray(list) || list.length === 0) throw bad('url', what, source)
  const urls = list.map((u: unknown) => {
    if (typeof u !== 'string' || !/^wss?:\/\/./i.test(u)) throw bad('url', 'a ws:// or wss:// URL', u)
    return u
  })
  return { urls, discovery: undefined }
}

function isCodec(v: unknown): v is Codec {
  const c = v as Partial<Record<keyof Codec, unknown>> | null
  return typeof c === 'object' && c !== null && typeof c.subprotocol === 'string' && typeof c.encode === 'function' && typeof c.frame === 'function' && typeof c.decodeServer === 'function'
}

function storageOption(storage: unknown): ClientStorage | undefined {
  if (storage === undefined) return undefined
  const s = storage as Partial<Record<keyof ClientStorage, unknown>> | null
  if (typeof s !== 'object' || s === null || (['get', 'set', 'delete', 'keys'] as const).some((m) => typeof s[m] !== 'function')) {
    throw bad('storage', 'an object with get, set, delete and keys methods', storage)
  }
  return storage as ClientStorage
}

/** The plain options: one check each, on the value given or else its default (none: stays undefined). */
const CHECKS = {
  token: string,
  getToken: fn,
  getSubscriptionToken: fn,
  name: string,
  httpFallback: bool,
  minReconnectDelayMs: nonNegativeNumber,
  maxReconnectDelayMs: nonNegativeNumber,
  restartJitterMs: nonNegativeNumber,
  stableAfterMs: nonNegativeNumber,
  maxServerPingDelayMs: nonNegativeNumber,
  discoveryTtlMs: positiveInt,
  webSocketRetryMs: positiveInt,
  healthCheckTimeoutMs: positiveInt,
  connectTimeoutMs: positiveInt,
  commandTimeoutMs: positiveInt,
  maxQueuedCommands: positiveInt,
  maxQueuedBytes: positiveInt,
  maxBatch: positiveInt,
  idempotencyWindowMs: positiveInt,
} satisfies { [K in keyof ClientOptions]?: (name: string, v: unknown) => unknown }

/** Merge options with DEFAULTS and validate them once; a bad option throws a TypeError naming it. */
export function resolveOptions(urlOrUrls: EndpointSource, options: ClientOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('holdfast client: options must be an object')
  const { urls, discovery } = endpointSource(urlOrUrls)
  const ctor: unknown = options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket
  if (typeof ctor !== 'function') {
    throw bad('WebSocket', 'a WebSocket constructor (no globalThis.WebSocket here: in Node pass the `ws` package)', ctor)
  }
  const plain: Record<string, unknown> = {}
  for (const [name, check] of Object.entries(CHECKS)) {
    const v = options[name as keyof typeof CHECKS] ?? DEFAULTS[name as keyof typeof DEFAULTS]
    plain[name] = v === undefined ? undefined : check(name, v)
  }
  const resolved = plain as Pick<ResolvedOptions, keyof typeof CHECKS>
  if (resolved.maxReconnectDelayMs < resolved.minReconnectDelayMs) {
    throw bad('maxReconnectDelayMs', `>= minReconnectDelayMs (${resolved.minReconnectDelayMs})`, resolved.maxReconnectDelayMs)
  }
  const protocol = options.protocol ?? DEFAULTS.protocol
  if (protocol !== 'json' && protocol !== 'msgpack' && !isCodec(protocol)) throw bad('protocol', '"json", "msgpack" or a Codec', protocol)
  const maxReconnectAttempts = options.maxReconnectAttempts ?? DEFAULTS.maxReconnectAttempts
  if (typeof maxReconnectAttempts !== 'number' || maxReconnectAttempts < 0 || !(Number.isSafeInteger(maxReconnectAttempts) || maxReconnectAttempts === Infinity)) {
    throw bad('maxReconnectAttempts', 'a non-negative integer or Infinity', maxReconnectAttempts)
  }
  return {
    ...resolved,
    urls,
    discovery,
    WebSocket: ctor as WebSocketConstructor,
    protocol,
    data: options.data,
    maxReconnectAttempts,
    storage: storageOption(options.storage),
  }
}
