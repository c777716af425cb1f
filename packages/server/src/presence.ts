/**
 * Presence: a subscription of a namespace with presence adds its client to the channel's presence
 * (and announces a join when the namespace publishes join/leave), removes it on unsubscribe or
 * close, and refreshes it every third of the presence TTL while the connection lives.
 */
import type { Connection, ConnSubscription } from './connection.js'
import type { NodeContext } from './node-context.js'

export class Presence {
  readonly #ctx: Pick<NodeContext, 'options' | 'engine' | 'connections' | 'channelOptions'>
  readonly #timer: NodeJS.Timeout

  constructor(ctx: Pick<NodeContext, 'options' | 'engine' | 'connections' | 'channelOptions'>) {
    this.#ctx = ctx
    const every = Math.max(1000, Math.floor(ctx.options.presenceTtlMs / 3))
    this.#timer = setInterval(() => this.#refresh(), every).unref()
  }

  /** The connection's subscription to `channel` is live: it is present there (and announced, with join/leave on). */
  async join(conn: Connection, channel: string, joinLeave: boolean, sub?: ConnSubscription): Promise<void> {
    const { engine, options } = this.#ctx
    await engine.addPresence(channel, conn.clientInfo(sub), options.presenceTtlMs).catch(() => {})
    if (joinLeave) await engine.publishJoinLeave(channel, 'join', conn.clientInfo(sub)).catch(() => {})
  }

  /** The connection left `channel` (unsubscribed or closed); `sub`'s own info and joinLeave (backend proxy, channel token) win. */
  leave(conn: Connection, channel: string, sub?: ConnSubscription): void {
    const { engine } = this.#ctx
    const info = conn.clientInfo(sub)
    engine.removePresence(channel, conn.id).catch(() => {})
    if (sub?.joinLeave ?? this.#ctx.channelOptions(channel).joinLeave) engine.publishJoinLeave(channel, 'leave', info).catch(() => {})
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  #refresh(): void {
    const { engine, options } = this.#ctx
    for (const conn of this.#ctx.connections) {
      if (conn.subs === undefined) continue
      for (const [channel, sub] of conn.subs) {
        if (sub.presence && sub.live) engine.addPresence(channel, conn.clientInfo(sub), options.presenceTtlMs).catch(() => {})
      }
    }
  }
}
