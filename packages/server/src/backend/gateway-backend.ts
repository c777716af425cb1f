import type { EventEmitter } from 'node:events'
import { HoldfastError } from '@holdfast/protocol'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Engine } from '../engine/engine.js'
import { BackendMetrics } from './backend-metrics.js'
import type { BackendProxy, ProxiedConnection } from './backend-proxy.js'
import { resolveProxyOptions, resolveWebhookOptions, type ProxyOptions, type WebhookOptions } from './options.js'
import { connectCloseFor } from './refusal.js'
import type { WebhookQueue } from './webhooks.js'

/** An engine that can tell fleet-wide when a channel gains its first or loses its last subscribing node. */
export interface OccupancyEngine {
  /**
   * Record that `node` has (`occupied`) or no longer has subscribers of `channel`; resolves true
   * when that made the channel occupied (no node had it) or vacated (no node has it now).
   * `ttlMs`: a node that stops refreshing (crashed) stops counting after it.
   */
  occupancy?(channel: string, node: string, occupied: boolean, ttlMs: number): Promise<boolean>
}

/** How long a node's claim on an occupied channel lasts without a refresh. */
export const OCCUPANCY_TTL_MS = 60_000

export interface GatewayBackendHost {
  readonly nodeId: string
  readonly engine: Engine & OccupancyEngine
  readonly log: Logger | undefined
  readonly metrics: { readonly ownRegistry: Registry }
  on(event: 'connect', l: (i: { client: string; user: string; session: string; resumed: boolean; ip: string }) => void): unknown
  on(event: 'disconnect', l: (i: { client: string; user: string; session: string; code: number; reason: string }) => void): unknown
}

/** A connection with an expiry set by the backend, refreshed through it. */
interface RefreshState {
  /** The backend's expiry, ms since the epoch. */
  expiresAt: number
  inFlight: boolean
}

export interface RefreshTarget extends ProxiedConnection {
  expiresAt: number
  close(name: 'token_expired' | 'try_later' | 'unauthorized' | 'forbidden', reason: string): boolean
}

/**
 * What a gateway has of the backend: the proxy (when `proxy` is configured), the webhooks (when
 * `webhooks` is), and their metrics (always). The gateway and the command handler call in here
 * at their hook points; everything else about the backend stays in this folder. The HTTP client
 * (undici) and the circuit breaker (opossum) are loaded only when one of them is configured:
 * `loaded` resolves then, and the gateway admits no connection before it.
 */
export class GatewayBackend {
  readonly metrics: BackendMetrics
  proxy: BackendProxy | undefined
  webhooks: WebhookQueue | undefined
  readonly loaded: Promise<void>
  readonly #host: GatewayBackendHost
  readonly #refresh = new WeakMap<object, RefreshState>()
  /** Channels this node holds occupied in the engine, for the periodic refresh. */
  readonly #occupied = new Set<string>()
  #occupancyTimer: NodeJS.Timeout | undefined

  constructor(host: GatewayBackendHost, opts: { proxy?: ProxyOptions | undefined; webhooks?: WebhookOptions | undefined }) {
    this.#host = host
    // Not `registry`: that would start the process metrics (an event-loop monitor) of a node never scraped.
    this.metrics = new BackendMetrics(host.metrics.ownRegistry)
    // Checked now, so that a bad option throws from the constructor; built once the code is loaded.
    const p = resolveProxyOptions(opts.proxy)
    const w = resolveWebhookOptions(opts.webhooks)
    this.loaded = Promise.all([
      p === undefined ? undefined : import('./backend-proxy.js').then(({ BackendProxy }) => void (this.proxy = new BackendProxy(p, this.metrics, host.log))),
      w === undefined ? undefined : import('./webhooks.js').then(({ WebhookQueue }) => this.#listen(host, (this.webhooks = new WebhookQueue(w, host.nodeId, this.metrics, host.log)))),
    ]).then(() => undefined)
  }

  #listen(host: GatewayBackendHost, hooks: WebhookQueue): void {
    if (hooks.wants('connected')) host.on('connect', (i) => hooks.emit('connected', { client: i.client, user: i.user, session: i.session, resumed: i.resumed, remoteAddr: i.ip }))
    if (hooks.wants('disconnected')) host.on('disconnect', (i) => hooks.emit('disconnected', { client: i.client, user: i.user, session: i.session, code: i.code, reason: i.reason }))
    if ((hooks.wants('channel_occupied') || hooks.wants('channel_vacated')) && host.engine.occupancy !== undefined) {
      this.#occupancyTimer = setInterval(() => this.#refreshOccupancy(), OCCUPANCY_TTL_MS / 3).unref()
    }
  }

  /** A subscription went live on this node (`joined`) or ended. */
  onMember(conn: { id: string; user: string }, channel: string, joined: boolean): void {
    this.webhooks?.emit(joined ? 'join' : 'leave', { channel, client: conn.id, user: conn.user })
  }

  /** The first subscriber of a channel arrived on this node, or the last left. */
  onLocalChannel(channel: string, occupied: boolean): void {
    const hooks = this.webhooks
    if (hooks === undefined || !(hooks.wants('channel_occupied') || hooks.wants('channel_vacated'))) return
    const engine = this.#host.engine
    const fire = (): void => hooks.emit(occupied ? 'channel_occupied' : 'channel_vacated', { channel })
    if (occupied) this.#occupied.add(channel)
    else this.#occupied.delete(channel)
    // One node (the memory engine) is its own fleet.
    if (engine.occupancy === undefined) return fire()
    engine.occupancy(channel, this.#host.nodeId, occupied, OCCUPANCY_TTL_MS).then(
      (changed) => {
        if (changed) fire()
      },
      (err: unknown) => this.#host.log?.warn({ err, channel }, 'channel occupancy update failed; its webhook may be missing'),
    )
  }

  #refreshOccupancy(): void {
    const engine = this.#host.engine
    for (const channel of this.#occupied) engine.occupancy?.(channel, this.#host.nodeId, true, OCCUPANCY_TTL_MS).catch(() => {})
  }

  /**
   * A connection authenticated by the backend with an expiry: `refresh` is called before it.
   * Returns the time to wake for (the refresh), or the expiry itself without a refresh event.
   */
  startExpiry(conn: object, expiresAt: number): number {
    if (this.proxy?.has('refresh') !== true) return expiresAt
    this.#refresh.set(conn, { expiresAt, inFlight: false })
    return refreshAt(expiresAt, Date.now())
  }

  /**
   * The wheel woke `conn` at its refresh time. true: handled here (a refresh started, the
   * connection stays); false: the expiry itself passed, close it.
   */
  refreshDue(conn: RefreshTarget, now: number, reschedule: () => void): boolean {
    const st = this.#refresh.get(conn)
    const proxy = this.proxy
    if (st === undefined || proxy === undefined || now >= st.expiresAt) return false
    if (st.inFlight) return true
    st.inFlight = true
    // The wheel wakes at the real expiry if the refresh has not answered by then.
    conn.expiresAt = st.expiresAt
    proxy.refresh(conn).then(
      ({ expiresAt }) => {
        st.inFlight = false
        if (expiresAt === undefined) {
          this.#refresh.delete(conn)
          conn.expiresAt = 0
        } else {
          st.expiresAt = expiresAt
          conn.expiresAt = refreshAt(expiresAt, Date.now())
        }
        reschedule()
      },
      (err: unknown) => {
        st.inFlight = false
        if (err instanceof HoldfastError && err.code === 'backend_unavailable') {
          // Try again shortly; the expiry still closes the connection if the backend stays away.
          conn.expiresAt = Math.min(st.expiresAt, Date.now() + 1000)
          reschedule()
        } else if (err instanceof HoldfastError) conn.close(connectCloseFor(err), err.message)
      },
    )
    return true
  }

  async close(): Promise<void> {
    await this.loaded.catch(() => {})
    if (this.#occupancyTimer !== undefined) clearInterval(this.#occupancyTimer)
    await Promise.all([this.proxy?.close(), this.webhooks?.close()])
  }
}

/** Refresh ahead of the expiry: halfway through a short lifetime, 10 s before a long one. */
function refreshAt(expiresAt: number, now: number): number {
  return expiresAt - Math.min(Math.max(0, (expiresAt - now) / 2), 10_000)
}
