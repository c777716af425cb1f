import { EventEmitter, once } from 'node:events'
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  CloseCodes,
  HoldfastError,
  type ClientMessage,
  type CloseCodeName,
  type Command,
  type Publication,
  type StreamPosition,
  closeCodeName,
} from '@holdfast/protocol'
import pino, { type Logger } from 'pino'
import { createOriginCheck } from './auth/origin.js'
import { createJwtVerifier } from './auth/jwt.js'
import { tokenFromRequest } from './auth/token-source.js'
import type { AuthResult } from './auth/types.js'
import { parseChannel } from './channel-name.js'
import { measureData } from './payload.js'
import { CommandHandler, type PendingConnect } from './commands.js'
import { Connection, ConnState, type ConnectionOwner } from './connection.js'
import type { ControlMessage, Engine, EngineHandler, NodeInfo, PublishOptions, PublishOutcome } from './engine/engine.js'
import { MemoryEngine } from './engine/memory-engine.js'
import { Hub } from './hub.js'
import { IpLimiter } from './limits/ip-limiter.js'
import { KeyedBuckets } from './limits/keyed-buckets.js'
import { clientAddress } from './client-address.js'
import { guardHttpServer, httpServerOptions } from './limits/http-guard.js'
import { TokenBucket } from './limits/token-bucket.js'
import { Counters } from './counters.js'
import { Metrics } from './metrics.js'
import { Tracing, connectionInfo, parseTraceparent, runHook, type TraceParent } from './tracing.js'
import { FRAME_OVERHEAD, resolveOptions, type HoldfastOptions, type ResolvedChannelOptions, type ResolvedOptions } from './options.js'
import { RpcRouter, type RpcHandler } from './rpc-router.js'
import { GatewayBackend } from './backend/gateway-backend.js'
import { createChannelTokenVerifier, type ChannelGrant } from './auth/channel-token.js'
import { SessionSigner } from './session.js'
import { TimerWheel } from './timer-wheel.js'
import { rejectUpgrade, WsTransport } from './transport/ws-transport.js'
import { HttpStreamTransport } from './transport/http-stream-transport.js'
import { refusal, refusalHeaders, type PendingUpgrade, type TransportSink, type TransportSocket, type UpgradeRequest } from './transport/transport.js'

const HEARTBEAT_TICK_MS = 250
const NODE_REGISTRY_EVERY_MS = 5000
const NODE_REGISTRY_TTL_MS = 3 * NODE_REGISTRY_EVERY_MS
/**
 * A safety net under the rule "never log a token or a message payload": whatever a log call
 * passes by mistake under these names is censored, in the gateway's lines only.
 */
export const LOG_REDACT = {
  paths: ['token', '*.token', 'data', '*.data', 'authorization', '*.authorization', 'cookie', '*.cookie', '*.headers.authorization', '*.headers.cookie'],
  censor: '[redacted]',
}

export interface CloseOptions {
  /** Spread the restart closes over this window, in ms. @default options.drainMs */
  drainMs?: number
}

export interface PublishApiOptions {
  /** Publish at most once per key within the idempotency window. */
  idempotencyKey?: string
}

export interface DisconnectTarget {
  user?: string
  client?: string
  /** A close code from the table. @default 'kicked' */
  code?: CloseCodeName
  reason?: string
}

export interface GatewayEvents {
  connect: [info: { client: string; user: string; session: string; resumed: boolean; ip: string }]
  disconnect: [info: { client: string; user: string; session: string; code: number; reason: string }]
}

/**
 * The gateway node: accepts WebSockets, authenticates, runs commands, fans out publications,
 * keeps heartbeats and limits, and drains. `createHoldfast()` returns one.
 */
export class Gateway extends EventEmitter<GatewayEvents> implements ConnectionOwner {
  readonly options: ResolvedOptions
  readonly engine: Engine
  readonly hub: Hub
  readonly rpc = new RpcRouter()
  readonly counters = new Counters()
  /** Prometheus metrics over `counters`, in the gateway's own registry. */
  readonly metrics: Metrics
  /** The application backend: proxy and webhooks (backend/), when configured; its metrics always. */
  readonly backend: GatewayBackend
  readonly tracing: Tracing
  readonly sessions: SessionSigner
  readonly log: Logger | undefined
  readonly maxQueueBytes: number
  /** Clock skew allowed past a token's `exp` (the JWT verifier's tolerance). */
  readonly expiryGraceMs: number
  readonly connections = new Set<Connection>()
  /** session id → the connection holding it on this node. */
  readonly bySession = new Map<string, Connection>()
  readonly #ownsEngine: boolean
  /** Created on first use, so a `uws` gateway never builds a ws server. */
  #ws: WsTransport | undefined
  /** The HTTP-streaming fallback, created on its first request. */
  #stream: HttpStreamTransport | undefined
  /** The engine reported itself unavailable since it last was ready (for the "ready again" log line). */
  #engineWasDown = false
  /** What listen() opened: closed last by close(). */
  #listener: { close(): void } | undefined
  readonly #wheel: TimerWheel<Connection>
  readonly #ipLimiter: IpLimiter
  /** Message ids per user (or anonymous session) within the idempotency window. */
  readonly messageIds: KeyedBuckets
  readonly #originOk: (origin: string | undefined) => boolean
  readonly #verify: ((token: string) => Promise<AuthResult>) | undefined
  /** Checks channel tokens (subscribe `token`, `sub_refresh`); undefined when no key is configured. */
  readonly channelToken: ((token: string, user: string, channel: string) => Promise<ChannelGrant>) | undefined
  readonly #commands: CommandHandler
  #started: Promise<void>
  #startError: unknown = undefined
  #draining = false
  #closed: Promise<void> | undefined
  /** Upgrades past the node-limit check that are not connections yet (auth in flight). */
  #admitting = 0
  #presenceTimer: NodeJS.Timeout | undefined
  readonly #startedAt = Date.now()
  #sweepTimer: NodeJS.Timeout

  constructor(options: HoldfastOptions = {}) {
    super()
    const o = resolveOptions(options)
    this.options = o
    this.log =
      o.logger === false
        ? undefined
        : o.logger === undefined
          ? pino({ level: process.env['HOLDFAST_LOG_LEVEL'] ?? 'info', base: { node: o.nodeId }, redact: LOG_REDACT })
          : o.logger.child({ node: o.nodeId }, { redact: LOG_REDACT })
    this.maxQueueBytes = o.maxQueueBytes
    // Only the JWT verifier tolerates skew on exp; an authenticate hook's expiry is taken as is.
    this.expiryGraceMs = o.authenticate === undefined && o.jwt !== undefined ? (o.jwt.clockToleranceSec ?? 5) * 1000 : 0
    this.#ownsEngine = o.engine === undefined
    this.engine = o.engine ?? new MemoryEngine()
    this.sessions = new SessionSigner(o.sessionSecret, o.sessionMaxAgeMs)
    this.hub = new Hub(
      this.engine,
      {
        onInsufficientState: (conn, channel) => this.#insufficientState(conn, channel),
        onStalled: (conn) => this.onSlowConsumer(conn),
        onMember: (conn, channel, joined) => this.backend.onMember(conn, channel, joined),
        onLocalChannel: (channel, occupied) => this.backend.onLocalChannel(channel, occupied),
      },
      { maxReplyBytes: o.maxReplyBytes },
    )
    this.metrics = new Metrics(this, { processMetrics: o.processMetrics })
    this.backend = new GatewayBackend(this, { proxy: o.proxy, webhooks: o.webhooks })
    this.tracing = new Tracing(o.tracer)
    this.#wheel = new TimerWheel<Connection>({
      tickMs: HEARTBEAT_TICK_MS,
      onExpire: (conn) => this.#heartbeat(conn),
      onError: (err) => this.log?.error({ err }, 'heartbeat failed'),
    })
    this.#wheel.start()
    this.messageIds = new KeyedBuckets((o.maxMessageIdsPerUser * 1000) / o.idempotencyTtlMs, o.maxMessageIdsPerUser)
    this.#ipLimiter = new IpLimiter({ maxConnectionsPerIp: o.maxConnectionsPerIp, connectRate: o.connectRatePerIp })
    this.#originOk = createOriginCheck(o.allowedOrigins)
    this.#verify = o.authenticate === undefined && o.jwt !== undefined ? createJwtVerifier(o.jwt) : undefined
    this.channelToken = o.channelTokens === undefined ? undefined : createChannelTokenVerifier(o.channelTokens)
    this.#commands = new CommandHandler(this)
    this.#sweepTimer = setInterval(() => {
      const now = performance.now()
      this.#ipLimiter.sweep(now)
      this.messageIds.sweep(now)
      void this.#register()
    }, NODE_REGISTRY_EVERY_MS).unref()
    const handler: EngineHandler = {
      onPublication: (channel, pub) => {
        this.hub.onPublication(channel, pub)
        this.metrics.delivery.delivered(channel, pub)
      },
      onJoinLeave: (channel, kind, info) => this.hub.onJoinLeave(channel, kind, info),
      onControl: (msg) => this.#onControl(msg),
      onStateChange: (ready) => {
        // "Ready" right after the start is not news: only a comeback after an outage is.
        if (!ready || this.#engineWasDown) this.log?.warn({ ready }, ready ? 'engine ready again' : 'engine unavailable')
        this.#engineWasDown = !ready
        // Live feeds may have missed publications while the engine was away: compare every
        // channel's stream top with what this node delivered, and send the gapped ones to recovery.
        if (ready) void this.hub.resync((channel) => this.channelOptions(channel))
      },
    }
    // The backend's code (when configured) is loaded before the first connection is admitted.
    this.#started = Promise.all([this.engine.start(handler), this.backend.loaded]).then(() => undefined, (err: unknown) => {
      this.#startError = err
      this.counters.inc('engine_errors', 'start')
      this.log?.error({ err }, 'engine failed to start')
      throw err
    })
    this.#started.then(() => this.#register()).catch(() => {})
    this.#schedulePresenceRefresh()
  }

  /** Resolves when the engine has started. */
  ready(): Promise<void> {
    return this.#started
  }

  /** Accepting and able to serve: false while draining or while the engine is unavailable. */
  isReady(): boolean {
    return !this.#draining && this.#startError === undefined && this.engine.isReady()
  }

  get draining(): boolean {
    return this.#draining
  }

  get connectionCount(): number {
    return this.connections.size
  }

  get nodeId(): string {
    return this.options.nodeId
  }

  /** The Prometheus text exposition of this node's metrics (`GET /metrics`); content type in `metrics.contentType`. */
  metricsText(): Promise<string> {
    return this.metrics.text()
  }

  /** Register an RPC method. The handler's return value is the reply; throw a HoldfastError to refuse. */
  onRpc(method: string, handler: RpcHandler): this {
    this.rpc.add(method, handler)
    return this
  }

  // ------------------------------------------------------------------ HTTP attachment

  /** Handle WebSocket upgrades on `path` of an existing node:http server (the `ws` transport only). */
  attach(server: HttpServer, opts: { path?: string } = {}): this {
    this.#wsTransport()
    const path = opts.path ?? '/ws'
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      if ((q === -1 ? url : url.slice(0, q)) === path) this.handleUpgrade(req, socket, head)
      else if (server.listenerCount('upgrade') === 1) rejectUpgrade(socket, 404, 'not_found', `no WebSocket endpoint at ${url.slice(0, 100)}`)
    })
    return this
  }

  /**
   * Listen for WebSockets on `host:port` at `path` with a server of the gateway's own: a node:http
   * server for the `ws` transport, a uWebSockets.js App for `uws` (which cannot attach to
   * node:http). Resolves with the bound port (port 0 picks a free one); `close()` stops listening.
   */
  async listen(opts: { host?: string; port?: number; path?: string } = {}): Promise<number> {
    if (this.#listener !== undefined) throw new Error('holdfast: listen() was already called')
    const host = opts.host ?? '127.0.0.1'
    const port = opts.port ?? 0
    const path = opts.path ?? '/ws'
    if (this.options.transport === 'uws') {
      // Imported only here, so that choosing `ws` never loads (or needs) uWebSockets.js.
      const { UwsTransport } = await import('./transport/uws-transport.js')
      const uws = new UwsTransport(path, {
        maxFrameBytes: this.options.maxPayload + FRAME_OVERHEAD,
        compression: this.options.compression,
        admit: (pending) => this.#handle(pending),
      })
      this.#listener = uws
      return uws.listen(host, port)
    }
    const { createServer } = await import('node:http')
    const server = createServer(httpServerOptions(), (req, res) => {
      if (!this.handleHttpStream(req, res, path)) res.writeHead(404, { 'content-type': 'application/json' }).end(refusal(404, 'not_found', 'no WebSocket endpoint here').body)
    })
    // Timeouts, and the per-address cap on raw TCP connections (docs/security: HTTP limits).
    guardHttpServer(server, { onRefused: () => this.counters.inc('connections_rejected', 'tcp_per_ip') })
    this.attach(server, { path })
    this.#listener = { close: () => server.close() }
    server.listen(port, host)
    await once(server, 'listening')
    return (server.address() as AddressInfo).port
  }

  #wsTransport(): WsTransport {
    if (this.#ws === undefined) {
      if (this.options.transport !== 'ws') throw new Error(`holdfast: attach()/handleUpgrade() need transport "ws"; with "${this.options.transport}" use listen()`)
      this.#ws = new WsTransport({ maxFrameBytes: this.options.maxPayload + FRAME_OVERHEAD, compression: this.options.compression })
    }
    return this.#ws
  }

  /** Upgrade a request to a holdfast connection, or refuse it with an HTTP status (the `ws` transport). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ws = this.#wsTransport()
    // A module-level listener: a closure created here would share this scope's context, which
    // holds the request, and the socket would keep that alive as long as the connection.
    socket.on('error', ignoreError)
    this.#handle({
      request: req,
      gone: () => socket.destroyed,
      refuse: (status, code, message, headers) => rejectUpgrade(socket, status, code, message, headers),
      upgrade: (accept) => ws.upgrade(req, socket, head, accept),
    })
  }

  /**
   * The HTTP-streaming fallback under `path` (`<path>/stream...`, docs/protocol.md), for clients
   * whose WebSocket upgrade a proxy refuses. true when `req` was one of its requests (answered).
   */
  handleHttpStream(req: IncomingMessage, res: ServerResponse, path = '/ws'): boolean {
    this.#stream ??= new HttpStreamTransport({ maxFrameBytes: this.options.maxPayload + FRAME_OVERHEAD, admit: (p) => this.#handle(p) })
    return this.#stream.handle(req, res, path)
  }

  /** Admission, the same for every transport: every refusal is an HTTP status before any WebSocket exists. */
  #handle(p: PendingUpgrade): void {
    void this.#upgrade(p).catch((err: unknown) => {
      this.log?.error({ err }, 'upgrade failed')
      p.refuse(500, 'internal', 'internal error', {})
    })
  }

  async #upgrade(p: PendingUpgrade): Promise<void> {
    const o = this.options
    const req = p.request
    const refuse = (status: number, reason: string, message: string): void => {
      this.counters.inc('connections_rejected', reason)
      this.log?.info({ status, reason, ip: clientAddress(req, o.trustProxy), trace: parseTraceparent(req.headers['traceparent'])?.traceId }, 'connection refused')
      p.refuse(status, reason, message, refusalHeaders(status))
    }
    if (this.#draining || this.#closed !== undefined) return refuse(503, 'draining', 'node is draining; connect to another node')
    // Upgrades still verifying a token count too, or concurrent ones would all pass this check.
    if (this.connections.size + this.#admitting >= o.maxConnections) return refuse(503, 'node_full', 'node connection limit reached')
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
    const ip = clientAddress(req, this.options.trustProxy)
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
      await this.#started
    } catch {
      release()
      return refuse(503, 'engine_unavailable', 'engine unavailable')
    }
    // A token in the request itself (non-browser clients) is checked before the upgrade, so a bad
    // one gets a plain 401 instead of a WebSocket that closes at once.
    let preAuth: AuthResult | undefined
    const token = tokenFromRequest(req)
    // A proxied connect is decided by the backend at the connect command (it sees the token too).
    if (token !== undefined && this.backend.proxy?.has('connect') !== true) {
      try {
        preAuth = await this.authenticate(token, req)
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
    const o = this.options
    const codec = this.#commands.codecFor(socket.protocol)
    const { span, traceId } = this.tracing.startConnect(parent, { 'client.address': ip, 'holdfast.node': o.nodeId })
    const now = performance.now()
    const conn = new Connection(
      socket,
      codec,
      ip,
      traceId,
      this,
      new TokenBucket(o.commandRate.perSecond, o.commandRate.burst, now),
      new TokenBucket(o.inboundByteRate.perSecond, o.inboundByteRate.burst, now),
      this.log,
    )
    this.tracing.bind(conn, span)
    this.connections.add(conn)
    this.#wheel.schedule(conn, o.connectTimeoutMs)
    conn.pending = { preAuth, req }
    return conn
  }

  /** @internal The transport's frames for `conn` (the connection is the sink; see Connection.onFrame). */
  connectionFrame(conn: Connection, data: Uint8Array | string, isBinary: boolean): void {
    this.#commands.onFrame(conn, data, isBinary, conn.pending ?? CONNECTED)
  }

  /** @internal The transport saw `conn` close. The IP slot is released by address. */
  connectionClosed(conn: Connection, code: number, reason: string): void {
    this.#ipLimiter.release(conn.ip)
    this.#onClosed(conn, code, reason)
  }

  /** Verify a token with the configured `authenticate` hook or JWT verifier. */
  async authenticate(token: string | undefined, req: UpgradeRequest): Promise<AuthResult> {
    const o = this.options
    if (o.authenticate !== undefined) return o.authenticate({ token, request: req })
    if (this.#verify !== undefined) {
      if (token === undefined || token === '') throw new HoldfastError('unauthorized', 'a token is required')
      return this.#verify(token)
    }
    if (!o.allowAnonymous) throw new HoldfastError('unauthorized', 'anonymous connections are not allowed')
    return { user: '' }
  }

  // ------------------------------------------------------------------ connection lifecycle

  /** Called by the command handler once a connect command succeeded. */
  connected(conn: Connection, resumed: boolean): void {
    const o = this.options
    conn.state = ConnState.Connected
    const now = Date.now()
    conn.nextPingAt = now + o.pingIntervalMs
    this.#wheel.schedule(conn, this.#nextWake(conn, now))
    const previous = this.bySession.get(conn.session)
    this.bySession.set(conn.session, conn)
    if (previous !== undefined && previous !== conn) previous.close('taken_over', 'session resumed by a newer connection')
    if (resumed) {
      // Other nodes may hold the older connection of this session.
      this.engine.publishControl({ type: 'takeover', session: conn.session, client: conn.id, node: o.nodeId }).catch((err: unknown) => {
        this.log?.warn({ err }, 'takeover broadcast failed')
      })
    }
    this.counters.inc('connections_accepted')
    this.emit('connect', { client: conn.id, user: conn.user, session: conn.session, resumed, ip: conn.ip })
    conn.logAt('debug')?.debug({ user: conn.user, resumed }, 'connected')
    this.tracing.connected(conn, { 'holdfast.client': conn.id, 'enduser.id': conn.user, 'holdfast.session': conn.session, 'holdfast.resumed': resumed })
    const onConnect = o.onConnect
    if (onConnect !== undefined) this.hook('onConnect', () => onConnect({ ...connectionInfo(conn), resumed }), conn)
  }

  /** Run an application hook; what it throws is logged (on the connection's lines) and counted, never propagated. */
  hook(name: string, call: () => unknown, conn?: Connection): void {
    runHook(name, call, (hook, err) => {
      this.counters.inc('hook_errors', hook)
      ;(conn?.log ?? this.log)?.error({ err, hook }, 'application hook failed')
    })
  }

  /** Engine publish, timed to its fan-out on this node (publish-to-delivery latency), failures counted. */
  async enginePublish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome> {
    const pending = this.metrics.delivery.start(channel)
    let out: PublishOutcome
    // The namespace's durability applies to every publish path (client, server API).
    const durability = this.channelOptions(channel).durability
    if (durability !== 'none' && opts.durability === undefined) opts = { ...opts, durability }
    try {
      out = await this.engine.publish(channel, data, opts)
    } catch (err) {
      this.metrics.delivery.failed(pending)
      this.counters.inc('engine_errors', 'publish')
      throw err
    }
    this.metrics.delivery.stored(pending, out, this.hub.subscriberCount(channel) > 0)
    return out
  }

  #onClosed(conn: Connection, code: number, reason: string): void {
    // The drain deadline calls this for the connections it terminates, and their sockets report
    // the close again later: count and tell the hooks once.
    if (!this.connections.has(conn)) return
    const wasConnected = conn.state === ConnState.Connected || conn.closeCode !== 0
    // Closed by the server (closeWith/terminate ran first) before the handshake completed: a rejection.
    const rejected = conn.state === ConnState.Closed && conn.session === ''
    if (conn.state !== ConnState.Closed) {
      conn.state = ConnState.Closed
      conn.closeCode = code
      conn.closeReason = reason
    }
    this.#wheel.cancel(conn)
    this.connections.delete(conn)
    if (this.bySession.get(conn.session) === conn) this.bySession.delete(conn.session)
    if (conn.subs !== undefined) {
      for (const [channel, sub] of conn.subs) {
        clearTimeout(sub.tokenTimer)
        this.hub.remove(conn, channel)
        if (sub.presence) this.#commands.leavePresence(conn, channel, sub)
      }
      conn.subs = undefined
    }
    this.counters.inc('disconnects', String(conn.closeCode))
    const codeName = closeCodeName(conn.closeCode) ?? (conn.closeCode === 1005 ? 'no_status' : 'other')
    if (rejected) this.counters.inc('connections_rejected', codeName)
    this.tracing.closed(conn, conn.closeCode, codeName)
    if (wasConnected && conn.user !== undefined) {
      this.emit('disconnect', { client: conn.id, user: conn.user, session: conn.session, code: conn.closeCode, reason: conn.closeReason })
    }
    const onDisconnect = this.options.onDisconnect
    if (onDisconnect !== undefined && conn.session !== '') {
      this.hook('onDisconnect', () => onDisconnect({ ...connectionInfo(conn), code: conn.closeCode, codeName, reason: conn.closeReason }), conn)
    }
    conn.logAt('debug')?.debug({ code: conn.closeCode, codeName, reason: conn.closeReason }, 'disconnected')
  }

  /** The send queue overflowed: close; the client reconnects and recovers what it missed. */
  onSlowConsumer(conn: Connection): void {
    this.counters.inc('slow_consumer_closes')
    conn.log?.info({ buffered: conn.socket.bufferedAmount }, 'slow consumer closed')
    // Its buffers are full, so the closing handshake may never complete: do not hold the socket
    // (and its megabyte of backlog) for ws's 30 s close timeout.
    conn.closeAndDrop(CloseCodes.slow_consumer.code, 'send queue overflow', true)
  }


  #insufficientState(conn: Connection, channel: string): void {
    this.counters.inc('insufficient_state')
    conn.log?.warn({ channel }, 'gap in channel stream; closing for recovery')
    conn.close('insufficient_state', `gap in ${channel}`)
  }

  // ------------------------------------------------------------------ heartbeats

  #nextWake(conn: Connection, now: number): number {
    const due = conn.awaitingPong ? conn.pingSentAt + this.options.pongTimeoutMs : conn.nextPingAt
    const at = conn.expiresAt > 0 ? Math.min(due, conn.expiresAt) : due
    return Math.max(0, at - now)
  }

  /** One timer-wheel visit: connect timeout, token expiry, pong deadline or the next ping. */
  #heartbeat(conn: Connection): void {
    if (conn.state === ConnState.Closed) return
    if (conn.state === ConnState.Handshake) {
      this.counters.inc('connect_timeouts')
      conn.close('connect_timeout', 'no connect command in time')
      return
    }
    const now = Date.now()
    if (conn.expiresAt > 0 && now >= conn.expiresAt) {
      // A backend-given expiry: the backend's refresh runs first (the wheel comes back at the expiry).
      if (this.backend.refreshDue(conn, now, () => this.rescheduleHeartbeat(conn))) {
        this.#wheel.schedule(conn, this.#nextWake(conn, now))
        return
      }
      conn.close('token_expired', 'token expired; refresh it before expiry')
      return
    }
    if (conn.awaitingPong) {
      if (now >= conn.pingSentAt + this.options.pongTimeoutMs) {
        this.counters.inc('heartbeat_timeouts')
        // The peer is silent (maybe half-open): do not wait for a closing handshake.
        conn.closeWith(CloseCodes.heartbeat_timeout.code, 'no pong in time')
        conn.terminate(CloseCodes.heartbeat_timeout.code, 'no pong in time')
        return
      }
    } else if (now >= conn.nextPingAt) {
      // A socket that holds bytes and took none for a whole ping interval is not being read (a
      // client may answer pings without reading): what it holds would be held for good.
      const buffered = conn.socket.bufferedAmount
      const taken = conn.bytesWritten - buffered
      if (buffered > 0 && taken <= conn.takenAtPing) {
        this.onSlowConsumer(conn)
        return
      }
      conn.takenAtPing = taken
      conn.awaitingPong = true
      conn.pingSentAt = now
      conn.enqueue(this.#commands.pingBytes(conn.codec))
    }
    this.#wheel.schedule(conn, this.#nextWake(conn, now))
  }

  /**
   * A pong arrived. The wheel entry, parked at the pong deadline, moves to the next ping: with a
   * ping interval shorter than the pong timeout, waiting for the deadline would stretch the ping
   * period past what the connect reply advertised, and a client watchdog would fire.
   */
  pong(conn: Connection): void {
    if (!conn.awaitingPong) return
    conn.awaitingPong = false
    const now = Date.now()
    this.counters.observe('ping_rtt_ms', now - conn.pingSentAt)
    conn.nextPingAt = conn.pingSentAt + this.options.pingIntervalMs
    if (conn.state === ConnState.Connected) this.#wheel.schedule(conn, this.#nextWake(conn, now))
  }

  /** The token expiry moved (refresh): make sure the wheel wakes for it. */
  rescheduleHeartbeat(conn: Connection): void {
    if (conn.state === ConnState.Connected) this.#wheel.schedule(conn, this.#nextWake(conn, Date.now()))
  }

  // ------------------------------------------------------------------ presence

  #schedulePresenceRefresh(): void {
    const every = Math.max(1000, Math.floor(this.options.presenceTtlMs / 3))
    this.#presenceTimer = setInterval(() => {
      for (const conn of this.connections) {
        if (conn.subs === undefined) continue
        for (const [channel, sub] of conn.subs) {
          if (sub.presence && sub.live) {
            this.engine.addPresence(channel, conn.clientInfo(sub), this.options.presenceTtlMs).catch(() => {})
          }
        }
      }
    }, every).unref()
  }

  // ------------------------------------------------------------------ control messages

  #onControl(msg: ControlMessage): void {
    switch (msg.type) {
      case 'takeover': {
        const conn = this.bySession.get(msg.session)
        if (conn !== undefined && conn.id !== msg.client) conn.close('taken_over', 'session resumed by a newer connection')
        return
      }
      case 'disconnect': {
        const code = msg.code
        for (const conn of [...this.connections]) {
          if ((msg.client !== undefined && conn.id === msg.client) || (msg.user !== undefined && conn.user === msg.user && conn.state === ConnState.Connected)) {
            conn.closeWith(code, msg.reason)
          }
        }
        return
      }
      case 'subscribe': {
        for (const conn of this.connections) {
          if (conn.user === msg.user && conn.state === ConnState.Connected) void this.#commands.serverSubscribe(conn, msg.channel)
        }
        return
      }
      case 'unsubscribe': {
        for (const conn of this.connections) {
          if (conn.user === msg.user && conn.subs?.has(msg.channel) === true) this.#commands.serverUnsubscribe(conn, msg.channel, 'kicked', 'unsubscribed by the server')
        }
        return
      }
      case 'message': {
        for (const conn of this.connections) {
          if (conn.state === ConnState.Connected && ((msg.client !== undefined && conn.id === msg.client) || (msg.user !== undefined && conn.user === msg.user))) {
            conn.send({ type: 'message', data: msg.data })
          }
        }
        return
      }
    }
  }

  // ------------------------------------------------------------------ server API

  /** Publish from the application (server side). Resolves once stored. */
  async publish(channel: string, data: unknown, opts: PublishApiOptions = {}): Promise<StreamPosition & { duplicate: boolean }> {
    parseChannel(channel)
    // Server data is trusted for size, but must still encode in both codecs (JSON and MessagePack).
    const size = measureData(data)
    const ch = this.channelOptions(channel)
    const span = this.tracing.startApiPublish(channel)
    let out: PublishOutcome
    try {
      out = await this.enginePublish(channel, data, {
        historySize: ch.historySize,
        historyTtlMs: ch.historyTtlMs,
        streamTtlMs: ch.streamTtlMs,
        size,
        ...(opts.idempotencyKey === undefined ? {} : { idempotencyKey: `api:${opts.idempotencyKey}`, idempotencyTtlMs: this.options.idempotencyTtlMs }),
      })
    } catch (err) {
      this.tracing.end(span, undefined, err)
      throw err
    }
    this.counters.inc('publishes', out.duplicate ? 'api_duplicate' : 'api')
    this.tracing.end(span, out)
    return { offset: out.offset, epoch: out.epoch, duplicate: out.duplicate }
  }

  /** History of a channel (server side). */
  async history(
    channel: string,
    opts: { since?: StreamPosition; limit?: number; reverse?: boolean; maxBytes?: number } = {},
  ): Promise<{ offset: number; epoch: string; publications: Publication[] }> {
    parseChannel(channel)
    const ch = this.channelOptions(channel)
    const page = await this.engine.history(channel, {
      stream: ch,
      limit: Math.min(opts.limit ?? ch.historySize, ch.historySize),
      ...(opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes }),
      ...(opts.since === undefined ? {} : { since: opts.since }),
      ...(opts.reverse === undefined ? {} : { reverse: opts.reverse }),
    })
    if (opts.since !== undefined && !page.continuous) throw new HoldfastError('unrecoverable_position', 'history since that position is not available')
    return { offset: page.offset, epoch: page.epoch, publications: page.publications }
  }

  presence(channel: string): ReturnType<Engine['presence']> {
    parseChannel(channel)
    return this.engine.presence(channel)
  }

  presenceStats(channel: string): ReturnType<Engine['presenceStats']> {
    parseChannel(channel)
    return this.engine.presenceStats(channel)
  }

  /** Disconnect a user's or a connection's connections on every node. */
  async disconnect(target: DisconnectTarget): Promise<void> {
    if (target.user === undefined && target.client === undefined) throw new TypeError('holdfast: disconnect needs a user or a client')
    const code = CloseCodes[target.code ?? 'kicked'].code
    await this.engine.publishControl({
      type: 'disconnect',
      ...(target.user === undefined ? {} : { user: target.user }),
      ...(target.client === undefined ? {} : { client: target.client }),
      code,
      reason: target.reason ?? 'disconnected by the server',
      node: this.options.nodeId,
    })
  }

  /** Subscribe every connection of a user to a channel, on every node (a `subscribe` push tells the client). */
  async subscribeUser(user: string, channel: string): Promise<void> {
    parseChannel(channel)
    await this.engine.publishControl({ type: 'subscribe', user, channel, node: this.options.nodeId })
  }

  async unsubscribeUser(user: string, channel: string): Promise<void> {
    parseChannel(channel)
    await this.engine.publishControl({ type: 'unsubscribe', user, channel, node: this.options.nodeId })
  }

  /**
   * Send `data` as a `message` push to a user's connections or to one connection, on every node.
   * Not stored: a connection that is not there at that moment never gets it.
   */
  async send(target: { user?: string; client?: string }, data: unknown): Promise<void> {
    if (target.user === undefined && target.client === undefined) throw new TypeError('holdfast: send needs a user or a client')
    measureData(data)
    await this.engine.publishControl({
      type: 'message',
      ...(target.user === undefined ? {} : { user: target.user }),
      ...(target.client === undefined ? {} : { client: target.client }),
      data,
      node: this.options.nodeId,
    })
  }

  /** Channels with subscribers on this node and their subscriber counts, by name. Local only: the engine keeps no channel index. */
  channels(): Array<{ channel: string; subscribers: number }> {
    const out: Array<{ channel: string; subscribers: number }> = []
    for (const name of this.hub.channels.keys()) {
      const subscribers = this.hub.subscriberCount(name)
      if (subscribers > 0) out.push({ channel: name, subscribers })
    }
    return out.sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0))
  }

  /** Options of the namespace a channel belongs to. */
  channelOptions(channel: string): ResolvedChannelOptions {
    const colon = channel.indexOf(':')
    if (colon > 0) {
      const ns = this.options.namespaces.get(channel.slice(0, colon))
      if (ns !== undefined) return ns
    }
    return this.options.defaultChannel
  }

  /** This node's registry entry. */
  nodeInfo(): NodeInfo {
    let subscriptions = 0
    for (const conn of this.connections) subscriptions += conn.subs?.size ?? 0
    return {
      id: this.options.nodeId,
      connections: this.connections.size,
      subscriptions,
      channels: this.hub.size,
      startedAt: this.#startedAt,
      updatedAt: Date.now(),
      ...(this.options.publicUrl === undefined ? {} : { url: this.options.publicUrl }),
      ...(this.#draining ? { draining: true } : {}),
    }
  }

  /** Live nodes of the fleet (from the engine's registry), with their counts. */
  nodes(): Promise<NodeInfo[]> {
    return this.engine.nodes()
  }

  async #register(): Promise<void> {
    if (this.#closed !== undefined) return
    try {
      await this.engine.registerNode(this.nodeInfo(), NODE_REGISTRY_TTL_MS)
    } catch (err) {
      this.counters.inc('engine_errors', 'registry')
      this.log?.debug({ err }, 'node registry heartbeat failed')
    }
  }

  // ------------------------------------------------------------------ drain and close

  /**
   * Drain: refuse new connections (`/readyz` turns 503 via isReady()), close the existing ones
   * with `restart` spread evenly over `drainMs` so they reconnect elsewhere without a storm, and
   * resolve when all are gone (stragglers are terminated at the deadline).
   */
  close(opts: CloseOptions = {}): Promise<void> {
    this.#closed ??= this.#close(opts.drainMs ?? this.options.drainMs)
    return this.#closed
  }

  async #close(drainMs: number): Promise<void> {
    this.#draining = true
    // A listener of our own (listen()) stops accepting at once: with uws workers sharing a port
    // (SO_REUSEPORT), new connections then go to the other workers instead of being refused here.
    this.#listener?.close()
    // Discovery stops advertising this node at once, not when its registration expires.
    this.engine.registerNode(this.nodeInfo(), NODE_REGISTRY_TTL_MS).catch(() => {})
    this.log?.info({ connections: this.connections.size, drainMs }, 'draining')
    const conns = [...this.connections]
    // Shuffle so that a slow tail is not always the same clients.
    for (let i = conns.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[conns[i], conns[j]] = [conns[j] as Connection, conns[i] as Connection]
    }
    const start = performance.now()
    const step = 20
    let next = 0
    // After a stall (a busy event loop) the schedule is behind; catching up in one burst would be
    // the very storm the drain exists to avoid, so no tick closes more than twice its share.
    const perTick = drainMs <= 0 ? conns.length : Math.max(1, Math.ceil((2 * conns.length * step) / drainMs))
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const elapsed = performance.now() - start
        const due = drainMs <= 0 ? conns.length : Math.min(conns.length, Math.ceil(((elapsed + step) / drainMs) * conns.length), next + perTick)
        for (; next < due; next++) (conns[next] as Connection).close('restart', 'node is draining')
        if (next >= conns.length) resolve()
        else setTimeout(tick, step)
      }
      tick()
    })
    // Wait for the closing handshakes, but not forever.
    const deadline = performance.now() + 2000
    while (this.connections.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const conn of [...this.connections]) {
      conn.terminate(CloseCodes.restart.code, 'drain deadline')
      this.#onClosed(conn, CloseCodes.restart.code, 'drain deadline')
    }
    this.#wheel.stop()
    this.#ws?.close()
    this.#stream?.close()
    clearInterval(this.#sweepTimer)
    if (this.#presenceTimer !== undefined) clearInterval(this.#presenceTimer)
    await this.engine.unregisterNode(this.options.nodeId).catch(() => {})
    // Webhooks of the last disconnects get their delivery (bounded) before the engine goes.
    await this.backend.close()
    if (this.#ownsEngine) await this.engine.close()
    this.log?.info('closed')
  }
}

export type { ClientMessage, Command }

function ignoreError(): void {}

/** What a connection that has connected passes for the connect command's upgrade facts: nothing. */
const CONNECTED: PendingConnect = { preAuth: undefined, req: undefined }
