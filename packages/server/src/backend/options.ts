import { optionChecks } from '@holdfast/protocol/internal'

/** The events the gateway can proxy to an application backend (`POST <url>/<event>`). */
export const PROXY_EVENTS = ['connect', 'refresh', 'subscribe', 'publish', 'rpc'] as const
export type ProxyEvent = (typeof PROXY_EVENTS)[number]

/** The webhook events posted to `webhooks.url` (docs/proxy.md). */
export const WEBHOOK_EVENTS = ['connected', 'disconnected', 'channel_occupied', 'channel_vacated', 'join', 'leave'] as const
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number]

/** One proxied event. */
export interface ProxyEventOptions {
  /** Where to POST it. @default `<proxy.url>/<event>` */
  url?: string
  /** Time allowed for the backend's answer, in ms. @default proxy.timeoutMs */
  timeoutMs?: number
  /**
   * Upgrade request headers forwarded in the body's `headers` (case-insensitive; `x-*` matches
   * every header starting with `x-`). @default proxy.headers
   */
  headers?: string[]
  /** `subscribe` and `publish` only: proxy just these namespaces (`""` is channels without one). @default every namespace */
  namespaces?: string[]
}

/** The backend proxy (docs/proxy.md). An event is proxied when it has a URL (its own or `url`). */
export interface ProxyOptions {
  /** Base URL: every event goes to `<url>/<event>`. @default undefined (only events with their own url) */
  url?: string
  /** Time allowed for a backend answer, in ms. @default 3000 */
  timeoutMs?: number
  /** Forwarded upgrade request headers. @default ['cookie', 'authorization', 'x-*'] */
  headers?: string[]
  /** Kept-alive connections per backend origin. @default 64 */
  maxConnections?: number
  /** Circuit breaker per backend origin. @default { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeoutMs: 2000, rollingWindowMs: 10000 } */
  breaker?: Partial<BreakerOptions>
  /** Per-event settings; `false` turns an event off even when `url` is set. */
  connect?: ProxyEventOptions | false
  refresh?: ProxyEventOptions | false
  subscribe?: ProxyEventOptions | false
  publish?: ProxyEventOptions | false
  rpc?: ProxyEventOptions | false
}

export interface BreakerOptions {
  /** Failed share of calls in the rolling window, in %, above which the breaker opens. */
  errorThresholdPercentage: number
  /** Calls in the window before the percentage counts. */
  volumeThreshold: number
  /** How long the breaker stays open before one call may probe, in ms. */
  resetTimeoutMs: number
  /** Rolling window of call statistics, in ms. */
  rollingWindowMs: number
}

/** Webhooks: events posted to the app, signed, at least once (docs/proxy.md). */
export interface WebhookOptions {
  /** Where events are POSTed. */
  url: string
  /** HMAC-SHA256 key for the `X-Holdfast-Signature` header. @default undefined (unsigned) */
  secret?: string
  /** Which events to send. @default every event */
  events?: WebhookEvent[]
  /** Events waiting for delivery; past it new events are dropped and counted. @default 10000 */
  maxQueue?: number
  /** Delivery attempts per event before it is dropped and counted. @default 8 */
  maxAttempts?: number
  /** Time allowed for one delivery, in ms. @default 5000 */
  timeoutMs?: number
  /** Backoff base and cap between attempts (full jitter), in ms. @default { baseMs: 200, maxMs: 30000 } */
  backoff?: { baseMs?: number; maxMs?: number }
  /** Deliveries in flight at once. @default 8 */
  concurrency?: number
}

export interface ResolvedProxyEvent {
  url: string
  /** `url` split once: the pool is per origin, the request names the path. */
  origin: string
  path: string
  timeoutMs: number
  /** Lower-case exact names, and prefixes (from `x-*`). */
  headers: { exact: ReadonlySet<string>; prefixes: readonly string[] }
  /** undefined: every namespace. */
  namespaces: ReadonlySet<string> | undefined
}

export interface ResolvedProxy {
  events: Partial<Record<ProxyEvent, ResolvedProxyEvent>>
  maxConnections: number
  breaker: BreakerOptions
}

export interface ResolvedWebhooks {
  url: string
  secret: string | undefined
  events: ReadonlySet<WebhookEvent>
  maxQueue: number
  maxAttempts: number
  timeoutMs: number
  baseMs: number
  maxMs: number
  concurrency: number
}

export const PROXY_DEFAULTS = {
  timeoutMs: 3000,
  headers: ['cookie', 'authorization', 'x-*'],
  maxConnections: 64,
  breaker: { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeoutMs: 2000, rollingWindowMs: 10_000 },
} as const

export const WEBHOOK_DEFAULTS = {
  maxQueue: 10_000,
  maxAttempts: 8,
  timeoutMs: 5000,
  baseMs: 200,
  maxMs: 30_000,
  concurrency: 8,
} as const

const checks = optionChecks('holdfast')

function httpUrl(name: string, v: unknown): string {
  if (typeof v !== 'string') throw checks.bad(name, 'an http:// or https:// URL', v)
  let u: URL
  try {
    u = new URL(v)
  } catch {
    throw checks.bad(name, 'an http:// or https:// URL', v)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw checks.bad(name, 'an http:// or https:// URL', v)
  return v.replace(/\/+$/, '')
}

function headerList(name: string, v: unknown): ResolvedProxyEvent['headers'] {
  if (!Array.isArray(v) || v.some((h) => typeof h !== 'string' || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(h))) {
    throw checks.bad(name, 'an array of header names (a trailing * matches a prefix)', v)
  }
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const h of v as string[]) {
    const l = h.toLowerCase()
    if (l.endsWith('*')) prefixes.push(l.slice(0, -1))
    else exact.add(l)
  }
  return { exact, prefixes }
}

/** Merge and check `proxy` once; a bad field throws a TypeError naming it. */
export function resolveProxyOptions(o: ProxyOptions | undefined): ResolvedProxy | undefined {
  if (o === undefined) return undefined
  if (typeof o !== 'object' || o === null) throw checks.bad('proxy', 'an object', o)
  const base = o.url === undefined ? undefined : httpUrl('proxy.url', o.url)
  const timeoutMs = checks.positiveInt('proxy.timeoutMs', o.timeoutMs ?? PROXY_DEFAULTS.timeoutMs)
  const headers = headerList('proxy.headers', o.headers ?? [...PROXY_DEFAULTS.headers])
  const events: ResolvedProxy['events'] = {}
  for (const event of PROXY_EVENTS) {
    const e = o[event]
    if (e === false) continue
    if (e !== undefined && (typeof e !== 'object' || e === null)) throw checks.bad(`proxy.${event}`, 'an object or false', e)
    const url = e?.url !== undefined ? httpUrl(`proxy.${event}.url`, e.url) : base === undefined ? undefined : `${base}/${event}`
    if (url === undefined) continue
    let namespaces: Set<string> | undefined
    if (e?.namespaces !== undefined) {
      if (event !== 'subscribe' && event !== 'publish') throw checks.bad(`proxy.${event}.namespaces`, 'absent (only subscribe and publish take namespaces)', e.namespaces)
      if (!Array.isArray(e.namespaces) || e.namespaces.some((n) => typeof n !== 'string')) throw checks.bad(`proxy.${event}.namespaces`, 'an array of namespace names', e.namespaces)
      namespaces = new Set(e.namespaces)
    }
    const parsed = new URL(url)
    events[event] = {
      url,
      origin: parsed.origin,
      path: parsed.pathname + parsed.search,
      timeoutMs: e?.timeoutMs === undefined ? timeoutMs : checks.positiveInt(`proxy.${event}.timeoutMs`, e.timeoutMs),
      headers: e?.headers === undefined ? headers : headerList(`proxy.${event}.headers`, e.headers),
      namespaces,
    }
  }
  const b = o.breaker ?? {}
  const d = PROXY_DEFAULTS.breaker
  const breaker: BreakerOptions = {
    errorThresholdPercentage: checks.positiveNumber('proxy.breaker.errorThresholdPercentage', b.errorThresholdPercentage ?? d.errorThresholdPercentage),
    volumeThreshold: checks.positiveInt('proxy.breaker.volumeThreshold', b.volumeThreshold ?? d.volumeThreshold),
    resetTimeoutMs: checks.positiveInt('proxy.breaker.resetTimeoutMs', b.resetTimeoutMs ?? d.resetTimeoutMs),
    rollingWindowMs: checks.positiveInt('proxy.breaker.rollingWindowMs', b.rollingWindowMs ?? d.rollingWindowMs),
  }
  return { events, maxConnections: checks.positiveInt('proxy.maxConnections', o.maxConnections ?? PROXY_DEFAULTS.maxConnections), breaker }
}

/** Merge and check `webhooks` once. */
export function resolveWebhookOptions(o: WebhookOptions | undefined): ResolvedWebhooks | undefined {
  if (o === undefined) return undefined
  if (typeof o !== 'object' || o === null) throw checks.bad('webhooks', 'an object', o)
  const events = o.events ?? [...WEBHOOK_EVENTS]
  if (!Array.isArray(events) || events.some((e) => !WEBHOOK_EVENTS.includes(e))) throw checks.bad('webhooks.events', `an array of ${WEBHOOK_EVENTS.join(', ')}`, events)
  if (o.secret !== undefined && (typeof o.secret !== 'string' || o.secret.length < 16)) throw checks.bad('webhooks.secret', 'a string of at least 16 characters', o.secret)
  const baseMs = checks.positiveInt('webhooks.backoff.baseMs', o.backoff?.baseMs ?? WEBHOOK_DEFAULTS.baseMs)
  const maxMs = checks.positiveInt('webhooks.backoff.maxMs', o.backoff?.maxMs ?? WEBHOOK_DEFAULTS.maxMs)
  if (maxMs < baseMs) throw checks.bad('webhooks.backoff.maxMs', `at least baseMs (${baseMs})`, maxMs)
  return {
    url: httpUrl('webhooks.url', o.url),
    secret: o.secret,
    events: new Set(events),
    maxQueue: checks.positiveInt('webhooks.maxQueue', o.maxQueue ?? WEBHOOK_DEFAULTS.maxQueue),
    maxAttempts: checks.positiveInt('webhooks.maxAttempts', o.maxAttempts ?? WEBHOOK_DEFAULTS.maxAttempts),
    timeoutMs: checks.positiveInt('webhooks.timeoutMs', o.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs),
    baseMs,
    maxMs,
    concurrency: checks.positiveInt('webhooks.concurrency', o.concurrency ?? WEBHOOK_DEFAULTS.concurrency),
  }
}
