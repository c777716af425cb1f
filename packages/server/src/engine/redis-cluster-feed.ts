/// <reference path="./cluster-key-slot.d.ts" />
import type { EventEmitter } from 'node:events'
import calculateSlot from 'cluster-key-slot'
import { HoldfastError } from '@holdfast/protocol'
import { SubscriberFeed, type Feed, type FeedEvents, type SubscriberConnection } from './redis-feed.js'

/**
 * The live feed over a Redis Cluster. With sharded pub/sub (Redis 7, the default) a channel's
 * messages stay on the shard that owns its slot: the feed keeps one subscriber connection per
 * primary that owns a wanted channel, SSUBSCRIBEs each channel on its owner, and moves it when
 * the slot moves (a reshard, a failover). With classic pub/sub every PUBLISH crosses the whole
 * cluster bus and one connection to any node hears everything. Control messages use classic
 * pub/sub in both modes: they are rare and every node needs them.
 *
 * ioredis offers its own sharded subscribers, but it resubscribes silently and cannot say when
 * the feed is whole again, which the engine needs (a moved channel may have missed messages: the
 * gateway checks for gaps once the feed is synced).
 */

/** The part of ioredis's `Cluster` the feed reads the topology from. */
export interface ClusterTopology extends EventEmitter {
  readonly status: string
  /** Slot → [primary, replicas...] as "host:port" keys; empty until the cluster is connected. */
  readonly slots: string[][]
  refreshSlotsCache(callback?: (err?: Error) => void): void
  nodes(role: 'master'): { options: { host?: string; port?: number } }[]
}

export interface ClusterFeedOptions {
  sharded: boolean
  /** A subscriber connection to one node ("host:port"), not connected yet. */
  connect(nodeKey: string): SubscriberConnection
  closeBoundMs: number
  events: FeedEvents
  /** Startup nodes, for the control connection before the topology is known. */
  seeds: string[]
}

/** After this many health checks without a usable control connection, try another node. */
const CONTROL_RETRY_TICKS = 3

export class ClusterFeed implements Feed {
  readonly #cluster: ClusterTopology
  readonly #o: ClusterFeedOptions
  /** Classic pub/sub: control messages, and every channel when sharding is off. */
  #control: SubscriberFeed
  #controlNode: string
  #controlDownTicks = 0
  readonly #permanent: string[] = []
  /** Primary "host:port" → its sharded subscriber. */
  readonly #shards = new Map<string, SubscriberFeed>()
  /** Sharded channel → the primary it is subscribed on. */
  readonly #route = new Map<string, string>()
  #closed = false

  constructor(cluster: ClusterTopology, o: ClusterFeedOptions) {
    this.#cluster = cluster
    this.#o = o
    this.#controlNode = o.seeds[0] as string
    this.#control = this.#feed(this.#controlNode, 'subscribe')
    // A slot moved or a failover promoted a replica: follow the channels to their new owners.
    cluster.on('refresh', () => this.#reroute())
  }

  get synced(): boolean {
    if (this.#closed || !this.#control.synced) return false
    for (const [channel, node] of this.#route) if (this.#owner(channel) !== node) return false
    for (const shard of this.#shards.values()) if (shard.wantedCount > 0 && !shard.synced) return false
    return true
  }

  start(permanent: readonly string[]): void {
    this.#permanent.push(...permanent)
    this.#control.start(permanent)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([this.#control.close(), ...[...this.#shards.values()].map((s) => s.close())])
    this.#shards.clear()
  }

  async subscribe(channel: string): Promise<void> {
    if (!this.#o.sharded) return this.#control.subscribe(channel)
    const owner = this.#owner(channel)
    if (owner === undefined) throw new HoldfastError('engine_unavailable', 'redis subscribe: the cluster topology is not known yet')
    const previous = this.#route.get(channel)
    if (previous !== undefined && previous !== owner) this.#move(channel, previous, owner)
    this.#route.set(channel, owner)
    const shard = this.#shard(owner)
    try {
      await shard.subscribe(channel)
    } catch (err) {
      if (!shard.isWanted(channel) && this.#route.get(channel) === owner) {
        this.#route.delete(channel)
        this.#dropIfIdle(owner)
      }
      throw err
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.#o.sharded) return this.#control.unsubscribe(channel)
    const node = this.#route.get(channel)
    this.#route.delete(channel)
    const shard = node === undefined ? undefined : this.#shards.get(node)
    if (shard === undefined || node === undefined) return
    try {
      await shard.unsubscribe(channel)
    } finally {
      this.#dropIfIdle(node)
    }
  }

  isWanted(channel: string): boolean {
    return this.#o.sharded ? this.#route.has(channel) : this.#control.isWanted(channel)
  }

  /** ioredis follows the cluster's topology itself; the feed follows it by slot (see #reroute). */
  reconnect(): void {}

  healthCheck(): void {
    if (this.#closed) return
    this.#reroute()
    this.#control.healthCheck()
    for (const shard of this.#shards.values()) shard.healthCheck()
    this.#checkControl()
  }

  /** Which primary owns the channel's slot now, by ioredis's slot table. */
  #owner(channel: string): string | undefined {
    return this.#cluster.slots[calculateSlot(channel)]?.[0]
  }

  #feed(nodeKey: string, mode: 'subscribe' | 'ssubscribe'): SubscriberFeed {
    const conn = this.#o.connect(nodeKey)
    const feed = new SubscriberFeed(conn, mode, this.#o.events, this.#o.closeBoundMs)
    if (mode === 'ssubscribe') {
      // Redis dropped sharded channels on its own (their slot moved): ioredis reports it as
      // 'moved' without naming them. The feed is no longer known to hold them all; ask the cluster
      // where the slots are now, then reroute and resubscribe.
      conn.on('moved', () => {
        feed.invalidate()
        this.#cluster.refreshSlotsCache(() => this.#reroute())
      })
    }
    return feed
  }

  #shard(nodeKey: string): SubscriberFeed {
    let shard = this.#shards.get(nodeKey)
    if (shard === undefined) {
      shard = this.#feed(nodeKey, 'ssubscribe')
      this.#shards.set(nodeKey, shard)
      shard.start([])
    }
    return shard
  }

  #move(channel: string, from: string, to: string): void {
    const old = this.#shards.get(from)
    if (old !== undefined) {
      old.forget(channel)
      // The old owner normally dropped it already; if not, stop it sending twice.
      if (old.usable) old.conn.sunsubscribe(channel).catch(() => {})
      this.#dropIfIdle(from)
    }
    this.#route.set(channel, to)
    this.#shard(to).want(channel)
  }

  #reroute(): void {
    if (this.#closed || !this.#o.sharded) return
    let moved = false
    for (const [channel, node] of [...this.#route]) {
      const owner = this.#owner(channel)
      if (owner === undefined || owner === node) continue
      this.#move(channel, node, owner)
      moved = true
    }
    if (moved) this.#o.events.onChange()
  }

  #dropIfIdle(nodeKey: string): void {
    const shard = this.#shards.get(nodeKey)
    if (shard === undefined || shard.wantedCount > 0) return
    this.#shards.delete(nodeKey)
    void shard.close()
  }

  /** The control connection's node is gone: move it (and its channels) to a primary that answers. */
  #checkControl(): void {
    if (this.#control.usable) {
      this.#controlDownTicks = 0
      return
    }
    this.#controlDownTicks += 1
    if (this.#controlDownTicks < CONTROL_RETRY_TICKS) return
    const candidates = this.#cluster
      .nodes('master')
      .map((n) => `${n.options.host ?? ''}:${n.options.port ?? 0}`)
      .concat(this.#o.seeds)
      .filter((k) => k !== this.#controlNode)
    const next = candidates[Math.floor(Math.random() * candidates.length)]
    if (next === undefined) return
    this.#controlDownTicks = 0
    const old = this.#control
    const channels = old.wanted()
    this.#controlNode = next
    this.#control = this.#feed(next, 'subscribe')
    this.#control.start(channels.length > 0 ? channels : this.#permanent)
    void old.close()
    this.#o.events.onChange()
  }
}
