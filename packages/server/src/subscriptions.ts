/**
 * Subscriptions of connections to channels, on the client's command or the server's initiative
 * (a token's `channels` claim, `subscribeUser`): the access checks, the per-connection bound, the
 * hub's subscribe with recovery, presence, the `onSubscribe` hook; and their ends.
 */
import { CloseCodes, HoldfastError, type CloseCodeName, type StreamPosition, type SubscribeResult } from '@holdfast/protocol'
import { checkChannelUser, parseChannel } from './channel-name.js'
import { ConnState, type Connection, type ConnSubscription } from './connection.js'
import { connectionInfo } from './hooks.js'
import type { NodeContext } from './node-context.js'
import type { ResolvedChannelOptions } from './options.js'
import type { Presence } from './presence.js'
import { SubscriptionList } from './subscription-list.js'
import type { ChannelGrant } from './auth/channel-token.js'

type Ctx = Pick<NodeContext, 'options' | 'counters' | 'hub' | 'channelOptions' | 'hook' | 'backend' | 'channelToken'>

/** The built-in checks of what a client may read of a channel: a valid name, and the channel's user list. */
export function readableChannel(ctx: Pick<NodeContext, 'channelOptions'>, conn: Connection, channel: string): ResolvedChannelOptions {
  checkChannelUser(parseChannel(channel), conn.user)
  return ctx.channelOptions(channel)
}

export class Subscriptions {
  readonly #ctx: Ctx
  readonly #presence: Presence

  constructor(ctx: Ctx, presence: Presence) {
    this.#ctx = ctx
    this.#presence = presence
  }

  /**
   * Subscribe `conn` to `channel`, recovering from `recover`; `reply` gets the result once live.
   * `byServer`: the application asked (subscribeUser, a token's channels), so the checks that
   * guard what a *client* may ask for (allowSubscribe, user-limited names, canSubscribe) do not
   * apply; limits still do. A client's channel `token` admits it the same way; `data` goes to the
   * backend proxy's subscribe.
   */
  async subscribe(
    conn: Connection,
    channel: string,
    recover: StreamPosition | undefined,
    reply: (r: SubscribeResult) => void,
    byServer = false,
    data?: unknown,
    token?: string,
  ): Promise<void> {
    const ctx = this.#ctx
    const o = ctx.options
    // A channel token admits where the rules alone would refuse; limits still apply.
    const grant = !byServer && token !== undefined ? await this.#channelGrant(conn, channel, token) : undefined
    const trusted = byServer || grant !== undefined
    let opts = trusted ? ctx.channelOptions(channel) : readableChannel(ctx, conn, channel)
    if (!trusted && !opts.allowSubscribe) throw new HoldfastError('permission_denied', 'clients may not subscribe to this namespace')
    if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
    if ((conn.subs?.size ?? 0) >= o.maxSubscriptionsPerConnection) {
      ctx.counters.inc('limit_exceeded', 'subscriptions')
      throw new HoldfastError('limit_exceeded', `at most ${o.maxSubscriptionsPerConnection} subscriptions per connection`)
    }
    if (!trusted && o.canSubscribe !== undefined) {
      const ok = await o.canSubscribe({ client: connectionInfo(conn), channel })
      if (!ok) throw new HoldfastError('permission_denied', 'subscription refused')
      if (conn.state === ConnState.Closed) return
      if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
    }
    const proxy = ctx.backend.proxy
    let info: unknown = grant?.info
    if (!trusted && proxy?.covers('subscribe', channel) === true) {
      const granted = await proxy.subscribe(conn, channel, data)
      if (conn.state === ConnState.Closed) return
      if (conn.subs?.has(channel) === true) throw new HoldfastError('already_subscribed', `already subscribed to ${channel}`)
      info = granted.info
      opts = { ...opts, ...granted.overrides }
      if (opts.joinLeave && !opts.presence) opts.joinLeave = false
    }
    const sub: ConnSubscription =
      info === undefined ? { channel, next: undefined, live: false, presence: opts.presence } : { channel, next: undefined, live: false, presence: opts.presence, info }
    if (opts.joinLeave !== ctx.channelOptions(channel).joinLeave) sub.joinLeave = opts.joinLeave
    if (grant !== undefined) {
      const answer = reply
      reply = (r) => answer({ ...r, expiresIn: grant.expiresAt - Date.now() })
      this.#armTokenTimer(conn, channel, sub, grant.expiresAt)
    }
    ;(conn.subs ??= new SubscriptionList()).set(channel, sub)
    let ok: boolean
    try {
      ok = await ctx.hub.subscribe(conn, channel, opts, recover, (result) => {
        sub.live = true
        if (result.wasRecovering) {
          ctx.counters.inc('recoveries', result.recovered ? 'recovered' : 'not_recovered')
          if (!result.recovered) ctx.counters.inc('recovery_failures', result.epoch !== recover?.epoch ? 'epoch_changed' : 'history_unavailable')
        }
        reply(result)
      })
    } catch (err) {
      if (conn.subs?.get(channel) === sub) conn.subs.delete(channel)
      ctx.counters.inc('engine_errors', 'subscribe')
      throw err instanceof HoldfastError ? err : new HoldfastError('engine_unavailable', 'engine unavailable', { cause: err })
    }
    if (!ok) {
      if (conn.subs?.get(channel) === sub && !sub.live) conn.subs.delete(channel)
      return
    }
    if (opts.presence) await this.#presence.join(conn, channel, opts.joinLeave, sub)
    const onSubscribe = o.onSubscribe
    if (onSubscribe !== undefined && conn.subs?.get(channel) === sub) ctx.hook('onSubscribe', () => onSubscribe(connectionInfo(conn), channel), conn)
  }

  async #channelGrant(conn: Connection, channel: string, token: string): Promise<ChannelGrant> {
    const verify = this.#ctx.channelToken
    if (verify === undefined) throw new HoldfastError('unauthorized', 'channel tokens are not accepted by this server')
    parseChannel(channel)
    return verify(token, conn.user, channel)
  }

  /** The subscription ends at the token's expiry (an `unsubscribe` push with token_expired), unless refreshed. */
  #armTokenTimer(conn: Connection, channel: string, sub: ConnSubscription, expiresAt: number): void {
    clearTimeout(sub.tokenTimer)
    sub.tokenTimer = setTimeout(() => {
      if (conn.subs?.get(channel) === sub) this.unsubscribe(conn, channel, 'token_expired', 'channel token expired')
    }, Math.max(0, expiresAt - Date.now()))
    sub.tokenTimer.unref()
  }

  /** `sub_refresh`: a new channel token moves the subscription's expiry. */
  async refreshToken(conn: Connection, channel: string, token: string): Promise<{ expiresIn: number }> {
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
      await this.subscribe(conn, channel, undefined, (r) => conn.send({ type: 'subscribe', channel, epoch: r.epoch, offset: r.offset }), true)
    } catch (err) {
      if (!(err instanceof HoldfastError && err.code === 'already_subscribed')) conn.log?.warn({ err, channel }, 'server-side subscribe failed')
    }
  }

  /**
   * End a subscription; false when there was none. With a code (the server's initiative), the
   * client is told by an `unsubscribe` push.
   */
  unsubscribe(conn: Connection, channel: string, code: CloseCodeName | undefined, reason: string): boolean {
    const sub = conn.subs?.get(channel)
    if (sub === undefined) return false
    conn.subs?.delete(channel)
    clearTimeout(sub.tokenTimer)
    this.#ctx.hub.remove(conn, channel)
    if (sub.presence) this.#presence.leave(conn, channel, sub)
    if (code !== undefined) conn.send({ type: 'unsubscribe', channel, code: CloseCodes[code].code, reason })
    return true
  }

  /** The connection closed: it leaves every channel (no pushes: it is gone). */
  closed(conn: Connection): void {
    if (conn.subs === undefined) return
    for (const [channel, sub] of conn.subs) {
      clearTimeout(sub.tokenTimer)
      this.#ctx.hub.remove(conn, channel)
      if (sub.presence) this.#presence.leave(conn, channel, sub)
    }
    conn.subs = undefined
  }

  /** The hub found a gap in a channel's stream that it cannot fill live: the client reconnects and recovers. */
  insufficientState(conn: Connection, channel: string): void {
    this.#ctx.counters.inc('insufficient_state')
    conn.log?.warn({ channel }, 'gap in channel stream; closing for recovery')
    conn.close('insufficient_state', `gap in ${channel}`)
  }
}
