/**
 * A connection's life on the node after admission: connected (session table, takeover of an older
 * connection of the session, the `connect` event and `onConnect` hook) and closed (every table it
 * was in, counts, the `disconnect` event and `onDisconnect` hook).
 */
import type { EventEmitter } from 'node:events'
import { closeCodeName } from '@holdfast/protocol'
import { ConnState, type Connection } from './connection.js'
import type { Heartbeats } from './heartbeats.js'
import { connectionInfo } from './hooks.js'
import type { NodeContext } from './node-context.js'
import type { Subscriptions } from './subscriptions.js'

export interface LifecycleEvents {
  connect: [info: { client: string; user: string; session: string; resumed: boolean; ip: string }]
  disconnect: [info: { client: string; user: string; session: string; code: number; reason: string }]
}

type Ctx = Pick<NodeContext, 'options' | 'counters' | 'log' | 'tracing' | 'engine' | 'connections' | 'bySession' | 'hook'>

export class Lifecycle {
  readonly #ctx: Ctx
  readonly #heartbeats: Heartbeats
  readonly #subscriptions: Subscriptions
  /** Where the `connect` and `disconnect` events go (the gateway, for the application). */
  readonly #events: Pick<EventEmitter<LifecycleEvents>, 'emit'>

  constructor(ctx: Ctx, heartbeats: Heartbeats, subscriptions: Subscriptions, events: Pick<EventEmitter<LifecycleEvents>, 'emit'>) {
    this.#ctx = ctx
    this.#heartbeats = heartbeats
    this.#subscriptions = subscriptions
    this.#events = events
  }

  /** The connect command succeeded (its reply is queued). */
  connected(conn: Connection, resumed: boolean): void {
    const ctx = this.#ctx
    const o = ctx.options
    conn.state = ConnState.Connected
    this.#heartbeats.connected(conn)
    const previous = ctx.bySession.get(conn.session)
    ctx.bySession.set(conn.session, conn)
    if (previous !== undefined && previous !== conn) previous.close('taken_over', 'session resumed by a newer connection')
    if (resumed) {
      // Other nodes may hold the older connection of this session.
      ctx.engine.publishControl({ type: 'takeover', session: conn.session, client: conn.id, node: o.nodeId }).catch((err: unknown) => {
        ctx.log?.warn({ err }, 'takeover broadcast failed')
      })
    }
    ctx.counters.inc('connections_accepted')
    this.#events.emit('connect', { client: conn.id, user: conn.user, session: conn.session, resumed, ip: conn.ip })
    conn.logAt('debug')?.debug({ user: conn.user, resumed }, 'connected')
    ctx.tracing.connected(conn, { 'holdfast.client': conn.id, 'enduser.id': conn.user, 'holdfast.session': conn.session, 'holdfast.resumed': resumed })
    const onConnect = o.onConnect
    if (onConnect !== undefined) ctx.hook('onConnect', () => onConnect({ ...connectionInfo(conn), resumed }), conn)
  }

  /** The connection closed (its transport said so, or the drain deadline terminated it). */
  closed(conn: Connection, code: number, reason: string): void {
    const ctx = this.#ctx
    // The drain deadline calls this for the connections it terminates, and their sockets report
    // the close again later: count and tell the hooks once.
    if (!ctx.connections.has(conn)) return
    const wasConnected = conn.state === ConnState.Connected || conn.closeCode !== 0
    // Closed by the server (closeWith/terminate ran first) before the handshake completed: a rejection.
    const rejected = conn.state === ConnState.Closed && conn.session === ''
    if (conn.state !== ConnState.Closed) {
      conn.state = ConnState.Closed
      conn.closeCode = code
      conn.closeReason = reason
    }
    this.#heartbeats.cancel(conn)
    ctx.connections.delete(conn)
    if (ctx.bySession.get(conn.session) === conn) ctx.bySession.delete(conn.session)
    this.#subscriptions.closed(conn)
    ctx.counters.inc('disconnects', String(conn.closeCode))
    const codeName = closeCodeName(conn.closeCode) ?? (conn.closeCode === 1005 ? 'no_status' : 'other')
    if (rejected) ctx.counters.inc('connections_rejected', codeName)
    ctx.tracing.closed(conn, conn.closeCode, codeName)
    if (wasConnected && conn.user !== undefined) {
      this.#events.emit('disconnect', { client: conn.id, user: conn.user, session: conn.session, code: conn.closeCode, reason: conn.closeReason })
    }
    const onDisconnect = ctx.options.onDisconnect
    if (onDisconnect !== undefined && conn.session !== '') {
      ctx.hook('onDisconnect', () => onDisconnect({ ...connectionInfo(conn), code: conn.closeCode, codeName, reason: conn.closeReason }), conn)
    }
    conn.logAt('debug')?.debug({ code: conn.closeCode, codeName, reason: conn.closeReason }, 'disconnected')
  }
}
