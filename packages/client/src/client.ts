import { closeCodes, HoldfastError, isErrorReply, isReply, jsonClientCodec, PROTOCOL_VERSION } from '@holdfast/protocol/internal'
import type {
  ClientMessage,
  ConnectCommand,
  ConnectResult,
  HistoryResult,
  PresenceResult,
  PresenceStatsResult,
  PublishResult,
  RefreshResult,
  Reply,
  RpcResult,
  ServerMessage,
  StreamPosition,
} from '@holdfast/protocol'
import type { ClientCodec } from '@holdfast/protocol/internal'
import { backoffDelay } from './backoff.js'
import { messageOf, TypedEmitter } from './emitter.js'
import type { CallOptions, ClientEvents, HistoryOptions, RestoredCommand, SubscribeOptions } from './events.js'
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js'
import { newMessageId, Outbox, type OutboxEntry, type QueuedCommand } from './outbox.js'
import { Endpoints, type EndpointSource } from './endpoints.js'
import { PageWatcher } from './page-lifecycle.js'
import { loadMsgpack } from './msgpack-loader.js'
import { Pacer } from './pacer.js'
import type { Persistence } from './persistence.js'
import { decideReconnect } from './reconnect-policy.js'
import { isConnectResult, isSubscribeResult } from './results.js'
import { reasonFor, StateMachine, type ConnectionState, type StateReason } from './state.js'
import { Subscription, type SubscriptionHost } from './subscription.js'
import type { WebSocketProber } from './http-stream.js'
import { Transport, webSocketCarrier, type CarrierFactory, type TransportHandlers } from './transport.js'
import { Watchdog } from './watchdog.js'

type Timer = ReturnType<typeof setTimeout>

/** WebSocket attempts in a row that fail before the client tries the HTTP-streaming fallback. */
const WS_FAILURES_BEFORE_FALLBACK = 2

/**
 * The holdfast client: one logical connection that survives drops, restarts and failover.
 *
 * Guarantees kept here: subscriptions resubscribe after every reconnect from their last position
 * and deliver each publication once, in order; publish/rpc calls carry a message id, wait in a
 * bounded outbox while offline and are resent with the same id until acked, so the server's dedupe
 * makes their effect exactly-once. A call that times out after it was sent has an unknown outcome:
 * the server may or may not have performed it (a retry with a new call would be a new message).
 */
export class HoldfastClient extends TypedEmitter<ClientEvents> {
  readonly #opts: ResolvedOptions
  /** What commands are encoded with; JSON (for size estimates) until a requested MessagePack codec has loaded. */
  #codec: ClientCodec
  /** Set while the MessagePack codec loads: no socket is opened before. */
  #codecLoading: Promise<void> | undefined
  readonly #machine: StateMachine
  readonly #outbox: Outbox
  readonly #subs = new Map<string, Subscription>()
  readonly #host: SubscriptionHost
  readonly #watchdog: Watchdog

  #transport: Transport | undefined
  /** WebSocket attempts in a row that never got a connect reply (or dropped before they were stable). */
  #wsFailures = 0
  /** The HTTP-streaming fallback carried the last connection: keep it until a WebSocket probe succeeds. */
  #preferHttp = false
  /** What the current attempt (or connection) rides on. */
  #linkKind: 'ws' | 'http' | undefined
  /** The fallback's carrier, loaded the first time it is needed. */
  #httpCarrier: CarrierFactory | undefined
  /** While on the fallback: sees whether a WebSocket gets through again (loaded with the carrier). */
  #prober: WebSocketProber | undefined
  /** The connection stayed up `stableAfterMs`. */
  #stable = false
  /** The connect reply arrived on the current transport: commands may flow. */
  #ready = false
  /** Bumped whenever a connection attempt starts or ends, so async continuations of an old one are ignored. */
  #generation = 0
  #nextId = 1
  readonly #replies = new Map<number, (reply: Reply) => void>()

  readonly #endpoints: Endpoints
  #url = ''
  /** Consecutive reconnect attempts without a connection that stayed up `stableAfterMs`. */
  #attempt = 0
  /** Consecutive unauthorized / token-expired closes; two in a row stop the client. */
  #authFailures = 0
  #token: string | undefined
  #needToken = false
  #session: { id: string; token: string } | undefined
  /** The browser says the network is down: no attempts until `online`. */
  #offline = false
  /** The page is in the back/forward cache: no socket until `pageshow`. */
  #cached = false
  readonly #page = new PageWatcher({
    offline: () => this.#onOffline(),
    online: () => this.#onOnline(),
    wake: (why) => this.#wake(why),
    suspend: () => this.#onSuspend(),
    restore: () => this.#onRestore(),
  })
  /** With discovery: refreshes the endpoint list when it expires while connected. */
  #discoveryTimer: Timer | undefined
  /** Set while a health-check ping awaits its reply. */
  #healthTimer: Timer | undefined

  /** With a `storage` option: the stored outbox and positions. */
  #store: Persistence | undefined
  /** Bumped when a store is opened or closed, so a late load of an abandoned one is ignored. */
  #storeGeneration = 0
  /** Set while the stored outbox and positions are read: nothing is sent, no socket opened, before. */
  #restoring: Promise<void> | undefined
  /** Stored positions not yet claimed by a `subscribe()` of this client. */
  #storedPositions = new Map<string, StreamPosition>()

  readonly #pacer = new Pacer()
  /** Set while the outbox waits for the command budget to refill. */
  #pumpTimer: Timer | undefined
  /** Set while the outbox holds back after a temporary error, so that retries keep their order. */
  #holdTimer: Timer | undefined
  /** Consecutive rounds of temporary errors (drives the hold's backoff). */
  #retryRound = 0

  #reconnectTimer: Timer | undefined
  #connectTimer: Timer | undefined
  #stableTimer: Timer | undefined
  #refreshTimer: Timer | undefined

  /**
   * @param endpoints `ws://`/`wss://` URL(s) tried in turn; or where to discover them: the
   * `http(s)://…/discovery` URL of a holdfast node, or a function returning URLs.
   */
  constructor(endpoints: EndpointSource, options: ClientOptions = {}) {
    super()
    this.#opts = resolveOptions(endpoints, options)
    const protocol = this.#opts.protocol
    this.#codec = typeof protocol === 'object' ? protocol : jsonClientCodec
    this.#token = this.#opts.token
    const discovery = this.#opts.discovery
    this.#endpoints = new Endpoints(
      this.#opts.urls,
      discovery === undefined ? undefined : () => import('./discovery.js').then((m) => m.discover(discovery, this.#opts.discoveryTtlMs, this.#opts.connectTimeoutMs)),
      (cause, haveList) => {
        const message = `endpoint discovery failed${haveList ? ' (using the last known list)' : ''}: ${messageOf(cause)}`
        this.emit('error', new HoldfastError('internal', message, { cause, temporary: true }))
      },
    )
    this.#machine = new StateMachine((change) => this.emit('state', change))
    this.#outbox = new Outbox(
      { maxCommands: this.#opts.maxQueuedCommands, maxBytes: this.#opts.maxQueuedBytes },
      (size, bytes) => this.emit('queue', { size, bytes }),
      (entry) => {
        if (entry.key !== undefined) this.#store?.remove(entry.key)
      },
    )
    this.#watchdog = new Watchdog(
      (silent) => this.#fail(closeCodes.heartbeat_timeout.code, `no frame from the server for ${silent} ms`),
      (late) => this.#checkHealth(`the client's timers ran ${late} ms late`),
    )
    const self = this
    this.#host = {
      get connected() {
        return self.#ready
      },
      sendSubscribe: (channel, recover, onReply) => {
        const send = (token: string | undefined): void => {
          if (!this.#ready) return
          this.#command({ type: 'subscribe', channel, ...(recover === undefined ? {} : { recover }), ...(token === undefined ? {} : { token }) }, (reply) => {
            if (isErrorReply(reply)) onReply({ ok: false, error: HoldfastError.fromReply(reply.error) })
            else if (isSubscribeResult(reply.result)) {
              const r = reply.result
              this.#subRefreshIn(channel, r.expiresIn)
              onReply({ ok: true, result: { ...r, recovered: r.recovered === true, wasRecovering: r.wasRecovering === true, publications: r.publications ?? [] } })
            } else onReply({ ok: false, error: new HoldfastError('bad_request', `malformed subscribe result for ${channel}`) })
          })
        }
        // Without channel tokens the subscribe goes out at once, in order with what the
        // application sends next (a publish right after connecting comes after it).
        if (this.#opts.getSubscriptionToken === undefined) return send(undefined)
        this.#subToken(channel).then(send, (cause: unknown) => onReply({ ok: false, error: new HoldfastError('unauthorized', 'getSubscriptionToken failed', { cause, temporary: true }) }))
      },
      sendUnsubscribe: (channel) => this.#command({ type: 'unsubscribe', channel }, () => {}),
      moved: (channel, position) => this.#store?.savePosition(channel, position ?? null),
      forget: (sub) => {
        if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel)
      },
      retryDelay: (attempt, advice) =>
        advice === 'reconnect' ? Math.random() * this.#opts.restartJitterMs : this.#backoff(attempt),
    }
    this.#openStore()
  }

  get state(): ConnectionState {
    return this.#machine.state
  }

  /** The session id kept across reconnects (undefined before the first connect). */
  get sessionId(): string | undefined {
    return this.#session?.id
  }

  /** Commands waiting for an ack. */
  get queueSize(): number {
    return this.#outbox.size
  }

  /**
   * Commands restored from storage (the `queue` event's `restored`) that still wait for their ack,
   * for a UI that mounts after that event.
   */
  get restored(): readonly RestoredCommand[] {
    return this.#store?.restored ?? []
  }

  // ------------------------------------------------------------ lifecycle

  /** Connect (or connect again after `close()`). Connecting or connected: no-op. Disconnected: attempts now. */
  connect(): void {
    const state = this.state
    if (state === 'connecting' || state === 'connected') return
    if (state === 'closed') {
      this.#attempt = 0
      this.#authFailures = 0
      this.#openStore()
    }
    this.#page.start()
    if (this.#paused) return
    this.#startAttempt(reasonFor(closeCodes.normal.code, 'connect() called'))
  }

  /** Close for good: rejects every pending call with `client_closed`; removes every timer and listener. */
  close(): void {
    if (this.state === 'closed') return
    this.#shutdown(reasonFor(closeCodes.normal.code, 'close() called'))
  }

  // ------------------------------------------------------------ subscriptions

  /** Channel token refresh timers, by channel. */
  readonly #subTimers = new Map<string, ReturnType<typeof setTimeout>>()

  /** The channel token for a subscribe or sub_refresh (undefined: none needed). */
  async #subToken(channel: string): Promise<string | undefined> {
    return this.#opts.getSubscriptionToken?.(channel)
  }

  /** A channel token expires in `ms`: send a fresh one at 80% of that, while still subscribed. */
  #subRefreshIn(channel: string, ms: number | undefined): void {
    if (!(ms! > 0)) return
    clearTimeout(this.#subTimers.get(channel))
    this.#subTimers.set(channel, setTimeout(() => {
      this.#subToken(channel).then((token) => {
        // Unsubscribed meanwhile: the server answers not_subscribed, and that is the end of it.
        if (token !== undefined && this.#ready)
          this.#command({ type: 'sub_refresh', channel, token }, (reply) => {
            if (!isErrorReply(reply)) this.#subRefreshIn(channel, (reply.result as { expiresIn?: number }).expiresIn)
          })
      }, () => {})
    }, ms! * 0.8))
  }

  /**
   * The subscription to `channel`, created (and subscribed as soon as connected) if there is none.
   * `T` types its publications' data; with a `schema` (any Standard Schema: zod, valibot,
   * arktype...) each publication is checked before delivery and `T` is the schema's output.
   */
  subscribe<T = unknown>(channel: string, options: SubscribeOptions<T> = {}): Subscription<T> {
    if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('holdfast client: channel must be a non-empty string')
    let sub = this.#subs.get(channel) as Subscription<T> | undefined
    if (sub === undefined) {
      sub = new Subscription<T>(channel, this.#host)
      this.#subs.set(channel, sub as Subscription)
      this.#claimPosition(sub as Subscription)
      if (this.#ready) sub._connected()
    }
    if (options.schema !== undefined) sub._setSchema(options.schema)
    return sub
  }

  /** A position stored by an earlier page or process: the first subscribe recovers from it. */
  #claimPosition(sub: Subscription): void {
    const pos = this.#storedPositions.get(sub.channel)
    if (pos === undefined) return
    this.#storedPositions.delete(sub.channel)
    sub._restore(pos)
  }

  getSubscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.#subs.get(channel) as Subscription<T> | undefined
  }

  subscriptions(): Subscription[] {
    return [...this.#subs.values()]
  }

  // ------------------------------------------------------------ commands

  /** Publish; resolves with the server's ack once the publication is stored. Queued while offline. */
  publish<T = unknown>(channel: string, data: T, options?: CallOptions): Promise<PublishResult> {
    return this.#request<PublishResult>({ type: 'publish', channel, data, msgId: newMessageId() }, options)
  }

  /** Call a server RPC handler with a `Req`; resolves with its result data, a `Res`. Queued while offline. */
  async rpc<Req = unknown, Res = unknown>(method: string, data?: Req, options?: CallOptions): Promise<Res> {
    const cmd: QueuedCommand = data === undefined ? { type: 'rpc', method, msgId: newMessageId() } : { type: 'rpc', method, data, msgId: newMessageId() }
    const result = await this.#request<RpcResult>(cmd, options)
    return result.data as Res
  }

  presence(channel: string, options?: CallOptions): Promise<PresenceResult> {
    return this.#request<PresenceResult>({ type: 'presence', channel }, options)
  }

  presenceStats(channel: string, options?: CallOptions): Promise<PresenceStatsResult> {
    return this.#request<PresenceStatsResult>({ type: 'presence_stats', channel }, options)
  }

  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const cmd: QueuedCommand = {
      type: 'history',
      channel,
      ...(options.since === undefined ? {} : { since: options.since }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.reverse === undefined ? {} : { reverse: options.reverse }),
    }
    return this.#request<HistoryResult>(cmd, options)
  }

  #request<T>(command: QueuedCommand, options: CallOptions | undefined): Promise<T> {
    if (this.state === 'closed') {
      return Promise.reject(new HoldfastError('client_closed', 'the client is closed; call connect() first'))
    }
    const timeoutMs = options?.timeoutMs ?? this.#opts.commandTimeoutMs
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      return Promise.reject(new HoldfastError('bad_request', `timeoutMs must be a positive finite number, got ${String(timeoutMs)}`))
    }
    const target = command.type === 'rpc' ? command.method : command.channel
    if (typeof target !== 'string' || target.length === 0) {
      return Promise.reject(new HoldfastError('bad_request', `${command.type}: ${command.type === 'rpc' ? 'method' : 'channel'} must be a non-empty string`))
    }
    let bytes: number
    try {
      bytes = this.#codec.encode({ id: 1, ...command } as ClientMessage).byteLength
    } catch (cause) {
      return Promise.reject(new HoldfastError('bad_request', `${command.type}: data cannot be encoded`, { cause }))
    }
    return new Promise<T>((resolve, reject) => {
      let entry: OutboxEntry
      try {
        entry = this.#outbox.add(command, bytes, resolve as (r: unknown) => void, reject)
      } catch (err) {
        reject(err)
        return
      }
      this.#arm(entry, timeoutMs, timeoutMs)
      if (this.#opts.storage !== undefined && (this.#store !== undefined || this.#restoring !== undefined) && (command.type === 'publish' || command.type === 'rpc')) {
        const now = Date.now()
        // Written while connected: it goes out as soon as it is stored, so count it as sent now.
        entry.record = { v: 1, seq: entry.seq, createdAt: now, deadline: now + timeoutMs, ...(this.#ready ? { sentAt: now } : {}), command }
        // While the storage is still being opened, the write waits for it (and so does the send).
        this.#store?.persist(entry)
      }
      this.#pump()
    })
  }

  /** The call's overall deadline: on expiry it leaves the outbox (and storage) and rejects. */
  #arm(entry: OutboxEntry, inMs: number, timeoutMs: number): void {
    entry.deadline = setTimeout(() => {
      if (entry.wireId !== undefined) this.#replies.delete(entry.wireId)
      const sent = entry.state === 'sent' ? ' (it was sent: the server may or may not have performed it)' : ''
      this.#outbox.reject(entry, new HoldfastError('timeout', `${entry.command.type} timed out after ${timeoutMs} ms${sent}`))
    }, Math.max(0, inMs))
  }

  // ------------------------------------------------------------ storage

  /**
   * The storage code is loaded (a chunk of its own) only when a `storage` is given; then the stored
   * commands, session and positions are read before the first socket opens.
   */
  #openStore(): void {
    const storage = this.#opts.storage
    if (storage === undefined) return
    const generation = ++this.#storeGeneration
    const current = (): boolean => generation === this.#storeGeneration
    this.#restoring = import('./persistence.js')
      .then(({ Persistence }) => {
        if (!current()) return undefined
        const store = new Persistence(storage, newMessageId(), (cause, what) => this.#storageError(cause, what), {
          outbox: this.#outbox,
          idempotencyWindowMs: this.#opts.idempotencyWindowMs,
          sizeOf: (command) => this.#codec.encode({ id: 1, ...command } as ClientMessage).byteLength,
          arm: (entry, inMs, timeoutMs) => this.#arm(entry, inMs, timeoutMs),
          error: (code, message, cause) => new HoldfastError(code, message, { cause }),
          pump: () => this.#pump(),
          announce: (event) => this.emit('queue', event),
        })
        this.#store = store
        return store.start((records) => {
          if (current()) store.restore(records, false)
        })
      })
      .then(
        (restored) => {
          if (!current() || restored === undefined) return
          this.#restoring = undefined
          this.#storedPositions = restored.positions
          // The page before a reload: resume its session, so the server's dedupe scope (for an
          // anonymous client, the session) still recognises what it sent.
          this.#session ??= restored.session
          for (const sub of this.#subs.values()) this.#claimPosition(sub)
          // Calls made while the storage opened are written now, before anything is sent.
          for (const entry of this.#outbox.entries()) if (entry.key === undefined) this.#store?.persist(entry)
          this.#store?.restore(restored.records, true)
        },
        (cause: unknown) => {
          if (!current()) return
          // Without a readable storage the client still works, in memory only; the app is told.
          this.#restoring = undefined
          this.#store?.close()
          this.#store = undefined
          this.#storageError(cause, 'reading the stored queue (continuing without storage)')
          this.#pump()
        },
      )
  }

  #storageError(cause: unknown, what: string): void {
    const message = messageOf(cause)
    this.emit('error', new HoldfastError('storage_failed', `storage: ${what} failed: ${message}`, { cause }))
  }

  /**
   * Send queued commands in issue order, as far as the command budget allows. A command never
   * overtakes an older one that is still queued, whether it waits for the budget or for a retry;
   * and a retry never overtakes an older command still in flight: if that one is refused too, its
   * own retry must land first (the server may store the later one the moment it comes).
   */
  #pump(): void {
    if (!this.#ready || this.#restoring !== undefined || this.#holdTimer !== undefined || this.#pumpTimer !== undefined) return
    // Entries behind one that is still being stored wait for it (order), but their own writes start now.
    let blocked = 0
    let olderInFlight = false
    for (const entry of this.#outbox.entries()) {
      if (entry.state !== 'queued') {
        // Nothing overtakes a command that may yet be refused (see OutboxEntry.suspect).
        if (entry.suspect === true) return
        olderInFlight = true
        continue
      }
      // A retry never overtakes an older command still in flight: that one may be refused too.
      if (entry.attempt > 0 && olderInFlight) return
      if (this.#store?.durable(entry) === false) {
        if (++blocked >= this.#opts.maxBatch) return
        continue
      }
      if (blocked > 0) continue
      if (!this.#pacer.take(entry.bytes)) {
        this.#pumpTimer = setTimeout(() => {
          this.#pumpTimer = undefined
          this.#pump()
        }, this.#pacer.waitMs(entry.bytes))
        return
      }
      this.#sendEntry(entry)
    }
  }

  /** Send an outbox entry; its budget token was already taken by `#pump`. */
  #sendEntry(entry: OutboxEntry): void {
    entry.state = 'sent'
    const id = this.#nextId++
    this.#replies.set(id, (reply) => this.#onEntryReply(entry, reply))
    entry.wireId = id
    this.#transport?.send({ ...entry.command, id } as ClientMessage)
  }

  #onEntryReply(entry: OutboxEntry, reply: Reply): void {
    entry.wireId = undefined
    entry.suspect = false
    if (!this.#outbox.has(entry)) return
    if (!isErrorReply(reply)) {
      this.#retryRound = 0
      this.#outbox.resolve(entry, reply.result)
      // A retry may have been waiting for this one (see #pump).
      if (this.#outbox.size > 0) this.#pump()
      return
    }
    const err = HoldfastError.fromReply(reply.error)
    if (!err.temporary) {
      this.#outbox.reject(entry, err)
      return
    }
    // Rate limited, engine down, same msgId still in progress: the same command (same msgId) may
    // succeed later. The whole outbox holds back, so the retry keeps its place in line (the server
    // refuses the rest of a frame after a rate refusal for the same reason).
    entry.attempt++
    entry.state = 'queued'
    // The commands still in flight were sent before this refusal was known: any may be refused too.
    for (const e of this.#outbox.entries()) if (e.state === 'sent') e.suspect = true
    if (this.#holdTimer !== undefined) return
    this.#retryRound++
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined
      this.#pump()
    }, this.#backoff(this.#retryRound))
  }

  /** Send a command on the current connection with a fresh wire id; returns the id. */
  #command(
    body:
      | QueuedCommand
      | { type: 'subscribe' | 'unsubscribe'; channel: string; recover?: StreamPosition; token?: string }
      | { type: 'refresh'; token: string }
      | { type: 'sub_refresh'; channel: string; token: string }
      | { type: 'ping' },
    onReply: (reply: Reply) => void): number {
    const id = this.#nextId++
    this.#replies.set(id, onReply)
    this.#pacer.consume()
    this.#transport?.send({ ...body, id } as ClientMessage)
    return id
  }

  // ------------------------------------------------------------ connection

  #startAttempt(reason: StateReason): void {
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    const generation = ++this.#generation
    this.#machine.transition('connecting', reason)
    if (generation !== this.#generation) return
    this.#connectTimer = setTimeout(
      () => this.#fail(closeCodes.connect_timeout.code, `no connect reply within ${this.#opts.connectTimeoutMs} ms`),
      this.#opts.connectTimeoutMs,
    )
    // With discovery, the list may need fetching first (expired, or every URL of it failed).
    const resolving = this.#endpoints.refresh()
    if (resolving !== undefined) {
      void resolving.then(() => {
        if (generation === this.#generation) this.#attemptTo(generation)
      })
      return
    }
    this.#attemptTo(generation)
  }

  #attemptTo(generation: number): void {
    const url = this.#endpoints.url
    if (url === undefined) {
      this.#fail(closeCodes.abnormal.code, 'no endpoint known yet: discovery has not answered')
      return
    }
    this.#url = url
    this.emit('connecting', { url, attempt: this.#attempt })
    if (generation !== this.#generation) return
    // Positions must be known before the first subscribe, stored commands before the first send,
    // and the codec before the socket is opened.
    const waits = [this.#restoring, this.#loadCodec(), this.#loadFallback()].filter((p) => p !== undefined)
    if (waits.length > 0) {
      Promise.all(waits).then(
        () => {
          if (generation === this.#generation) this.#afterRestore(generation)
        },
        (cause: unknown) => {
          if (generation !== this.#generation) return
          const message = `cannot load the client's code: ${messageOf(cause)}`
          this.emit('error', new HoldfastError('internal', message, { cause, temporary: true }))
          this.#fail(closeCodes.abnormal.code, message)
        },
      )
      return
    }
    this.#afterRestore(generation)
  }

  /**
   * After WebSocket attempts failed twice in a row (an upgrade refused or cut by a proxy), or while
   * the fallback carries the connection: the next attempt goes over HTTP streaming. Its code is
   * loaded then.
   */
  #loadFallback(): Promise<void> | undefined {
    if (!this.#wantsHttp() || this.#httpCarrier !== undefined) return undefined
    return import('./http-stream.js').then((m) => {
      this.#httpCarrier = m.httpStreamCarrier
      this.#prober = new m.WebSocketProber(this.#opts.webSocketRetryMs)
    })
  }

  #wantsHttp(): boolean {
    return this.#opts.httpFallback && (this.#preferHttp || this.#wsFailures >= WS_FAILURES_BEFORE_FALLBACK)
  }

  /** Starts loading the MessagePack codec if it was asked for and is not here yet; a failed load is tried again next time. */
  #loadCodec(): Promise<void> | undefined {
    if (this.#opts.protocol !== 'msgpack' || this.#codec.name === 'msgpack') return undefined
    this.#codecLoading ??= loadMsgpack().then(
      (codec) => {
        this.#codec = codec
        this.#codecLoading = undefined
      },
      (err: unknown) => {
        this.#codecLoading = undefined
        throw err
      },
    )
    return this.#codecLoading
  }

  #afterRestore(generation: number): void {
    const getToken = this.#opts.getToken
    if (getToken !== undefined && (this.#needToken || this.#token === undefined)) {
      Promise.resolve()
        .then(getToken)
        .then((token) => {
          if (typeof token !== 'string') throw new TypeError(`getToken() must return a string, got ${typeof token}`)
          if (generation !== this.#generation) return
          this.#token = token
          this.#needToken = false
          this.#open(generation)
        })
        .catch((cause: unknown) => {
          if (generation !== this.#generation) return
          const message = `getToken() failed: ${messageOf(cause)}`
          this.emit('error', new HoldfastError('unauthorized', message, { cause, temporary: true }))
          // Fetching a token is a network call like any other: back off, ask again next attempt.
          this.#fail(closeCodes.abnormal.code, message)
        })
      return
    }
    this.#open(generation)
  }

  #open(generation: number): void {
    let transport: Transport
    const handlers: TransportHandlers = {
      open: () => this.#sendConnect(transport),
      heard: () => this.#watchdog.heard(),
      messages: (msgs) => {
        try {
          this.#onMessages(transport, msgs)
        } catch (cause) {
          // Listener exceptions never get here (the emitter catches them); this is a server
          // message the client could not handle. Treat it as a protocol error, never as a crash.
          const message = `cannot handle a message from the server: ${messageOf(cause)}`
          this.emit('error', new HoldfastError('bad_request', message, { cause }))
          if (this.#transport === transport) this.#fail(closeCodes.bad_request.code, message)
        }
      },
      malformed: (err) => {
        this.emit('error', err)
        if (this.#transport === transport) this.#fail(closeCodes.bad_request.code, `malformed frame from the server: ${err.message}`)
      },
      close: (code, reason) => {
        if (this.#transport !== transport) return
        this.#teardown(code, reason, false)
        this.#afterDisconnect(code, reason || 'connection closed')
      },
    }
    try {
      const http = this.#wantsHttp() ? this.#httpCarrier : undefined
      this.#linkKind = http === undefined ? 'ws' : 'http'
      transport = new Transport(http ?? webSocketCarrier(this.#opts.WebSocket), this.#url, this.#codec, this.#opts.maxBatch, handlers)
    } catch (cause) {
      const message = messageOf(cause)
      this.emit('error', new HoldfastError('bad_request', `cannot open ${this.#url}: ${message}`, { cause, temporary: true }))
      if (generation === this.#generation) this.#fail(closeCodes.abnormal.code, `cannot open ${this.#url}: ${message}`)
      return
    }
    this.#transport = transport
    this.#nextId = 1
  }

  #sendConnect(transport: Transport): void {
    const cmd: Omit<ConnectCommand, 'id'> = {
      type: 'connect',
      version: PROTOCOL_VERSION,
      ...(this.#token === undefined ? {} : { token: this.#token }),
      ...(this.#session === undefined ? {} : { session: this.#session }),
      ...(this.#opts.name === undefined ? {} : { name: this.#opts.name }),
      ...(this.#opts.data === undefined ? {} : { data: this.#opts.data }),
    }
    const id = this.#nextId++
    this.#replies.set(id, (reply) => {
      if (this.#transport !== transport) return
      if (!isErrorReply(reply)) {
        if (isConnectResult(reply.result)) this.#onConnected(reply.result)
        else this.#fail(closeCodes.bad_request.code, 'malformed connect result', false)
        return
      }
      const err = HoldfastError.fromReply(reply.error)
      this.emit('error', err)
      if (this.#transport !== transport) return
      if (err.code === 'unauthorized') this.#fail(closeCodes.unauthorized.code, err.message, false)
      else if (err.code === 'token_expired') this.#fail(closeCodes.token_expired.code, err.message, false)
      else this.#fail(err.temporary ? closeCodes.try_later.code : closeCodes.bad_request.code, `connect refused: ${err.message}`, false)
    })
    transport.send({ ...cmd, id } as ConnectCommand)
  }

  #onConnected(result: ConnectResult): void {
    clearTimeout(this.#connectTimer)
    this.#connectTimer = undefined
    if (result.session.id !== this.#session?.id || !result.resumed) this.#store?.saveSession(result.session)
    this.#session = result.session
    this.#authFailures = 0
    this.#ready = true
    // The server's bucket for this connection starts full, minus the connect command.
    this.#pacer.reset(result.limits)
    this.#pacer.consume()
    if (result.limits !== undefined) this.#transport?.limitBatch(result.limits.maxBatch)
    if (result.ping > 0) this.#watchdog.start(result.ping + this.#opts.maxServerPingDelayMs)
    // Reset the backoff only once the connection has proven itself: a server that accepts and
    // drops at once must not pull every client into a tight reconnect loop.
    this.#stable = false
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = undefined
      this.#stable = true
      this.#attempt = 0
    }, this.#opts.stableAfterMs)
    if (this.#linkKind === 'http') {
      this.#preferHttp = true
      this.#startProbing()
    }
    if (result.expiresIn !== undefined) this.#scheduleRefresh(result.expiresIn)
    this.#endpoints.connected()
    this.#scheduleDiscovery()
    // Resubscribe and flush the outbox before anyone hears "connected": a call made in a listener
    // must queue behind the older ones, not overtake them.
    for (const sub of [...this.#subs.values()]) sub._connected()
    this.#pump()
    const url = this.#url
    this.#machine.transition('connected', reasonFor(closeCodes.normal.code, result.resumed ? 'session resumed' : 'connected'))
    if (!this.#ready) return
    this.emit('connected', {
      url,
      client: result.client,
      session: result.session.id,
      resumed: result.resumed,
      node: result.node,
      ...(result.data === undefined ? {} : { data: result.data }),
    })
  }

  #onMessages(transport: Transport, msgs: ServerMessage[]): void {
    for (const msg of msgs) {
      // A disconnect push (or a listener calling close()) may retire this transport mid-frame.
      if (this.#transport !== transport) return
      this.#onMessage(transport, msg)
    }
  }

  #onMessage(transport: Transport, msg: ServerMessage): void {
    if (isReply(msg)) {
      const handler = this.#replies.get(msg.id)
      if (handler !== undefined) {
        this.#replies.delete(msg.id)
        handler(msg)
      }
      return
    }
    switch (msg.type) {
      case 'pub':
        this.#subs.get(msg.channel)?._publication(msg)
        return
      case 'join':
      case 'leave':
        this.#subs.get(msg.channel)?._joinLeave(msg.type, msg.info)
        return
      case 'message':
        this.emit('message', { data: msg.data })
        return
      case 'ping':
        transport.send({ type: 'pong' })
        return
      case 'disconnect':
        // Acted on at once: this code survives proxies that rewrite the WebSocket close code.
        this.#teardown(closeCodes.normal.code, 'disconnect received', false)
        this.#afterDisconnect(msg.code, msg.reason)
        return
      case 'subscribe': {
        const existing = this.#subs.get(msg.channel)
        if (existing !== undefined) {
          existing._serverSubscribed(msg)
          return
        }
        const sub = new Subscription(msg.channel, this.#host, { epoch: msg.epoch, offset: msg.offset })
        this.#subs.set(msg.channel, sub)
        this.emit('subscription', sub)
        sub._announce()
        return
      }
      case 'unsubscribe':
        this.#subs.get(msg.channel)?._serverUnsubscribed(msg)
        return
    }
  }

  #scheduleRefresh(expiresInMs: number): void {
    clearTimeout(this.#refreshTimer)
    this.#refreshTimer = undefined
    const getToken = this.#opts.getToken
    if (getToken === undefined) return
    const margin = Math.min(10_000, expiresInMs / 2)
    const generation = this.#generation
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined
      Promise.resolve()
        .then(getToken)
        .then(
          (token) => {
            if (generation !== this.#generation || !this.#ready) return
            this.#token = token
            this.#command({ type: 'refresh', token }, (reply) => {
              if (generation !== this.#generation) return
              if (isErrorReply(reply)) this.emit('error', HoldfastError.fromReply(reply.error))
              else {
                const expiresIn = (reply.result as RefreshResult).expiresIn
                if (expiresIn !== undefined) this.#scheduleRefresh(expiresIn)
              }
            })
          },
          (cause: unknown) => {
            if (generation !== this.#generation) return
            // Not fatal yet: when the token does expire the server closes with token_expired and
            // the refresh advice asks getToken() again before reconnecting.
            const message = messageOf(cause)
            this.emit('error', new HoldfastError('unauthorized', `getToken() failed: ${message}`, { cause, temporary: true }))
          },
        )
    }, Math.max(0, expiresInMs - margin))
  }

  /** Keep the endpoint list current while connected: refresh it when it expires (jittered, so a fleet of clients spreads out). */
  #scheduleDiscovery(): void {
    const inMs = this.#endpoints.expiresInMs()
    if (inMs === undefined) return
    this.#discoveryTimer = setTimeout(() => {
      this.#discoveryTimer = undefined
      void this.#endpoints.refresh()?.then(() => {
        if (this.#ready) this.#scheduleDiscovery()
      })
    }, inMs + Math.random() * (inMs / 10 + 500))
  }

  /** End the current connection attempt or connection locally, then follow the code's advice. */
  #fail(code: number, message: string, hard = true): void {
    if (this.state !== 'connecting' && this.state !== 'connected') return
    this.#teardown(code, message, hard)
    this.#afterDisconnect(code, message)
  }

  /** Drop the socket and everything bound to it; commands in flight go back to the queue. */
  #teardown(code: number, message: string, hard: boolean): void {
    this.#generation++
    this.#transport?.close(code, message, hard)
    this.#transport = undefined
    this.#ready = false
    this.#replies.clear()
    this.#watchdog.stop()
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#stableTimer)
    clearTimeout(this.#refreshTimer)
    clearTimeout(this.#pumpTimer)
    clearTimeout(this.#holdTimer)
    clearTimeout(this.#healthTimer)
    clearTimeout(this.#discoveryTimer)
    this.#prober?.stop()
    this.#healthTimer = undefined
    this.#discoveryTimer = undefined
    this.#connectTimer = undefined
    this.#stableTimer = undefined
    this.#refreshTimer = undefined
    this.#pumpTimer = undefined
    // A new connection has a fresh rate budget: what waited out a refusal goes out at once.
    this.#holdTimer = undefined
    for (const entry of this.#outbox.entries()) {
      entry.wireId = undefined
      entry.suspect = false
      // Unacked: resent after reconnect with the same msgId; the server's dedupe makes that safe.
      if (entry.state === 'sent') entry.state = 'queued'
    }
    for (const sub of this.#subs.values()) sub._disconnected()
  }

  #afterDisconnect(code: number, message: string): void {
    this.#countLinkOutcome(code)
    const decision = decideReconnect({
      code,
      attempt: this.#attempt,
      authFailures: this.#authFailures,
      canRefresh: this.#opts.getToken !== undefined,
      wasConnecting: this.state === 'connecting',
      maxAttempts: this.#opts.maxReconnectAttempts,
      minDelayMs: this.#opts.minReconnectDelayMs,
      maxDelayMs: this.#opts.maxReconnectDelayMs,
      restartJitterMs: this.#opts.restartJitterMs,
    })
    if (decision.action === 'stop') {
      this.#shutdown(reasonFor(code, decision.why === undefined ? message : `${message} (${decision.why})`))
      return
    }
    const reason = reasonFor(code, message)
    this.#authFailures = decision.authFailures
    if (decision.refreshToken) this.#needToken = true
    if (this.#paused) {
      this.#toDisconnected(reason, null)
      return
    }
    this.#attempt = decision.attempt
    if (decision.rotate) this.#endpoints.rotate()
    this.#toDisconnected(reason, decision.delayMs)
    if (this.state !== 'disconnected') return
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      if (this.state === 'disconnected' && !this.#paused) this.#startAttempt(reason)
    }, decision.delayMs)
  }

  /**
   * A WebSocket that never got a connect reply, or that dropped abnormally before it was stable,
   * counts towards the fallback; a fallback attempt that failed gives WebSocket its chances again
   * (the node may be down, not the proxy in the way).
   */
  #countLinkOutcome(code: number): void {
    const kind = this.#linkKind
    this.#linkKind = undefined
    if (kind === 'ws' && (this.state === 'connecting' || (code === closeCodes.abnormal.code && !this.#stable))) this.#wsFailures++
    else if (kind === 'http' && this.state === 'connecting') {
      this.#wsFailures = 0
      this.#preferHttp = false
    }
  }

  /** While on the fallback, probe WebSocket now and then; once one opens, move the connection back to WebSocket. */
  #startProbing(): void {
    const generation = this.#generation
    this.#prober?.start(
      () => ({ WebSocket: this.#opts.WebSocket, url: this.#url, subprotocol: this.#codec.subprotocol, timeoutMs: this.#opts.connectTimeoutMs }),
      () => generation === this.#generation && this.#linkKind === 'http',
      () => {
        // Reconnect over WebSocket now; the session resumes and the subscriptions recover.
        this.#preferHttp = false
        this.#wsFailures = 0
        const reason = reasonFor(closeCodes.normal.code, 'WebSocket gets through again: leaving the HTTP fallback')
        this.#teardown(closeCodes.normal.code, reason.message, false)
        this.#toDisconnected(reason, 0)
        this.#startAttempt(reason)
      },
    )
  }

  #toDisconnected(reason: StateReason, reconnectInMs: number | null): void {
    this.#machine.transition('disconnected', reason)
    this.emit('disconnected', { reason, reconnectInMs })
  }

  #shutdown(reason: StateReason): void {
    const from = this.state
    if (from === 'closed') return
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    this.#teardown(closeCodes.normal.code, 'client closed', false)
    this.#page.stop()
    this.#offline = false
    this.#cached = false
    for (const sub of this.#subs.values()) sub._closed()
    for (const t of this.#subTimers.values()) clearTimeout(t)
    this.#machine.transition('closed', reason)
    this.#outbox.rejectAll(() => new HoldfastError('client_closed', `client closed: ${reason.message}`))
    // Its locks go once the rejected commands' deletes are done: nobody adopts them meanwhile.
    this.#store?.close()
    this.#store = undefined
    this.#storeGeneration++
    this.#restoring = undefined
    if (from !== 'disconnected') this.emit('disconnected', { reason, reconnectInMs: null })
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, this.#opts.minReconnectDelayMs, this.#opts.maxReconnectDelayMs)
  }

  // ------------------------------------------------------------ the page's lifecycle (browsers)

  get #paused(): boolean {
    return this.#offline || this.#cached
  }

  /** Drop the socket now and schedule nothing: `online` / `pageshow` brings the client back. */
  #park(code: number, message: string): void {
    this.#linkKind = undefined
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    const state = this.state
    if (state === 'connecting' || state === 'connected') {
      this.#teardown(closeCodes.going_away.code, message, code === closeCodes.abnormal.code)
      this.#toDisconnected(reasonFor(code, message), null)
    }
  }

  #unpark(message: string): void {
    if (this.state === 'disconnected' && !this.#paused) this.#startAttempt(reasonFor(closeCodes.abnormal.code, message))
  }

  // Drop at once, and do not burn reconnect attempts until the network is back.
  #onOffline(): void {
    this.#offline = true
    this.#park(closeCodes.abnormal.code, 'network offline')
  }

  #onOnline(): void {
    if (!this.#offline) {
      // The network changed under a live connection (another interface, a new address): is it still there?
      this.#wake('network changed')
      return
    }
    this.#offline = false
    this.#unpark('network back online')
  }

  // A page with an open WebSocket is not kept in the back/forward cache; close it cleanly.
  #onSuspend(): void {
    this.#cached = true
    this.#park(closeCodes.going_away.code, 'page entered the back/forward cache')
  }

  #onRestore(): void {
    if (!this.#cached) return
    this.#cached = false
    this.#unpark('page restored from the back/forward cache')
  }

  /**
   * The page is back (visible, resumed, online again): whatever the throttled or stopped timers
   * missed is checked now. Connected: a ping with a short deadline. Waiting to reconnect: now.
   */
  #wake(why: string): void {
    if (this.state === 'connected') this.#checkHealth(why)
    else if (this.state === 'disconnected' && this.#reconnectTimer !== undefined && !this.#paused) this.#startAttempt(reasonFor(closeCodes.abnormal.code, why))
  }

  /** Ping the server; no reply within `healthCheckTimeoutMs` means the connection is gone. */
  #checkHealth(why: string): void {
    if (!this.#ready || this.#healthTimer !== undefined) return
    const ms = this.#opts.healthCheckTimeoutMs
    this.#healthTimer = setTimeout(() => {
      this.#healthTimer = undefined
      this.#fail(closeCodes.heartbeat_timeout.code, `${why}: no reply to a ping within ${ms} ms`)
    }, ms)
    this.#command({ type: 'ping' }, () => {
      clearTimeout(this.#healthTimer)
      this.#healthTimer = undefined
    })
  }
}
