import type { UpgradeRequest } from './transport/transport.js'
import {
  CloseCodes,
  HoldfastError,
  PROTOCOL_VERSION,
  codecFor,
  type CloseCodeName,
  type Codec,
  type Command,
  type ConnectCommand,
  type ConnectResult,
  type HistoryCommand,
  type PublishCommand,
  type RpcCommand,
  type StreamPosition,
  type SubscribeResult,
} from '@holdfast/protocol'
import type { Span } from '@opentelemetry/api'
import type { AuthResult } from './auth/types.js'
import { parseChannel } from './channel-name.js'
import { measureData } from './payload.js'
import { Connection, ConnState, type ConnSubscription } from './connection.js'
import { TokenBucket } from './limits/token-bucket.js'
import type { Gateway } from './gateway.js'
import type { ReadKind, ResolvedChannelOptions } from './options.js'
import { connectionInfo } from './tracing.js'
import { RpcRouter } from './rpc-router.js'
import { ConnectRefused } from './backend/refusal.js'
import type { ChannelGrant } from './auth/channel-token.js'

/** Upgrade-time facts a connection keeps until its connect command is handled. */
export interface PendingConnect {
  preAuth: AuthResult | undefined
  req: UpgradeRequest | undefined
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
 * Decodes frames and runs commands for the gateway. Every failure becomes an error reply with a
 * code, or a close with a code; nothing a client sends can throw past this class.
 */
export class CommandHandler {
  readonly #gw: Gateway
  readonly #pings = new Map<Codec, Uint8Array>()

  constructor(gw: Gateway) {
    this.#gw = gw
  }

  codecFor(protocol: string): Codec {
    return codecFor(protocol)
  }

  pingBytes(codec: Codec): Uint8Array {
    let b = this.#pings.get(codec)
    if (b === undefined) {
      b = codec.encode({ type: 'ping' })
      this.#pings.set(codec, b)
    }
    return b
  }

  onFrame(conn: Connection, data: Uint8Array | string, _isBinary: boolean, pending: PendingConnect): void {
    if (conn.state === ConnState.Closed) return
    const gw = this.#gw
    const size = typeof data === 'string' ? data.length : data.byteLength
    gw.counters.bytesIn += size
    let messages
    try {
      messages = conn.codec.decodeClient(data, { maxBatch: gw.options.maxBatch })
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
    let limited: 'bytes' | 'commands' | undefined = conn.bytes.take(now, size) ? undefined : 'bytes'
    // Once one command of a frame is refused for rate, the rest of the frame is refused too:
    // a later command must not run ahead of an earlier one the client will retry.
    for (const msg of messages) {
      if (msg.type === 'pong' && conn.awaitingPong) {
        // The one pong a ping asks for is free: heartbeats must not starve behind the rate limit.
        gw.pong(conn)
        continue
      }
      if (limited === undefined && !conn.bucket.take(now)) limited = 'commands'
      if (limited !== undefined) {
        gw.counters.inc('rate_limited', limited)
        if (++conn.rateRejects > gw.options.commandRate.burst) {
          // A flood goes on during a closing handshake: drop it soon rather than parse it for 30 s.
          conn.closeAndDrop(CloseCodes.rate_limited.code, limited === 'bytes' ? 'inbound byte rate exceeded' : 'command rate limit exceeded', false)
          return
        }
        // An unsolicited pong has no id to answer; it only counts.
        if (msg.type !== 'pong') {
          const what = limited === 'bytes' ? 'inbound byte rate exceeded' : 'command rate limit exceeded'
          this.#fail(conn, msg.id, new HoldfastError('rate_limited', `${what}; slow down`))
        }
        continue
      }
      conn.rateRejects = 0
      // A pong nobody asked for costs a command token and does nothing else.
      if (msg.type === 'pong') continue
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
    const gw = this.#gw
    const max = gw.options.maxReplyBytes
    const now = performance.now()
    const rate = (conn.replies ??= new TokenBucket(max, 2 * max, now))
    if (conn.replyBacklog() < max && rate.tokens(now) > 0) return
    gw.counters.inc('rate_limited', 'replies')
    throw new HoldfastError('rate_limited', 'earlier replies are still unread, or read too fast; read them before asking for more')
  }

  async #run(conn: Connection, cmd: Command, pending: PendingConnect): Promise<void> {
    const gw = this.#gw
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
      this.#gw.log?.error({ err, client: conn.id, trace: conn.traceId }, 'command failed')
      e = new HoldfastError('internal', 'internal error')
    }
    this.#gw.counters.inc('command_errors', e.code)
    conn.reply({ id, error: e.toReply() })
  }

  /** Runs one command; resolves with the result to reply, or undefined when the handler replied itself. */
  #dispatch(conn: Connection, cmd: Command, pending: PendingConnect, span: Span | undefined): Promise<object | undefined> | object | undefined {
    switch (cmd.type) {
      case 'connect':
        return this.#connect(conn, cmd, pending)
      case 'subscribe':
        return this.#subscribe(
          conn,
          cmd.channel,
          cmd.recover,
          (result) => {
            this.#gw.tracing.subscribed(span, result)
            conn.reply({ id: cmd.id, result })
          },
          false,
          cmd.data,
          cmd.token,
        )
      case 'unsubscribe':
        this.serverUnsubscribe(conn, cmd.channel, undefined, '')
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
        return this.#subRefresh(conn, cmd.channel, cmd.token)
    }
  }

  // ---------------------------------------------------------------- connect and refresh

  async #connect(conn: Connection, cmd: ConnectCommand, pending: PendingConnect): Promise<undefined> {
    const gw = this.#gw
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
            : await gw.authenticate(cmd.token, pending.req as UpgradeRequest)
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
      node: gw.nodeId,
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
    gw.connected(conn, resumed)
    // Channels granted by the token (`channels` claim) are subscribed by the server, announced
    // with `subscribe` pushes after the connect reply.
    if (auth.channels !== undefined) for (const channel of auth.channels) await this.serverSubscribe(conn, channel)
    return undefined
  }

  async #refresh(conn: Connection, token: string): Promise<object | undefined> {
    const gw = this.#gw
    const proxy = gw.backend.proxy
    if (proxy?.has('refresh') === true && proxy.has('connect')) {
      const { expiresAt } = await proxy.refresh(conn)
      conn.expiresAt = expiresAt === undefined ? 0 : gw.backend.startExpiry(conn, expiresAt)
      gw.rescheduleHeartbeat(conn)
      return expiresAt === undefined ? {} : { expiresIn: expiresAt - Date.now() }
    }
    let auth: AuthResult
    try {
      auth = await gw.authenticate(token, undefined as unknown as UpgradeRequest)
    } catch (err) {
      if (err instanceof HoldfastError && (err.code === 'token_expired' || err.code === 'unauthorized')) throw err
      throw new HoldfastError('unauthorized', 'token refresh failed', { cause: err })
    }
    if (auth.user !== conn.user) {
      conn.close('unauthorized', 'refreshed token belongs to another user')
      return undefined
    }
    conn.expiresAt = auth.expiresAt === undefined ? 0 : auth.expiresAt + gw.expiryGraceMs
    gw.rescheduleHeartbeat(conn)
    return auth.expiresAt === undefined ? {} : { expiresIn: auth.expiresAt - Date.now() }
  }

  // ---------------------------------------------------------------- channels

  /** Built-in access checks for subscribing to a channel: the name and its user list. */
  #readable(conn: Connection, channel: string): ResolvedChannelOptions {
    const name = parseChannel(channel)
    const opts = this.#gw.channelOptions(channel)
    if (name.users !== undefined && !name.users.includes(conn.user)) {
      throw new HoldfastError('permission_denied', 'channel is limited to other users')
    }
    return opts
  }

  /**
   * Reads (history, presence, presence stats) show what a subscription would: they pass the same
   * checks as subscribe (user list, allowSubscribe, then `canRead`, which defaults to
   * `canSubscribe`). A connection subscribed to the channel already passed them.
   */
  async #authorizeRead(conn: Connection, channel: string, read: ReadKind): Promise<ResolvedChannelOptions> {
    const gw = this.#gw
    const opts = this.#readable(conn, channel)
    if (conn.subs?.get(channel)?.live === true) return opts
    if (!opts.allowSubscribe) throw new HoldfastError('permission_denied', 'clients may not read this namespace')
    const o = gw.options
    const ok =
      o.canRead !== undefined
        ? await o.canRead({ client: this.#connInfo(conn), channel, read })
        : o.canSubscribe !== undefined
          ? await o.canSubscribe({ client: this.#connInfo(conn), channel })
          : true
    if (!ok) throw new HoldfastError('permission_denied', `${read} refused`)
    return opts
  }

  /**
   * `byServer`: the application asked (subscribeUser), so the checks that guard
   * what a *client* may ask for (allowSubscribe, user-limited names, canSubscribe) do not apply;
   * limits still do.
   */
  async #subscribe(
    conn: Connection,
    channel: string,
    recover: StreamPosition | undefined,
    reply: (r: SubscribeResult) => void,
    byServer = false,
    data?: unknown,
    token?: string,
  ): Promise<undefined> {
    const gw = this.#gw
    // A channel token admits where the rules alone would refuse; limits still apply.
    const grant = !byServer && token !== undefined ? await this.#channelGrant(conn, channel, token) : undefined
    const trusted = byServer || grant !== undefined
    let opts = trusted ? gw.channelOptions(channel) : this.#readable(conn, channel)
    if (!trusted && !opts.allowSubscribe) throw new HoldfastError('permission_denied', 'clients may not subscribe to this namespace')
    if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
    if ((conn.subs?.size ?? 0) >= gw.options.maxSubscriptionsPerConnection) {
      gw.counters.inc('limit_exceeded', 'subscriptions')
      throw new HoldfastError('limit_exceeded', `at most ${gw.options.maxSubscriptionsPerConnection} subscriptions per connection`)
    }
    if (!trusted && gw.options.canSubscribe !== undefined) {
      const ok = await gw.options.canSubscribe({ client: this.#connInfo(conn), channel })
      if (!ok) throw new HoldfastError('permission_denied', 'subscription refused')
      if (conn.state === ConnState.Closed) return undefined
      if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
    }
    const proxy = gw.backend.proxy
    let info: unknown = grant?.info
    if (!trusted && proxy?.covers('subscribe', channel) === true) {
      const grant = await proxy.subscribe(conn, channel, data)
      if (conn.state === ConnState.Closed) return undefined
      if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
      info = grant.info
      opts = { ...opts, ...grant.overrides }
      if (opts.joinLeave && !opts.presence) opts.joinLeave = false
    }
    const sub: ConnSubscription = info === undefined ? { live: false, presence: opts.presence } : { live: false, presence: opts.presence, info }
    if (opts.joinLeave !== gw.channelOptions(channel).joinLeave) sub.joinLeave = opts.joinLeave
    ;(conn.subs ??= new Map()).set(channel, sub)
    if (grant !== undefined) {
      const answer = reply
      reply = (r) => answer({ ...r, expiresIn: grant.expiresAt - Date.now() })
      this.#armTokenTimer(conn, channel, sub, grant.expiresAt)
    }
    let ok: boolean
    try {
      ok = await gw.hub.subscribe(conn, channel, opts, recover, (result) => {
        sub.live = true
        if (result.wasRecovering) {
          gw.counters.inc('recoveries', result.recovered ? 'recovered' : 'not_recovered')
          if (!result.recovered) gw.counters.inc('recovery_failures', result.epoch !== recover?.epoch ? 'epoch_changed' : 'history_unavailable')
        }
        reply(result)
      })
    } catch (err) {
      if (conn.subs?.get(channel) === sub) conn.subs.delete(channel)
      gw.counters.inc('engine_errors', 'subscribe')
      throw err instanceof HoldfastError ? err : new HoldfastError('engine_unavailable', 'engine unavailable', { cause: err })
    }
    if (!ok) {
      if (conn.subs?.get(channel) === sub && !sub.live) conn.subs.delete(channel)
      return undefined
    }
    if (opts.presence) {
      await gw.engine.addPresence(channel, conn.clientInfo(sub), gw.options.presenceTtlMs).catch(() => {})
      if (opts.joinLeave) await gw.engine.publishJoinLeave(channel, 'join', conn.clientInfo(sub)).catch(() => {})
    }
    const onSubscribe = gw.options.onSubscribe
    if (onSubscribe !== undefined && conn.subs?.get(channel) === sub) gw.hook('onSubscribe', () => onSubscribe(connectionInfo(conn), channel), conn)
    return undefined
  }

  async #channelGrant(conn: Connection, channel: string, token: string): Promise<ChannelGrant> {
    const verify = this.#gw.channelToken
    if (verify === undefined) throw new HoldfastError('unauthorized', 'channel tokens are not accepted by this server')
    parseChannel(channel)
    return verify(token, conn.user, channel)
  }

  /** The subscription ends at the token's expiry (an `unsubscribe` push with token_expired), unless refreshed. */
  #armTokenTimer(conn: Connection, channel: string, sub: ConnSubscription, expiresAt: number): void {
    clearTimeout(sub.tokenTimer)
    sub.tokenTimer = setTimeout(() => {
      if (conn.subs?.get(channel) === sub) this.serverUnsubscribe(conn, channel, 'token_expired', 'channel token expired')
    }, Math.max(0, expiresAt - Date.now()))
    sub.tokenTimer.unref()
  }

  async #subRefresh(conn: Connection, channel: string, token: string): Promise<object> {
    const grant = await this.#channelGrant(conn, channel, token)
    const sub = conn.subs?.get(channel)
    if (sub === undefined) throw new HoldfastError('not_subscribed', `not subscribed to ${channel}`)
    if (sub.tokenTimer === undefined) throw new HoldfastError('bad_request', `${channel} was not subscribed with a channel token`)
    this.#armTokenTimer(conn, channel, sub, grant.expiresAt)
    return { expiresIn: grant.expiresAt - Date.now() }
  }

  /** Subscribe a connection on the server's initiative; the client learns it from a `subscribe` push. */
  async serverSubscribe(conn: Connection, channel: string): Promise<void> {
    try {
      await this.#subscribe(conn, channel, undefined, (r) => conn.send({ type: 'subscribe', channel, epoch: r.epoch, offset: r.offset }), true)
    } catch (err) {
      if (!(err instanceof HoldfastError && err.code === 'already_subscribed')) conn.log?.warn({ err, channel }, 'server-side subscribe failed')
    }
  }

  /** End a subscription. With a code, the client is told by an `unsubscribe` push (server side). */
  serverUnsubscribe(conn: Connection, channel: string, code: CloseCodeName | undefined, reason: string): void {
    const sub = conn.subs?.get(channel)
    if (sub === undefined) return
    conn.subs?.delete(channel)
    clearTimeout(sub.tokenTimer)
    this.#gw.hub.remove(conn, channel)
    if (sub.presence) this.leavePresence(conn, channel, sub)
    if (code !== undefined) conn.send({ type: 'unsubscribe', channel, code: CloseCodes[code].code, reason })
  }

  leavePresence(conn: Connection, channel: string, sub?: ConnSubscription): void {
    const gw = this.#gw
    const info = conn.clientInfo(sub)
    gw.engine.removePresence(channel, conn.id).catch(() => {})
    if (sub?.joinLeave ?? gw.channelOptions(channel).joinLeave) gw.engine.publishJoinLeave(channel, 'leave', info).catch(() => {})
  }

  // ---------------------------------------------------------------- publish and rpc

  /** A well-formed message id, within its user's budget of ids remembered at once. */
  #checkMsgId(conn: Connection, msgId: string): void {
    if (msgId.length === 0 || msgId.length > MAX_MSG_ID) throw new HoldfastError('bad_request', `msgId must be 1-${MAX_MSG_ID} characters`)
    const gw = this.#gw
    if (!gw.messageIds.take(dedupeScope(conn), performance.now())) {
      gw.counters.inc('limit_exceeded', 'message_ids')
      throw new HoldfastError('limit_exceeded', `at most ${gw.options.maxMessageIdsPerUser} message ids per user within ${gw.options.idempotencyTtlMs} ms; slow down`, {
        temporary: true,
      })
    }
  }

  /** The data's encoded size, or the refusal (counted) when it is too large or cannot be delivered. */
  #measure(data: unknown): number {
    try {
      return measureData(data, this.#gw.options.maxPayload)
    } catch (err) {
      if (err instanceof HoldfastError && err.code === 'payload_too_large') this.#gw.counters.inc('payload_too_large')
      throw err
    }
  }


  async #publish(conn: Connection, cmd: PublishCommand): Promise<object> {
    const gw = this.#gw
    this.#checkMsgId(conn, cmd.msgId)
    const name = parseChannel(cmd.channel)
    const opts = gw.channelOptions(cmd.channel)
    if (!opts.allowPublish) throw new HoldfastError('not_available', 'clients may not publish to this namespace')
    if (name.users !== undefined && !name.users.includes(conn.user)) throw new HoldfastError('permission_denied', 'channel is limited to other users')
    const size = this.#measure(cmd.data)
    if (gw.options.canPublish !== undefined) {
      const ok = await gw.options.canPublish({ client: this.#connInfo(conn), channel: cmd.channel, data: cmd.data })
      if (!ok) throw new HoldfastError('permission_denied', 'publish refused')
    }
    if (gw.backend.proxy?.covers('publish', cmd.channel) === true) return this.#proxiedPublish(conn, cmd, opts)
    let out
    try {
      out = await gw.enginePublish(cmd.channel, cmd.data, {
        historySize: opts.historySize,
        historyTtlMs: opts.historyTtlMs,
        streamTtlMs: opts.streamTtlMs,
        idempotencyKey: dedupeKey('pub', conn, cmd.msgId),
        size,
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
    const gw = this.#gw
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
        out = await gw.enginePublish(cmd.channel, data, {
          historySize: opts.historySize,
          historyTtlMs: opts.historyTtlMs,
          streamTtlMs: opts.streamTtlMs,
          idempotencyKey: key,
          size,
          idempotencyTtlMs: ttl,
          info: conn.clientInfo(),
        })
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

  async #claim(key: string, ttl: number): ReturnType<Gateway['engine']['claimIdempotent']> {
    try {
      return await this.#gw.engine.claimIdempotent(key, ttl)
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
    const gw = this.#gw
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
    const gw = this.#gw
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
      data = await gw.tracing.within(span, () => handler({ client: this.#connInfo(conn), method: cmd.method }, cmd.data))
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
    const gw = this.#gw
    return stats ? gw.engine.presenceStats(channel) : { clients: await gw.engine.presence(channel) }
  }

  async #history(conn: Connection, cmd: HistoryCommand): Promise<object> {
    this.#admitRead(conn)
    const opts = await this.#authorizeRead(conn, cmd.channel, 'history')
    if (!opts.allowHistory) throw new HoldfastError('not_available', 'history is not enabled for this namespace')
    return this.#gw.history(cmd.channel, {
      limit: cmd.limit ?? opts.historySize,
      maxBytes: this.#gw.options.maxReplyBytes,
      ...(cmd.since === undefined ? {} : { since: cmd.since }),
      ...(cmd.reverse === undefined ? {} : { reverse: cmd.reverse }),
    })
  }

  #connInfo(conn: Connection): { client: string; user: string; session: string; ip: string; info?: unknown } {
    return conn.info === undefined
      ? { client: conn.id, user: conn.user, session: conn.session, ip: conn.ip }
      : { client: conn.id, user: conn.user, session: conn.session, ip: conn.ip, info: conn.info }
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
