import type { EventEmitter } from 'node:events'
import { HoldfastError } from '@holdfast/protocol'
import { isTimeout, toEngineError } from './redis-errors.js'

/**
 * The live feed of a Redis engine: the pub/sub channels this node receives. `Feed` is what the
 * link needs from it; `SubscriberFeed` is one subscriber connection (one Redis, or one shard of a
 * Cluster), and `ClusterFeed` (redis-cluster-feed.ts) routes channels over several of them.
 *
 * A feed is *synced* when every wanted channel is subscribed on a connection that answers its
 * PINGs. Only then is the node's view of the live traffic whole; while it is not, publications may
 * be missed, and the link reports the engine not ready so that the gateway checks for gaps when it
 * is ready again.
 */
export interface Feed {
  readonly synced: boolean
  /** Connect, and keep these channels subscribed for the feed's lifetime (control messages). */
  start(permanent: readonly string[]): void
  subscribe(channel: string): Promise<void>
  unsubscribe(channel: string): Promise<void>
  isWanted(channel: string): boolean
  /** PING every connection; resubscribe where a connection is up but not synced. */
  healthCheck(): void
  /** Drop and reopen the connection(s): the server behind them changed (a Sentinel failover). */
  reconnect(): void
  close(): Promise<void>
}

export interface FeedEvents {
  /** A message on a subscribed channel (raw bytes, decoded by the engine). */
  onMessage(channel: Buffer, message: Buffer): void
  /** `synced` may have changed. */
  onChange(): void
  /** Something went wrong that no caller will see (a failed resubscribe...). */
  onError(err: unknown): void
}

/** The part of an ioredis connection in subscriber mode that a feed uses. */
export interface SubscriberConnection extends EventEmitter {
  readonly status: string
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(reconnect?: boolean): void
  ping(): Promise<unknown>
  subscribe(...channels: string[]): Promise<unknown>
  unsubscribe(...channels: string[]): Promise<unknown>
  ssubscribe(...channels: string[]): Promise<unknown>
  sunsubscribe(...channels: string[]): Promise<unknown>
}

/** ioredis statuses on the way to `ready`. */
const CONNECTING = new Set(['wait', 'connecting', 'connect', 'reconnecting'])

/** Subscribe in slices: one huge SUBSCRIBE after a reconnect would block Redis and our parser. */
const SUBSCRIBE_BATCH = 512

/** `subscribe` for classic pub/sub, `ssubscribe` for sharded pub/sub (Redis 7, one shard's channels). */
export type SubscribeMode = 'subscribe' | 'ssubscribe'

/**
 * ioredis may end a connection for good on its own (a Sentinel failover detector disconnecting it
 * while it connects): unless we closed it, connect it again after a short, jittered pause.
 */
export function reviveOnEnd(conn: { connect(): Promise<void>; on(event: 'end', listener: () => void): unknown }, closed: () => boolean): void {
  conn.on('end', () => {
    if (closed()) return
    setTimeout(() => {
      if (!closed()) conn.connect().catch(() => {})
    }, 50 + Math.floor(Math.random() * 200)).unref()
  })
}

/** Close a connection: QUIT lets replies in flight arrive, but a stalled Redis must not hold us up. */
export async function closeConnection(conn: { quit(): Promise<unknown>; disconnect(): void }, boundMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, boundMs)
  })
  await Promise.race([conn.quit().catch(() => {}), bound])
  clearTimeout(timer)
  conn.disconnect()
}

/** One subscriber connection, its wanted channels, and their resubscription after each reconnect. */
export class SubscriberFeed implements Feed {
  readonly conn: SubscriberConnection
  readonly #mode: SubscribeMode
  readonly #events: FeedEvents
  readonly #closeBoundMs: number
  /** Channels this feed wants; kept across reconnects and replayed on each. */
  readonly #wanted = new Set<string>()
  /** SUBSCRIBEs not acknowledged yet, so that a repeat waits for the same one. */
  readonly #pending = new Map<string, Promise<void>>()
  /** Every wanted channel has been subscribed since the connection last connected. */
  #subscribed = false
  /** The connection answered its latest PING in time. */
  #healthy = true
  #closed = false
  #ping: Promise<void> | undefined
  #resubscribing: Promise<void> | undefined
  /** Bumped when the wanted set changes behind a resubscribe, which must then run again. */
  #generation = 0
  #pendingAgain = false

  constructor(conn: SubscriberConnection, mode: SubscribeMode, events: FeedEvents, closeBoundMs: number) {
    this.conn = conn
    this.#mode = mode
    this.#events = events
    this.#closeBoundMs = closeBoundMs
    conn.on('ready', () => {
      this.#healthy = true
      void this.#resubscribe()
    })
    conn.on('close', () => {
      this.#subscribed = false
      this.#changed()
    })
    conn.on('end', () => this.#changed())
    reviveOnEnd(conn, () => this.#closed)
    // Connection errors show up as state changes; without a listener ioredis would print them.
    conn.on('error', () => {})
    if (mode === 'subscribe') conn.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#events.onMessage(channel, message))
    else conn.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.#events.onMessage(channel, message))
  }

  get synced(): boolean {
    return !this.#closed && this.conn.status === 'ready' && this.#subscribed && this.#healthy
  }

  /** Up and answering, whether or not every channel is subscribed yet. */
  get usable(): boolean {
    return !this.#closed && this.conn.status === 'ready' && this.#healthy
  }

  get wantedCount(): number {
    return this.#wanted.size
  }

  wanted(): string[] {
    return [...this.#wanted]
  }

  start(permanent: readonly string[]): void {
    for (const ch of permanent) this.#wanted.add(ch)
    // A failed first connect is retried by ioredis's retryStrategy like any other.
    this.conn.connect().catch(() => {})
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await closeConnection(this.conn, this.#closeBoundMs)
  }

  /** Receive a channel. Idempotent; replayed after every reconnect. */
  async subscribe(channel: string): Promise<void> {
    // A shard's connection is opened when its first channel comes: give it the command timeout.
    if (!this.usable && this.#healthy && !this.#closed && CONNECTING.has(this.conn.status)) await this.#whenReady(this.#closeBoundMs)
    return this.#subscribe(channel)
  }

  #whenReady(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.conn.off('ready', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.conn.once('ready', done)
    })
  }

  #subscribe(channel: string): Promise<void> {
    if (!this.usable) return Promise.reject(new HoldfastError('engine_unavailable', 'redis subscribe: Redis is unavailable'))
    // A repeat waits for the SUBSCRIBE in flight, or returns at once when the channel is held:
    // it must never be able to drop a subscription that already works.
    const inFlight = this.#pending.get(channel)
    if (inFlight !== undefined) return inFlight
    if (this.#wanted.has(channel) && this.#subscribed) return Promise.resolve()
    this.#wanted.add(channel)
    const done = this.#send(true, [channel]).then(
      () => {},
      (err: unknown) => {
        // A failed subscribe leaves nothing wanted behind (the hub forgets the channel too). If the
        // SUBSCRIBE only timed out it may still run later: queue an UNSUBSCRIBE behind it.
        this.#wanted.delete(channel)
        if (this.conn.status === 'ready') this.#send(false, [channel]).catch(() => {})
        throw toEngineError('subscribe', err)
      },
    )
    const tracked = done.finally(() => this.#pending.delete(channel))
    this.#pending.set(channel, tracked)
    return tracked
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#wanted.delete(channel)
    // A connection that is down holds no subscriptions, and the next one will not replay this.
    if (this.conn.status !== 'ready') return
    try {
      await this.#send(false, [channel])
    } catch (err) {
      throw toEngineError('unsubscribe', err)
    }
  }

  reconnect(): void {
    if (this.#closed) return
    this.#subscribed = false
    this.conn.disconnect(true)
  }

  /** Want a channel that moved here; it is subscribed with the whole set at the next resubscribe. */
  want(channel: string): void {
    this.#wanted.add(channel)
    this.#generation += 1
    this.#subscribed = false
    if (this.usable) void this.#resubscribe()
    this.#changed()
  }

  /** Forget a channel without telling Redis (it was moved to another shard, which dropped it already). */
  forget(channel: string): void {
    this.#wanted.delete(channel)
  }

  isWanted(channel: string): boolean {
    return this.#wanted.has(channel)
  }

  /** The wanted set is no longer known to be subscribed (e.g. Redis dropped a channel on its own). */
  invalidate(): void {
    this.#generation += 1
    if (!this.#subscribed) return
    this.#subscribed = false
    this.#changed()
  }

  healthCheck(): void {
    if (this.#closed) return
    this.#ping ??= this.#pingOnce().finally(() => {
      this.#ping = undefined
    })
    if (this.conn.status === 'ready' && !this.#subscribed && this.#healthy) void this.#resubscribe()
  }

  #send(subscribe: boolean, channels: string[]): Promise<unknown> {
    if (this.#mode === 'subscribe') return subscribe ? this.conn.subscribe(...channels) : this.conn.unsubscribe(...channels)
    return subscribe ? this.conn.ssubscribe(...channels) : this.conn.sunsubscribe(...channels)
  }

  #changed(): void {
    if (!this.#closed) this.#events.onChange()
  }

  #resubscribe(): Promise<void> {
    this.#resubscribing ??= this.#doResubscribe().finally(() => {
      this.#resubscribing = undefined
      // The wanted set changed while the slices were in flight: once more, with everything.
      if (!this.#subscribed && this.usable && this.#pendingAgain) {
        this.#pendingAgain = false
        void this.#resubscribe()
      }
    })
    return this.#resubscribing
  }

  async #doResubscribe(): Promise<void> {
    if (this.#closed) return
    this.#subscribed = false
    const generation = this.#generation
    // All slices are written in one synchronous step, so an UNSUBSCRIBE issued meanwhile is
    // queued after them and wins: no channel is left subscribed that nobody wants.
    const channels = [...this.#wanted]
    const slices: Promise<unknown>[] = []
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) slices.push(this.#send(true, channels.slice(i, i + SUBSCRIBE_BATCH)))
    try {
      await Promise.all(slices)
      const current = generation === this.#generation
      this.#subscribed = this.conn.status === 'ready' && current
      if (!current) this.#pendingAgain = true
    } catch (err) {
      // The connection dropped again (its next `ready` retries) or timed out (the health check retries).
      if (this.conn.status === 'ready') this.#events.onError(toEngineError('resubscribe', err))
    }
    this.#changed()
  }

  async #pingOnce(): Promise<void> {
    if (this.conn.status !== 'ready') return
    let healthy: boolean
    try {
      await this.conn.ping()
      healthy = true
    } catch (err) {
      healthy = false
      // Stalled, not dead: send the next PING at once so that one always waits on the socket.
      if (isTimeout(err)) setImmediate(() => this.healthCheck())
    }
    if (this.#closed || healthy === this.#healthy) return
    this.#healthy = healthy
    this.#changed()
  }
}
