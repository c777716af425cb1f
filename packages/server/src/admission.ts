/**
 * Admission, the same for every transport: an upgrade becomes a connection, or is refused with an
 * HTTP status before any WebSocket exists (draining, the node's connection limit, origin, the
 * per-address limits, the engine not started, a bad token in the request itself).
 */
import { HoldfastError, codecFor } from '@holdfast/protocol'
import type { AuthResult } from './auth/types.js'
import { clientAddress } from './client-address.js'
import { Connection, type ConnectionOwner } from './connection.js'
import type { Heartbeats } from './heartbeats.js'
import { IpLimiter } from './limits/ip-limiter.js'
import { createOriginCheck } from './auth/origin.js'
import { tokenFromRequest } from './auth/token-source.js'
import type { NodeContext } from './node-context.js'
import { parseTraceparent, type TraceParent } from './tracing.js'
import { refusalHeaders, type PendingUpgrade, type TransportSink, type TransportSocket, type UpgradeRequest } from './transport/transport.js'

type Ctx = Pick<NodeContext, 'options' | 'counters' | 'log' | 'tracing' | 'connections' | 'authenticate' | 'backend'>

export interface AdmissionDeps {
  /** What each new connection reports to (frames, close, slow consumption). */
  readonly owner: ConnectionOwner
  readonly heartbeats: Heartbeats
  /** Resolves when the engine has started; rejects when it failed to. */
  started(): Promise<void>
  /** The node is draining or closed: every upgrade is refused. */
  closing(): boolean
}

export class Admission {
  readonly #ctx: Ctx
  readonly #deps: AdmissionDeps
  readonly #ipLimiter: IpLimiter
  readonly #originOk: (origin: string | undefined) => boolean
  /** Upgrades past the node-limit check that are not connections yet (auth in flight). */
  #admitting = 0

  constructor(ctx: Ctx, deps: AdmissionDeps) {
    this.#ctx = ctx
    this.#deps = deps
    this.#ipLimiter = new IpLimiter({ maxConnectionsPerIp: ctx.options.maxConnectionsPerIp, connectRate: ctx.options.connectRatePerIp })
    this.#originOk = createOriginCheck(ctx.options.allowedOrigins)
  }

  /** Take an upgrade from a transport: it becomes a connection, or is refused. */
  admit(p: PendingUpgrade): void {
    void this.#upgrade(p).catch((err: unknown) => {
      this.#ctx.log?.error({ err }, 'upgrade failed')
      p.refuse(500, 'internal', 'internal error', {})
    })
  }

  /** A connection closed: its address's slot is free again (released by address, not through a closure). */
  released(conn: Connection): void {
    this.#ipLimiter.release(conn.ip)
  }

  /** Forget idle per-address state. */
  sweep(now: number): void {
    this.#ipLimiter.sweep(now)
  }

  async #upgrade(p: PendingUpgrade): Promise<void> {
    const ctx = this.#ctx
    const o = ctx.options
    const req = p.request
    const refuse = (status: number, reason: string, message: string): void => {
      ctx.counters.inc('connections_rejected', reason)
      ctx.log?.info({ status, reason, ip: clientAddress(req, o.trustProxy), trace: parseTraceparent(req.headers['traceparent'])?.traceId }, 'connection refused')
      p.refuse(status, reason, message, refusalHeaders(status))
    }
    if (this.#deps.closing()) return refuse(503, 'draining', 'node is draining; connect to another node')
    // Upgrades still verifying a token count too, or concurrent ones would all pass this check.
    if (ctx.connections.size + this.#admitting >= o.maxConnections) return refuse(503, 'node_full', 'node connection limit reached')
    this.#admitting++
    try {
      await this.#admit(p, refuse)
    } finally {
      // transport.upgrade() accepts synchronously: by now the connection is counted in `connections`.
      this.#admitting--
    }
  }

  async #admit(p: PendingUpgrade, refuse: (status: number, reason: string, message: string) => void): Promise<void> {
    const req = p.request
    const origin = req.headers.origin
    if (!this.#originOk(origin)) return refuse(403, 'origin', 'origin not allowed')
    // Behind trusted proxies, the address they name (client-address.ts); otherwise the socket's.
    const ip = clientAddress(req, this.#ctx.options.trustProxy)
    const verdict = this.#ipLimiter.acquire(ip, performance.now())
    if (verdict !== 'ok') return refuse(429, verdict, verdict === 'rate_limited' ? 'too many connection attempts from this address' : 'too many connections from this address')
    let released = false
    const release = (): void => {
      if (!released) {
        released = true
        this.#ipLimiter.release(ip)
      }
    }
    try {
      await this.#deps.started()
    } catch {
      release()
      return refuse(503, 'engine_unavailable', 'engine unavailable')
    }
    // A token in the request itself (non-browser clients) is checked before the upgrade, so a bad
    // one gets a plain 401 instead of a WebSocket that closes at once.
    let preAuth: AuthResult | undefined
    // A proxied connect is decided by the backend at the connect command (it sees the token too).
    const token = this.#ctx.backend.proxy?.has('connect') === true ? undefined : tokenFromRequest(req)
    if (token !== undefined) {
      try {
        preAuth = await this.#ctx.authenticate(token, req)
      } catch (err) {
        release()
        const e = err instanceof HoldfastError ? err : new HoldfastError('unauthorized', 'authentication failed')
        return refuse(401, e.code, e.message)
      }
    }
    if (p.gone()) return release()
    const parent = parseTraceparent(req.headers['traceparent'])
    let accepted = false
    p.upgrade((ts) => {
      accepted = true
      return this.#accept(ts, ip, parent, req, preAuth)
    })
    // ws answers a bad handshake (version, key, subprotocol header) with 400 and never calls back.
    if (!accepted) release()
  }

  // Nothing created here may close over #admit's scope: its context holds the IncomingMessage,
  // which would then live as long as the connection (kilobytes each). The IP slot is released
  // from onClose by address instead of through a closure.
  #accept(socket: TransportSocket, ip: string, parent: TraceParent | undefined, req: UpgradeRequest, preAuth: AuthResult | undefined): TransportSink {
    const ctx = this.#ctx
    const o = ctx.options
    const { span, traceId } = ctx.tracing.startConnect(parent, { 'client.address': ip, 'holdfast.node': o.nodeId })
    // The rate buckets are created from the options on the connection's first frame.
    const conn = new Connection(socket, codecFor(socket.protocol), ip, traceId, this.#deps.owner)
    ctx.tracing.bind(conn, span)
    ctx.connections.add(conn)
    this.#deps.heartbeats.admitted(conn)
    conn.pending = { preAuth, req }
    return conn
  }
}
