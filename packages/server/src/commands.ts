import {
  CloseCodes,
  HoldfastError,
  PROTOCOL_VERSION,
  type Command,
  type ConnectCommand,
  type ConnectResult,
  type HistoryCommand,
  type PublishCommand,
  type RpcCommand,
  type StreamPosition,
} from '@holdfast/protocol'
import type { Span } from '@opentelemetry/api'
import type { AuthResult } from './auth/types.js'
import { checkChannelUser, parseChannel } from './channel-name.js'
import { measureData } from './payload.js'
import { checkChannelData } from './schema.js'
import { ConnState, type Connection, type PendingConnect } from './connection.js'
import type { Heartbeats } from './heartbeats.js'
import { connectionInfo } from './hooks.js'
import { TokenBucket } from './limits/token-bucket.js'
import type { Lifecycle } from './lifecycle.js'
import type { NodeContext } from './node-context.js'
import type { ReadKind, ResolvedChannelOptions } from './options.js'
import { readHistory, streamOptions } from './streams.js'
import { readableChannel, type Subscriptions } from './subscriptions.js'
import { RpcRouter } from './rpc-router.js'
import { ConnectRefused } from './backend/refusal.js'

/** What a connection that has connected passes for the connect command's upgrade facts: nothing. */
const CONNECTED: PendingConnect = { preAuth: undefined, req: undefined }

/** The parts of the node that commands act through, besides the node context. */
export interface CommandDeps {
  readonly heartbeats: Heartbeats
  readonly subscriptions: Subscriptions
  readonly lifecycle: Lifecycle
}

const MAX_MSG_ID = 128
/** Commands whose effects must apply in the order sent; the rest (rpc, reads) run concurrently. */
const ORDERED: ReadonlySet<Command['type']> = new Set(['connect', 'subscribe', 'unsubscribe', 'publish', 'refresh', 'sub_refresh'])
/**
 * Reads run one at a time per connection, in a lane of their own: each is admitted only when the
 * replies before it are no longer buffered (see #admitRead), so pipelined reads cannot pile up
 * replies the client does not take.
 */
const READS: ReadonlySet<Command['type']> = new Set(['history', 'presence', 'presence_stats'])

/**
 * Refusals a flood meets thousands of times a second, each built once: constructing an error
 * captures a stack, which cost more than the rest of a refusal.
 */
const REFUSED = {
  bytes: new HoldfastError('rate_limited', 'inbound byte rate exceeded; slow down'),
  commands: new HoldfastError('rate_limited', 'command rate limit exceeded; slow down'),
  replies: new HoldfastError('rate_limited', 'earlier replies are still unread, or read too fast; read them before asking for more'),
} as const

/**
 * Decodes a connection's frames and runs its commands. Every failure becomes an error reply with a
 * code, or a close with a code; nothing a client sends can throw past this class.
 */
export class CommandHandler {
  readonly #ctx: NodeContext
  readonly #deps: CommandDeps
  /** The refusal of a message id past the user's budget (built once, as REFUSED). */
  #idsRefused: HoldfastError | undefined

  constructor(ctx: NodeContext, deps: CommandDeps) {
    this.#ctx = ctx
    this.#deps = deps
  }

  /** A frame from the client (its transport's sink is the connection). */
  onFrame(conn: Connection, data: Uint8Array | string): void {
    if (conn.state === ConnState.Closed) return
    const pending = conn.pending ?? CONNECTED
    const gw = this.#ctx
    const size = typeof data === 'string' ? data.length : data.byteLength
    gw.counters.bytesIn += size
    let messages
    try {
      messages = conn.codec.decodeCommands(data, { maxBatch: gw.options.maxBatch })
      gw.counters.messagesIn += messages.length
    } catch (err) {
      gw.counters.inc('bad_frames')
      conn.log?.info({ err: (err as Error).message }, 'bad frame')
      conn.close('bad_request', (err as Error).message)
      return
    }
    const now = performance.now()
    // Bytes are metered per frame: a frame past the byte budget is refused whole, every command
    // in it, the same way as commands past the command rate.
    // A frame holding only the pong a ping asked for is free, as that pong is below: an idle
    // connection then needs no rate buckets (Connection.releaseIdle drops them once full).
    const askedPong = messages.length === 1 && messages[0]?.type === 'pong' && conn.awaitingPong
    let limited: 'bytes' | 'commands' | undefined = askedPong || conn.bytes.take(now, size) ? undefined : 'bytes'
    // Once one command of a frame is refused for rate, the rest of the frame is refused too:
    // a later command must not run ahead of an earlier one the client will retry.
    for (const msg of messages) {
      if (msg.type === 'pong' && conn.awaitingPong) {
        // The one pong a ping asks for is free: heartbeats must not starve behind the rate limit.
        this.#deps.heartbeats.pong(conn)
        continue
      }
      // The connect command is not counted: the budget the connect reply advertises is the whole
      // bucket, so a client that mirrors it from the reply on is never one command ahead.
      if (limited === undefined && msg.type !== 'connect' && !conn.bucket.take(now)) limited = 'commands'
      if (limited !== undefined) {
        gw.counters.inc('rate_limited', limited)
        if (++conn.rateRejects > gw.options.commandRate.burst) {
          // A flood goes on during a closing handshake: drop it soon rather than parse it for 30 s.
          conn.closeAndDrop(CloseCodes.rate_limited.code, limited === 'bytes' ? 'inbound byte rate exceeded' : 'command rate limit exceeded', false)
          return
        }
        // An unsolicited pong has no id to answer; it only counts.
        if (msg.type !== 'pong') this.#fail(conn, msg.id, REFUSED[limited])
        continue
      }
      conn.rateRejects = 0
      // A pong nobody asked for costs a command token and does nothing else.
      if (msg.type === 'pong') continue
      // A malformed command whose id could be read (a field missing or of the wrong kind, an
      // unknown type) is answered, in any state: it does nothing, so it holds nothing up.
      if (msg.type === 'invalid') {
        conn.log?.info({ err: msg.error.message }, 'malformed command')
        this.#fail(conn, msg.id, msg.error)
        continue
      }
      if (msg.type === 'connect') {
        if (conn.state !== ConnState.Handshake || conn.busy) {
          conn.close('bad_request', 'duplicate connect')
          return
        }
      } else if (conn.state === ConnState.Handshake) {
        // Commands pipelined behind a connect in flight wait for it; anything else is a violation.
        if (!conn.busy) {
          conn.close('bad_request', `${msg.type} before connect`)
          return
        }
        ;(conn.inbox ??= []).push(msg)
        continue
      }
      if (ORDERED.has(msg.type)) {
        if (conn.busy) (conn.inbox ??= []).push(msg)
        else void this.#runOrdered(conn, msg, pending)
      } else if (READS.has(msg.type)) {
        if (conn.readBusy) (conn.readInbox ??= []).push(msg)
        else void this.#runReads(conn, msg, pending)
      } else {
        void this.#run(conn, msg, pending)
      }
    }
  }

  async #runOrdered(conn: Connection, first: Command, pending: PendingConnect): Promise<void> {
    conn.busy = true
    let cmd: Command | undefined = first
    while (cmd !== undefined) {
      await this.#run(conn, cmd, pending)
      cmd = conn.inbox?.shift()
      if (conn.state === ConnState.Closed) break
    }
    conn.inbox = undefined
    conn.busy = false
  }

  async #runReads(conn: Connection, first: Command, pending: PendingConnect): Promise<void> {
    conn.readBusy = true
    let cmd: Command | undefined = first
    while (cmd !== undefined) {
      await this.#run(conn, cmd, pending)
      cmd = conn.readInbox?.shift()
      if (conn.state === ConnState.Closed) break
    }
    conn.readInbox = undefined
    conn.readBusy = false
  }

  /**
   * A read is refused while the replies before it are still buffered (the client must take them
   * first), and past a reply rate of maxReplyBytes per second (burst: two pages): the socket's
   * kernel buffers take megabytes that nobody may ever read, and each page costs the node its
   * encoding.
   */
  #admitRead(conn: Connection): void {
    const gw = this.#ctx
    const max = gw.options.maxReplyBytes
    const now = performance.now()
    const rate = (conn.replies ??= new TokenBucket(max, 2 * max, now))
    if (conn.replyBacklog() < max && rate.tokens(now) > 0) return
    gw.counters.inc('rate_limited', 'replies')
    throw REFUSED.replies
  }

  async #run(conn: Connection, cmd: Command, pending: PendingConnect): Promise<void> {
    const gw = this.#ctx
    const started = performance.now()
    const span = gw.tracing.startCommand(conn, cmd)
    try {
      const result = await this.#dispatch(conn, cmd, pending, span)
      if (result !== undefined && conn.state !== ConnState.Closed) {
        const bytes = conn.reply({ id: cmd.id, result })
        if (READS.has(cmd.type)) conn.replies?.spend(performance.now(), bytes)
      }
      gw.tracing.end(span, result)
    } catch (err) {
      gw.tracing.end(span, undefined, err)
      this.#fail(conn, cmd.id, err)
    }
    gw.counters.observe('command_ms', performance.now() - started, cmd.type)
  }

  #fail(conn: Connection, id: number, err: unknown): void {
    if (conn.state === ConnState.Closed) return
    let e: HoldfastError
    if (err instanceof HoldfastError) e = err
    else {
      this.#ctx.log?.error({ err, client: conn.id, trace: conn.traceId }, 'command failed')
      e = new HoldfastError('internal', 'internal error')
    }
    this.#ctx.counters.inc('command_errors', e.code)
    conn.reply({ id, error: e.toReply() })
  }

  /** Runs one command; resolves with the result to reply, or undefined when the handler replied itself. */
  #dispatch(conn: Connection, cmd: Command, pending: PendingConnect, span: Span | undefined): Promise<object | undefined> | object | undefined {
    switch (cmd.type) {
      case 'connect':
        return this.#connect(conn, cmd, pending)
      case 'subscribe':
        return this.#deps.subscriptions
          .subscribe(
            conn,
            cmd.channel,
            cmd.recover,
            (result) => {
              this.#ctx.tracing.subscribed(span, result)
              conn.reply({ id: cmd.id, result })
            },
            false,
            cmd.data,
            cmd.token,
          )
          .then(() => undefined)
      case 'unsubscribe':
        parseChannel(cmd.channel)
        if (!this.#deps.subscriptions.unsubscribe(conn, cmd.channel, undefined, '')) throw new HoldfastError('not_subscribed', `not subscribed to ${cmd.channel}`)
        return {}
      case 'publish':
        return this.#publish(conn, cmd)
      case 'rpc':
        return this.#rpc(conn, cmd, span)
      case 'presence':
        return this.#presence(conn, cmd.channel, false)
      case 'presence_stats':
        return this.#presence(conn, cmd.channel, true)
      case 'history':
        return this.#history(conn, cmd)
      case 'ping':
        return {}
      case 'refresh':
        return this.#refresh(conn, cmd.token)
      case 'sub_refresh':
        return this.#deps.subscriptions.refreshToken(conn, cmd.channel, cmd.token)
    }
  }

  // ---------------------------------------------------------------- connect and refresh

  async #connect(conn: Connection, cmd: ConnectCommand, pending: PendingConnect): Promise<undefined> {
    const gw = this.#ctx
    if (cmd.version !== PROTOCOL_VERSION) {
      conn.close('unsupported_version', `protocol version ${cmd.version} is not supported (server speaks ${PROTOCOL_VERSION})`)
      return undefined
    }
    let auth: AuthResult
    const proxy = gw.backend.proxy
    const proxied = proxy?.has('connect') === true
    try {
      if (proxy !== undefined && pending.req !== undefined) proxy.keepHeaders(conn, pending.req.headers)
      auth =
        proxy !== undefined && proxied
          ? await proxy.connect(conn, cmd.token, cmd.data)
          : cmd.token === undefined && pending.preAuth !== undefined
            ? pending.preAuth
            : await gw.authenticate(cmd.token, pending.req)
    } catch (err) {
      if (err instanceof ConnectRefused) {
        conn.log?.info({ close: err.close, reason: err.message }, 'backend refused the connect')
        if (typeof err.close === 'number') conn.closeWith(err.close, err.message)
        else conn.close(err.close, err.message)
        return undefined
      }
      const e = err instanceof HoldfastError ? err : new HoldfastError('unauthorized', 'authentication failed', { cause: err })
      // Counted as a rejection when the connection closes (gateway #onClosed), like every handshake failure.
      if (!(err instanceof HoldfastError)) gw.log?.error({ err, client: conn.id, trace: conn.traceId }, 'authenticate hook failed')
      else conn.log?.info({ code: e.code, reason: e.message }, 'authentication failed')
      conn.close(e.code === 'token_expired' ? 'token_expired' : 'unauthorized', e.message)
      return undefined
    }
    pending.req = undefined
    pending.preAuth = undefined
    conn.pending = undefined
    if (conn.state === ConnState.Closed) return undefined
    // The verifier already allowed for clock skew; the grace keeps that allowance here too.
    const expiresAt = auth.expiresAt === undefined ? 0 : auth.expiresAt + (proxied ? 0 : gw.expiryGraceMs)
    if (expiresAt !== 0 && expiresAt <= Date.now()) {
      conn.close('token_expired', 'token expired')
      return undefined
    }
    conn.user = auth.user
    conn.info = auth.info
    // A backend-given expiry is refreshed by the node through the backend, before it passes.
    conn.expiresAt = proxied && expiresAt !== 0 ? gw.backend.startExpiry(conn, expiresAt) : expiresAt
    let resumed = false
    let session: { id: string; token: string }
    if (cmd.session !== undefined && gw.sessions.verify(cmd.session.id, conn.user, cmd.session.token)) {
      // Resumed under a fresh token: a resume token is good for sessionMaxAgeMs from its issue.
      session = { id: cmd.session.id, token: gw.sessions.sign(cmd.session.id, conn.user) }
      resumed = true
    } else {
      session = gw.sessions.issue(conn.user)
    }
    conn.session = session.id
    const result: ConnectResult = {
      client: conn.id,
      session,
      resumed,
      version: PROTOCOL_VERSION,
      node: gw.options.nodeId,
      ping: gw.options.pingIntervalMs,
      limits: {
        commandsPerSecond: gw.options.commandRate.perSecond,
        commandBurst: gw.options.commandRate.burst,
        bytesPerSecond: gw.options.inboundByteRate.perSecond,
        bytesBurst: gw.options.inboundByteRate.burst,
        maxPayload: gw.options.maxPayload,
        maxBatch: gw.options.maxBatch,
      },
    }
    if (auth.expiresAt !== undefined && !(proxied && proxy?.has('refresh') === true)) result.expiresIn = auth.expiresAt - Date.now()
    conn.reply({ id: cmd.id, result })
    this.#deps.lifecycle.connected(conn, resumed)
    // Channels granted by the token (`channels` claim) are subscribed by the server, announced
    // with `subscribe` pushes after the connect reply.
    if (auth.channels !== undefined) for (const channel of auth.channels) await this.#deps.subscriptions.serverSubscribe(conn, channel)
    return undefined
  }

  async #refresh(conn: Connection, token: string): Promise<object | undefined> {
    const gw = this.#ctx
    const proxy = gw.backend.proxy
    if (proxy?.has('refresh') === true && proxy.has('connect')) {
      const { expiresAt } = await proxy.refresh(conn)
      conn.expiresAt = expiresAt === undefined ? 0 : gw.backend.startExpiry(conn, expiresAt)
      this.#deps.heartbeats.reschedule(conn)
      return expiresAt === undefined ? {} : { expiresIn: expiresAt - Date.now() }
    }
    let auth: AuthResult
    try {
      auth = await gw.authenticate(token, undefined)
    } catch (err) {
      if (err instanceof HoldfastError && (err.code === 'token_expired' || err.code === 'unauthorized')) throw err
      throw new HoldfastError('unauthorized', 'token refresh failed', { cause: err })
    }
    // A valid token of someone else does not change who the connection is: refused like an
    // invalid one, and the connection keeps its identity and its current expiry.
    if (auth.user !== conn.user) throw new HoldfastError('unauthorized', 'the token belongs to another user')
    conn.expiresAt = auth.expiresAt === undefined ? 0 : auth.expiresAt + gw.expiryGraceMs
    this.#deps.heartbeats.reschedule(conn)
    return auth.expiresAt === undefined ? {} : { expiresIn: auth.expiresAt - Date.now() }
  }

  // ---------------------------------------------------------------- channels

  /**
   * Reads (history, presence, presence stats) show what a subscription would: they pass the same
   * checks as subscribe (user list, allowSubscribe, then `canRead`, which defaults to
   * `canSubscribe`). A connection subscribed to the channel already passed them.
   */
  async #authorizeRead(conn: Connection, channel: string, read: ReadKind): Promise<ResolvedChannelOptions> {
    const gw = this.#ctx
    const opts = readableChannel(gw, conn, channel)
    if (conn.subs?.get(channel)?.live === true) return opts
    if (!opts.allowSubscribe) throw new HoldfastError('permission_denied', 'clients may not read this namespace')
    const o = gw.options
    const ok =
      o.canRead !== undefined
        ? await o.canRead({ client: connectionInfo(conn), channel, read })
        : o.canSubscribe !== undefined
          ? await o.canSubscribe({ client: connectionInfo(conn), channel })
          : true
    if (!ok) throw new HoldfastError('permission_denied', `${read} refused`)
    return opts
  }

  // ---------------------------------------------------------------- publish and rpc

  /** A well-formed message id, within its user's budget of ids remembered at once. */
  #checkMsgId(conn: Connection, msgId: string): void {
    if (msgId.length === 0 || msgId.length > MAX_MSG_ID) throw new HoldfastError('bad_request', `msgId must be 1-${MAX_MSG_ID} characters`)
    const gw = this.#ctx
    if (!gw.messageIds.take(dedupeScope(conn), performance.now())) {
      gw.counters.inc('limit_exceeded', 'message_ids')
      throw (this.#idsRefused ??= new HoldfastError(
        'limit_exceeded',
        `at most ${gw.options.maxMessageIdsPerUser} message ids per user within ${gw.options.idempotencyTtlMs} ms; slow down`,
        { temporary: true },
      ))
    }
  }

  /** The data's encoded size, or the refusal (counted) when it is too large or cannot be delivered. */
  #measure(data: unknown): number {
    try {
      return measureData(data, this.#ctx.options.maxPayload)
    } catch (err) {
      if (err instanceof HoldfastError && err.code === 'payload_too_large') this.#ctx.counters.inc('payload_too_large')
      throw err
    }
  }


  async #publish(conn: Connection, cmd: PublishCommand): Promise<object> {
    const gw = this.#ctx
    this.#checkMsgId(conn, cmd.msgId)
    const name = parseChannel(cmd.channel)
    const opts = gw.channelOptions(cmd.channel)
    if (!opts.allowPublish) throw new HoldfastError('not_available', 'clients may not publish to this namespace')
    checkChannelUser(name, conn.user)
    const size = this.#measure(cmd.data)
    if (gw.options.channelSchemas[name.namespace] !== undefined) await checkChannelData(gw.options.channelSchemas, name.namespace, cmd.data)
    if (gw.options.canPublish !== undefined) {
      const ok = await gw.options.canPublish({ client: connectionInfo(conn), channel: cmd.channel, data: cmd.data })
      if (!ok) throw new HoldfastError('permission_denied', 'publish refused')
    }
    if (gw.backend.proxy?.covers('publish', cmd.channel) === true) return this.#proxiedPublish(conn, cmd, opts)
    let out
    try {
      out = await gw.publish(cmd.channel, cmd.data, {
        ...streamOptions(opts, size),
        idempotencyKey: dedupeKey('pub', conn, cmd.msgId),
        idempotencyTtlMs: gw.options.idempotencyTtlMs,
        info: conn.clientInfo(),
      })
    } catch (err) {
      throw err instanceof HoldfastError ? err : new HoldfastError('engine_unavailable', 'engine unavailable', { cause: err })
    }
    gw.counters.inc('publishes', out.duplicate ? 'duplicate' : 'client')
    const onPublish = gw.options.onPublish
    if (onPublish !== undefined && !out.duplicate) gw.hook('onPublish', () => onPublish(connectionInfo(conn), cmd.channel, cmd.data), conn)
    return out.duplicate ? { offset: out.offset, epoch: out.epoch, duplicate: true } : { offset: out.offset, epoch: out.epoch }
  }

  /**
   * A publish the backend allows, replaces or refuses. The outcome of a stored publication is kept
   * under the message id, so a retry is answered from it without asking the backend again.
   */
  async #proxiedPublish(conn: Connection, cmd: PublishCommand, opts: ResolvedChannelOptions): Promise<object> {
    const gw = this.#ctx
    const key = dedupeKey('pub', conn, cmd.msgId)
    const ttl = gw.options.idempotencyTtlMs
    const claim = await this.#claim(`px:${key}`, ttl)
    if (claim.state === 'done') {
      gw.counters.inc('publishes', 'duplicate')
      return { ...(claim.result as StreamPosition), duplicate: true }
    }
    if (claim.state === 'pending') throw new HoldfastError('in_progress', 'this publish is still being handled; retry later')
    let out
    try {
      const verdict = await (gw.backend.proxy as NonNullable<typeof gw.backend.proxy>).publish(conn, cmd.channel, cmd.data)
      const data = Object.hasOwn(verdict, 'data') ? verdict.data : cmd.data
      const size = this.#measure(data)
      try {
        out = await gw.publish(cmd.channel, data, { ...streamOptions(opts, size), idempotencyKey: key, idempotencyTtlMs: ttl, info: conn.clientInfo() })
      } catch (err) {
        throw err instanceof HoldfastError ? err : new HoldfastError('engine_unavailable', 'engine unavailable', { cause: err })
      }
    } catch (err) {
      await gw.engine.releaseIdempotent(`px:${key}`).catch(() => {})
      throw err
    }
    await gw.engine.completeIdempotent(`px:${key}`, { offset: out.offset, epoch: out.epoch }, ttl).catch(() => {})
    gw.counters.inc('publishes', out.duplicate ? 'duplicate' : 'client')
    return out.duplicate ? { offset: out.offset, epoch: out.epoch, duplicate: true } : { offset: out.offset, epoch: out.epoch }
  }

  async #claim(key: string, ttl: number): ReturnType<NodeContext['engine']['claimIdempotent']> {
    try {
      return await this.#ctx.engine.claimIdempotent(key, ttl)
    } catch (err) {
      throw err instanceof HoldfastError ? err : new HoldfastError('engine_unavailable', 'engine unavailable', { cause: err })
    }
  }

  /**
   * An RPC no `onRpc` handler serves, answered by the backend. Its outcome, an error included, is
   * kept under the message id: a retry gets it without a second call. A backend failure keeps
   * nothing (the retry calls again: the backend sees an RPC at least once).
   */
  async #proxiedRpc(conn: Connection, cmd: RpcCommand): Promise<object> {
    const gw = this.#ctx
    if (!RpcRouter.validName(cmd.method)) throw new HoldfastError('method_not_found', `no RPC method "${cmd.method.slice(0, 128)}"`)
    const key = `px:${dedupeKey('rpc', conn, cmd.msgId)}`
    const ttl = gw.options.idempotencyTtlMs
    const claim = await this.#claim(key, ttl)
    if (claim.state === 'pending') throw new HoldfastError('in_progress', 'this RPC is still running; retry later')
    let outcome: { data?: unknown; error?: { code: ReturnType<HoldfastError['toReply']>['code']; message: string } }
    if (claim.state === 'done') outcome = claim.result as typeof outcome
    else {
      try {
        const data = await (gw.backend.proxy as NonNullable<typeof gw.backend.proxy>).rpc(conn, cmd.method, cmd.data)
        outcome = data === undefined ? {} : { data }
      } catch (err) {
        if (!(err instanceof HoldfastError) || err.temporary) {
          await gw.engine.releaseIdempotent(key).catch(() => {})
          throw err
        }
        outcome = { error: { code: err.wireCode, message: err.message } }
      }
      await gw.engine.completeIdempotent(key, outcome, ttl).catch(() => {})
      gw.counters.inc('rpcs')
    }
    if (outcome.error !== undefined) throw HoldfastError.fromReply({ ...outcome.error, temporary: false })
    return outcome.data === undefined ? {} : { data: outcome.data }
  }

  async #rpc(conn: Connection, cmd: RpcCommand, span: Span | undefined): Promise<object> {
    const gw = this.#ctx
    this.#checkMsgId(conn, cmd.msgId)
    this.#measure(cmd.data)
    const found = gw.rpc.find(cmd.method)
    if (found === undefined && gw.backend.proxy?.has('rpc') === true) return this.#proxiedRpc(conn, cmd)
    const handler = found ?? gw.rpc.get(cmd.method)
    const key = dedupeKey('rpc', conn, cmd.msgId)
    const ttl = gw.options.idempotencyTtlMs
    const claim = await gw.engine.claimIdempotent(key, ttl)
    if (claim.state === 'done') return claim.result === undefined ? {} : { data: claim.result }
    if (claim.state === 'pending') throw new HoldfastError('in_progress', 'this RPC is still running; retry later')
    let data: unknown
    try {
      data = await gw.tracing.within(span, () => handler({ client: connectionInfo(conn), method: cmd.method }, cmd.data))
    } catch (err) {
      await gw.engine.releaseIdempotent(key).catch(() => {})
      throw err
    }
    await gw.engine.completeIdempotent(key, data ?? null, ttl).catch(() => {})
    gw.counters.inc('rpcs')
    return data === undefined ? {} : { data }
  }

  // ---------------------------------------------------------------- reads

  async #presence(conn: Connection, channel: string, stats: boolean): Promise<object> {
    this.#admitRead(conn)
    const opts = await this.#authorizeRead(conn, channel, stats ? 'presence_stats' : 'presence')
    if (!opts.presence || !opts.allowPresence) throw new HoldfastError('not_available', 'presence is not enabled for this namespace')
    const gw = this.#ctx
    return stats ? gw.engine.presenceStats(channel) : { clients: await gw.engine.presence(channel) }
  }

  async #history(conn: Connection, cmd: HistoryCommand): Promise<object> {
    this.#admitRead(conn)
    const opts = await this.#authorizeRead(conn, cmd.channel, 'history')
    if (!opts.allowHistory) throw new HoldfastError('not_available', 'history is not enabled for this namespace')
    return readHistory(this.#ctx, cmd.channel, {
      limit: cmd.limit ?? opts.historySize,
      maxBytes: this.#ctx.options.maxReplyBytes,
      ...(cmd.since === undefined ? {} : { since: cmd.since }),
      ...(cmd.reverse === undefined ? {} : { reverse: cmd.reverse }),
    })
  }
}

/**
 * The engine key of a client message id. Ids are scoped so one client cannot pre-empt another's:
 * by user, or by session for anonymous clients (who all share the user ''). The scope is length
 * prefixed, so no user name and id can spell another's key (user `a:x` with id `1` and user `a`
 * with id `x:1` stay apart).
 */
export function dedupeKey(kind: 'pub' | 'rpc', conn: Pick<Connection, 'user' | 'session'>, msgId: string): string {
  return `${kind}:${dedupeScope(conn)}:${msgId}`
}

function dedupeScope(conn: Pick<Connection, 'user' | 'session'>): string {
  return conn.user === '' ? `s${conn.session.length}:${conn.session}` : `u${conn.user.length}:${conn.user}`
}
