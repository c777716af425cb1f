import { EventEmitter, once } from 'node:events'
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { CloseCodes, type ClientMessage, type CloseCodeName, type Command, type Publication, type StreamPosition } from '@holdfast/protocol'
import pino, { type Logger } from 'pino'
import { Admission } from './admission.js'
import { createAuthenticator } from './auth/authenticate.js'
import { parseChannel } from './channel-name.js'
import { CommandHandler } from './commands.js'
import type { Connection, ConnectionOwner } from './connection.js'
import { handleControl } from './control-messages.js'
import { Counters } from './counters.js'
import { drainConnections } from './drain.js'
import type { Engine, EngineHandler, NodeInfo, PublishOutcome } from './engine/engine.js'
import { MemoryEngine } from './engine/memory-engine.js'
import { Heartbeats } from './heartbeats.js'
import { createHookRunner } from './hooks.js'
import { Hub } from './hub.js'
import { Lifecycle, type LifecycleEvents } from './lifecycle.js'
import { KeyedBuckets } from './limits/keyed-buckets.js'
import { guardHttpServer, httpServerOptions } from './limits/http-guard.js'
import { Metrics } from './metrics.js'
import type { NodeContext } from './node-context.js'
import { channelOptionsOf, FRAME_OVERHEAD, resolveOptions, type HoldfastOptions, type ResolvedChannelOptions, type ResolvedOptions } from './options.js'
import { measureData } from './payload.js'
import { Presence } from './presence.js'
import { RpcRouter, type RpcHandler } from './rpc-router.js'
import { GatewayBackend } from './backend/gateway-backend.js'
import { createChannelTokenVerifier } from './auth/channel-token.js'
import { SessionSigner } from './session.js'
import { closeSlowConsumer } from './slow-consumer.js'
import { publishToEngine, readHistory, streamOptions } from './streams.js'
import { Subscriptions } from './subscriptions.js'
import { Tracing } from './tracing.js'
import { rejectUpgrade, WsTransport } from './transport/ws-transport.js'
import { HttpStreamTransport } from './transport/http-stream-transport.js'
import { refusal, type UpgradeRequest } from './transport/transport.js'

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

export type GatewayEvents = LifecycleEvents

/**
 * The gateway node: the wiring of its parts (see node-context.ts for the map) and the public API.
 * `createHoldfast()` returns one, typed as `Holdfast`.
 */
export class Gateway extends EventEmitter<GatewayEvents> {
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
  readonly connections = new Set<Connection>()
  /** session id → the connection holding it on this node. */
  readonly bySession = new Map<string, Connection>()
  /** What the node's parts share (node-context.ts). */
  readonly #ctx: NodeContext
  readonly #ownsEngine: boolean
  readonly #heartbeats: Heartbeats
  readonly #presence: Presence
  readonly #admission: Admission
  /** The drain deadline dropped a connection: recorded closed now (its socket reports the close later). */
  readonly #drainTerminated: (conn: Connection) => void
  /** Created on first use, so a `uws` gateway never builds a ws server. */
  #ws: WsTransport | undefined
  /** The HTTP-streaming fallback, created on its first request. */
  #stream: HttpStreamTransport | undefined
  /** The engine reported itself unavailable since it last was ready (for the "ready again" log line). */
  #engineWasDown = false
  /** What listen() opened: closed last by close(). */
  #listener: { close(): void } | undefined
  #started: Promise<void>
  #startError: unknown = undefined
  #draining = false
  #closed: Promise<void> | undefined
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
    this.#ownsEngine = o.engine === undefined
    this.engine = o.engine ?? new MemoryEngine()
    this.sessions = new SessionSigner(o.sessionSecret, o.sessionMaxAgeMs)
    // The hub is part of the context the subscriptions are built with; its gap callback reaches
    // them once they exist (no publication arrives before the engine starts, below).
    let subscriptions: Subscriptions | undefined
    this.hub = new Hub(
      this.engine,
      {
        onInsufficientState: (conn, channel) => subscriptions?.insufficientState(conn, channel),
        onStalled: (conn) => closeSlowConsumer(this.counters, conn),
        onMember: (conn, channel, joined) => this.backend.onMember(conn, channel, joined),
        onLocalChannel: (channel, occupied) => this.backend.onLocalChannel(channel, occupied),
      },
      { maxReplyBytes: o.maxReplyBytes },
    )
    this.metrics = new Metrics(this, { processMetrics: o.processMetrics })
    this.backend = new GatewayBackend(this, { proxy: o.proxy, webhooks: o.webhooks })
    this.tracing = new Tracing(o.tracer)
    const auth = createAuthenticator(o)
    const channelOptions = (channel: string): ResolvedChannelOptions => channelOptionsOf(o, channel)
    const ctx: NodeContext = {
      options: o,
      counters: this.counters,
      metrics: this.metrics,
      log: this.log,
      tracing: this.tracing,
      engine: this.engine,
      hub: this.hub,
      sessions: this.sessions,
      rpc: this.rpc,
      messageIds: new KeyedBuckets((o.maxMessageIdsPerUser * 1000) / o.idempotencyTtlMs, o.maxMessageIdsPerUser),
      connections: this.connections,
      bySession: this.bySession,
      expiryGraceMs: auth.expiryGraceMs,
      channelOptions,
      authenticate: auth.authenticate,
      publish: (channel, data, opts) => publishToEngine(ctx, channel, data, opts),
      backend: this.backend,
      channelToken: o.channelTokens === undefined ? undefined : createChannelTokenVerifier(o.channelTokens),
      hook: createHookRunner(this.counters, this.log),
    }
    this.#ctx = ctx
    this.#heartbeats = new Heartbeats(ctx)
    this.#presence = new Presence(ctx)
    subscriptions = new Subscriptions(ctx, this.#presence)
    const subs = subscriptions
    const lifecycle = new Lifecycle(ctx, this.#heartbeats, subs, this)
    const commands = new CommandHandler(ctx, { heartbeats: this.#heartbeats, subscriptions: subs, lifecycle })
    // One owner for every connection (no closures per socket): frames go to the commands, the
    // close to admission (the address's slot) and the lifecycle.
    const owner: ConnectionOwner = {
      maxQueueBytes: o.maxQueueBytes,
      rates: o,
      log: ctx.log,
      counters: this.counters,
      onSlowConsumer: (conn) => closeSlowConsumer(this.counters, conn),
      connectionFrame: (conn, data) => commands.onFrame(conn, data),
      connectionClosed: (conn, code, reason) => {
        this.#admission.released(conn)
        lifecycle.closed(conn, code, reason)
      },
    }
    this.#admission = new Admission(ctx, {
      owner,
      heartbeats: this.#heartbeats,
      started: () => this.#started,
      closing: () => this.#draining || this.#closed !== undefined,
    })
    this.#drainTerminated = (conn) => lifecycle.closed(conn, CloseCodes.restart.code, 'drain deadline')
    this.#sweepTimer = setInterval(() => {
      const now = performance.now()
      this.#admission.sweep(now)
      ctx.messageIds.sweep(now)
      void this.#register()
    }, NODE_REGISTRY_EVERY_MS).unref()
    const handler: EngineHandler = {
      onPublication: (channel, pub) => {
        this.hub.onPublication(channel, pub)
        this.metrics.delivery.delivered(channel, pub)
      },
      onJoinLeave: (channel, kind, info) => this.hub.onJoinLeave(channel, kind, info),
      onControl: (msg) => handleControl(ctx, subs, msg),
      onStateChange: (ready) => {
        // "Ready" right after the start is not news: only a comeback after an outage is.
        if (!ready || this.#engineWasDown) this.log?.warn({ ready }, ready ? 'engine ready again' : 'engine unavailable')
        this.#engineWasDown = !ready
        // Live feeds may have missed publications while the engine was away: compare every
        // channel's stream top with what this node delivered, and send the gapped ones to recovery.
        if (ready) void this.hub.resync(channelOptions)
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
        admit: (pending) => this.#admission.admit(pending),
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
    this.#admission.admit({
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
    this.#stream ??= new HttpStreamTransport({ maxFrameBytes: this.options.maxPayload + FRAME_OVERHEAD, admit: (p) => this.#admission.admit(p) })
    return this.#stream.handle(req, res, path)
  }

  /** Verify a token as a connect command would (the authenticate hook, else the JWT verifier). */
  authenticate(token: string | undefined, req?: UpgradeRequest): ReturnType<NodeContext['authenticate']> {
    return this.#ctx.authenticate(token, req)
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
      out = await this.#ctx.publish(channel, data, {
        ...streamOptions(ch, size),
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
    return readHistory(this.#ctx, channel, opts)
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
    return this.#ctx.channelOptions(channel)
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
    await drainConnections(this.connections, drainMs, this.#drainTerminated)
    this.#heartbeats.stop()
    this.#ws?.close()
    this.#stream?.close()
    clearInterval(this.#sweepTimer)
    this.#presence.stop()
    await this.engine.unregisterNode(this.options.nodeId).catch(() => {})
    // Webhooks of the last disconnects get their delivery (bounded) before the engine goes.
    await this.backend.close()
    if (this.#ownsEngine) await this.engine.close()
    this.log?.info('closed')
  }
}

export type { ClientMessage, Command }

function ignoreError(): void {}
