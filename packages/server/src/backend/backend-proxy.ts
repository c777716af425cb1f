import { HoldfastError } from '@holdfast/protocol'
import type { IncomingHttpHeaders } from 'node:http'
import type { Logger } from 'pino'
import type { AuthResult } from '../auth/types.js'
import type { ChannelOptions } from '../options.js'
import { BackendClient, type BackendReply } from './backend-client.js'
import type { BackendMetrics } from './backend-metrics.js'
import type { ProxyEvent, ResolvedProxy, ResolvedProxyEvent } from './options.js'

/** What the proxy needs to know about (and may do to) a connection. */
export interface ProxiedConnection {
  readonly id: string
  readonly user: string
  readonly ip: string
  readonly traceId: string
  readonly codec: { readonly name: 'json' | 'msgpack' }
  closeWith(code: number, reason: string): boolean
}

import { ConnectRefused, connectCloseFor } from './refusal.js'

/** Channel options a subscribe result may override for that one subscription. */
const SUBSCRIBE_OVERRIDES = ['presence', 'joinLeave'] as const satisfies ReadonlyArray<keyof ChannelOptions>

export interface SubscribeGrant {
  /** Channel info for this subscription (shown in presence and join/leave instead of the connection's). */
  info?: unknown
  overrides: Pick<ChannelOptions, (typeof SUBSCRIBE_OVERRIDES)[number]>
}

/**
 * The backend proxy's events (docs/proxy.md): builds each request body, posts it with the
 * BackendClient, and turns the reply into what the gateway acts on. A backend failure is always a
 * temporary `backend_unavailable` (connect: a close with backoff advice).
 */
export class BackendProxy {
  readonly client: BackendClient
  readonly #o: ResolvedProxy
  /** Every header any event forwards: what a connection keeps from its upgrade. */
  readonly #keep: { exact: Set<string>; prefixes: string[] }
  /** The kept upgrade headers of each connection, for every later event. */
  readonly #headers = new WeakMap<ProxiedConnection, Record<string, string>>()

  constructor(o: ResolvedProxy, metrics: BackendMetrics, log: Logger | undefined) {
    this.#o = o
    this.client = new BackendClient({ maxConnections: o.maxConnections, breaker: o.breaker, metrics, log })
    const exact = new Set<string>()
    const prefixes: string[] = []
    for (const e of Object.values(o.events)) {
      for (const h of e.headers.exact) exact.add(h)
      prefixes.push(...e.headers.prefixes)
    }
    this.#keep = { exact, prefixes: [...new Set(prefixes)] }
  }

  has(event: ProxyEvent): boolean {
    return this.#o.events[event] !== undefined
  }

  /** `subscribe`/`publish` of this channel go to the backend. */
  covers(event: 'subscribe' | 'publish', channel: string): boolean {
    const e = this.#o.events[event]
    if (e === undefined) return false
    if (e.namespaces === undefined) return true
    const colon = channel.indexOf(':')
    return e.namespaces.has(colon > 0 ? channel.slice(0, colon) : '')
  }

  /** Keep the upgrade headers that any event forwards (by lower-case name) for the connection's later events. */
  keepHeaders(conn: ProxiedConnection, headers: IncomingHttpHeaders): void {
    let out: Record<string, string> | undefined
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || !(this.#keep.exact.has(name) || this.#keep.prefixes.some((p) => name.startsWith(p)))) continue
      ;(out ??= {})[name] = Array.isArray(value) ? value.join(', ') : value
    }
    if (out !== undefined) this.#headers.set(conn, out)
  }

  async connect(conn: ProxiedConnection, token: string | undefined, data: unknown): Promise<AuthResult> {
    let reply: BackendReply
    try {
      reply = await this.#call('connect', conn, { ...(token === undefined ? {} : { token }), ...(data === undefined ? {} : { data }) })
    } catch (err) {
      throw new ConnectRefused('try_later', (err as Error).message)
    }
    if (reply.kind === 'disconnect') throw new ConnectRefused(reply.code, reply.reason)
    if (reply.kind === 'error') throw new ConnectRefused(connectCloseFor(reply.error), reply.error.message)
    const r = reply.result
    if (typeof r['user'] !== 'string') throw new ConnectRefused('try_later', 'backend connect result has no user')
    if (r['channels'] !== undefined && (!Array.isArray(r['channels']) || r['channels'].some((c) => typeof c !== 'string'))) {
      throw new ConnectRefused('try_later', 'backend connect result: channels must be an array of strings')
    }
    const expiresAt = expiry(r['expireAt'])
    if (expiresAt === null) throw new ConnectRefused('try_later', 'backend connect result: expireAt must be unix seconds')
    return {
      user: r['user'],
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(r['info'] === undefined ? {} : { info: r['info'] }),
      ...(r['channels'] === undefined ? {} : { channels: r['channels'] as string[] }),
    }
  }

  /** The new expiry (ms since the epoch; undefined: never), or the error to act on. */
  async refresh(conn: ProxiedConnection): Promise<{ expiresAt: number | undefined }> {
    const r = this.#settle(conn, await this.#call('refresh', conn, {}))
    const expiresAt = expiry(r['expireAt'])
    if (expiresAt === null) throw invalid('refresh', 'expireAt must be unix seconds')
    return { expiresAt }
  }

  async subscribe(conn: ProxiedConnection, channel: string, data: unknown): Promise<SubscribeGrant> {
    const r = this.#settle(conn, await this.#call('subscribe', conn, { channel, ...(data === undefined ? {} : { data }) }))
    const overrides: SubscribeGrant['overrides'] = {}
    for (const key of SUBSCRIBE_OVERRIDES) {
      const v = r[key]
      if (v === undefined) continue
      if (typeof v !== 'boolean') throw invalid('subscribe', `${key} must be a boolean`)
      overrides[key] = v
    }
    return r['info'] === undefined ? { overrides } : { info: r['info'], overrides }
  }

  /** `{ data }` when the backend replaced the publication's data; `{}` to publish it as sent. */
  async publish(conn: ProxiedConnection, channel: string, data: unknown): Promise<{ data?: unknown }> {
    const r = this.#settle(conn, await this.#call('publish', conn, { channel, data }))
    return Object.hasOwn(r, 'data') ? { data: r['data'] } : {}
  }

  async rpc(conn: ProxiedConnection, method: string, data: unknown): Promise<unknown> {
    const r = this.#settle(conn, await this.#call('rpc', conn, { method, data: data ?? null }))
    return r['data']
  }

  close(): Promise<void> {
    return this.client.close()
  }

  #call(event: ProxyEvent, conn: ProxiedConnection, fields: object): Promise<BackendReply> {
    const target = this.#o.events[event] as ResolvedProxyEvent
    return this.client.call(
      event,
      target,
      {
        client: conn.id,
        user: conn.user,
        remoteAddr: conn.ip,
        protocol: conn.codec.name,
        traceId: conn.traceId,
        headers: pick(this.#headers.get(conn), target.headers),
        ...fields,
      },
      conn.traceId,
    )
  }

  /** A command's reply: the result, or the backend's error thrown, or the connection closed as asked. */
  #settle(conn: ProxiedConnection, reply: BackendReply): Record<string, unknown> {
    if (reply.kind === 'result') return reply.result
    if (reply.kind === 'error') throw reply.error
    conn.closeWith(reply.code, reply.reason)
    throw new HoldfastError('unauthorized', `disconnected by the backend: ${reply.reason}`)
  }
}

function pick(headers: Record<string, string> | undefined, allowed: ResolvedProxyEvent['headers']): Record<string, string> {
  const out: Record<string, string> = {}
  if (headers === undefined) return out
  for (const [name, value] of Object.entries(headers)) {
    if (allowed.exact.has(name) || allowed.prefixes.some((p) => name.startsWith(p))) out[name] = value
  }
  return out
}

/** `expireAt` (unix seconds) as ms since the epoch; undefined when absent, null when malformed. */
function expiry(v: unknown): number | undefined | null {
  if (v === undefined || v === null || v === 0) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return null
  return v * 1000
}

function invalid(event: ProxyEvent, what: string): HoldfastError {
  return new HoldfastError('backend_unavailable', `backend ${event} result: ${what}`)
}

