import type { ClientInfo, Publication, StreamPosition } from '@holdfast/protocol'

/**
 * The engine holds everything that must outlive a connection or be shared between nodes:
 * channel streams (offsets, epochs, history), live fan-out between nodes, presence and
 * idempotency ids. The memory engine serves one process; the Redis engine serves a fleet.
 *
 * Rules every engine keeps:
 * - `publish` assigns the offset atomically with the append: two publishes never get one offset.
 * - The live feed delivers a channel's publications to `onPublication` in offset order.
 * - The epoch changes whenever the continuity of a stream is not certain (stream lost, expired).
 * - Nothing hangs: a dead backend makes calls reject with `HoldfastError('engine_unavailable')`.
 */
export interface Engine {
  readonly name: string
  /** Start and register the node's handler for live traffic. Called once, before anything else. */
  start(handler: EngineHandler): Promise<void>
  close(): Promise<void>
  /** true while the engine can serve publishes and history (feeds `/readyz`). */
  isReady(): boolean

  /** Start receiving the live feed of these channels on this node (the first local subscriber joined). */
  subscribe(channel: string): Promise<void>
  /** Stop receiving the live feed (the last local subscriber left). */
  unsubscribe(channel: string): Promise<void>

  /** Append to the channel stream and fan out. With `idempotencyKey`, a repeat returns the first result with `duplicate: true`. */
  publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome>
  /** Publications of a stream, and its current top position. */
  history(channel: string, opts: HistoryQuery): Promise<HistoryPage>
  /** Drop a channel's history; the next publish starts a new epoch. */
  removeHistory(channel: string): Promise<void>

  /** Add or refresh a presence entry (the server refreshes every `presenceTtlMs / 3`). */
  addPresence(channel: string, info: ClientInfo, ttlMs: number): Promise<void>
  removePresence(channel: string, clientId: string): Promise<void>
  presence(channel: string): Promise<Record<string, ClientInfo>>
  presenceStats(channel: string): Promise<{ clients: number; users: number }>

  /** Fan a join or leave out to every node subscribed to the channel (not stored). */
  publishJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): Promise<void>
  /** Fan a control message out to every node (session takeover, disconnect a user...). */
  publishControl(msg: ControlMessage): Promise<void>

  /** Record this node as alive, with its stats, for `ttlMs` (the gateway calls it every ttl/3). */
  registerNode(info: NodeInfo, ttlMs: number): Promise<void>
  /** Remove this node from the registry (on close). */
  unregisterNode(id: string): Promise<void>
  /** Nodes whose registration has not expired. */
  nodes(): Promise<NodeInfo[]>

  /**
   * Claim an idempotency key for a command whose result is not a publication (RPC).
   * `new`: run it and call `completeIdempotent`; `done`: reply with `result`; `pending`: another
   * attempt with the same key is still running.
   */
  claimIdempotent(key: string, ttlMs: number): Promise<IdempotencyClaim>
  completeIdempotent(key: string, result: unknown, ttlMs: number): Promise<void>
  /** Forget a claim whose command failed, so a retry runs it again. */
  releaseIdempotent(key: string): Promise<void>

  /**
   * Record that `node` has (`occupied`) or no longer has subscribers of `channel`, for `ttlMs`
   * unless refreshed; resolves true when that changed whether any live node has them (the
   * channel_occupied/channel_vacated webhooks). Optional: without it, every node is its own fleet.
   */
  occupancy?(channel: string, node: string, occupied: boolean, ttlMs: number): Promise<boolean>
}

export interface EngineHandler {
  /** A publication of a channel this node subscribed to, in offset order per channel. */
  onPublication(channel: string, pub: StreamPublication): void
  onJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): void
  onControl(msg: ControlMessage): void
  /** The engine lost or regained its backend; `lost` means live feeds may have missed publications. */
  onStateChange?(ready: boolean): void
}

/**
 * Optional on a publication an engine returns from `history`: a value (not enumerable) that is the
 * same for the same stored publication for as long as it is stored. The node then encodes that
 * publication once per codec and reuses the bytes in later replies (encoded-publications.ts).
 * Engines whose publications are decoded afresh for every read leave it out.
 */
export const STORED_KEY: unique symbol = Symbol('holdfast.stored')

export interface StoredPublication extends Publication {
  [STORED_KEY]?: object
}

/** A publication as the engine delivers it: with the epoch of the stream it belongs to. */
export interface StreamPublication extends Publication {
  epoch: string
}

export interface StreamOptions {
  /** Most publications kept; 0 keeps none (offsets are still assigned). */
  historySize: number
  /** How long a publication stays in history. */
  historyTtlMs: number
  /** How long the stream's offset/epoch survive without publishes; after that a new epoch starts. */
  streamTtlMs: number
}

/**
 * How far a publication must have travelled before it is acknowledged and fanned out. `none`: it is
 * stored. `replicated`: it is stored and a replica of the engine's backend acknowledged it, so a
 * failover to that replica cannot take it back (engines without replicas treat it as `none`).
 */
export type Durability = 'none' | 'replicated'

export interface PublishOptions extends StreamOptions {
  /** @default 'none' */
  durability?: Durability
  idempotencyKey?: string
  idempotencyTtlMs?: number
  info?: ClientInfo
  /** The data's encoded size in bytes, when the caller measured it (engines with a history budget count it). */
  size?: number
}

export interface PublishOutcome {
  offset: number
  epoch: string
  duplicate: boolean
}

export interface HistoryQuery {
  stream: StreamOptions
  /** Publications strictly after this offset. Without it: the latest `limit` publications. */
  since?: StreamPosition
  /** At most this many; 0 returns only the position. */
  limit: number
  /**
   * At most about this many bytes of publication data (at least one publication): a page cut here
   * keeps the publications nearest `since` (or the newest, without `since`); the caller continues
   * from the last one. Engines that cannot measure may ignore it.
   */
  maxBytes?: number
  reverse?: boolean
}

export interface HistoryPage {
  /** The stream top: offset of the latest publication (0 if none) and the current epoch. */
  offset: number
  epoch: string
  /**
   * Oldest first (newest first with `reverse`). With `since`: the first `limit` publications
   * after it, or none when `continuous` is false. The page is truncated when its last offset is
   * below `offset`.
   */
  publications: Publication[]
  /**
   * With `since`: true when `since` lies in the current epoch, is not beyond the top, and no
   * publication after it was trimmed (by size or TTL). Offset 0 means nothing was delivered yet,
   * so it lies in every epoch: it is continuous while the stream still holds its offset 1.
   * Without `since`: always true.
   */
  continuous: boolean
}

/** A node in the registry (`GET /api/info`). */
export interface NodeInfo {
  id: string
  connections: number
  subscriptions: number
  channels: number
  /** ms since the epoch when the node started. */
  startedAt: number
  /** ms since the epoch of this registration. */
  updatedAt: number
  /** The URL clients reach the node at (its `publicUrl`), when it advertises one (`GET /discovery`). */
  url?: string
  /** The node is draining: it takes no new connections. */
  draining?: boolean
}

export type IdempotencyClaim = { state: 'new' } | { state: 'pending' } | { state: 'done'; result: unknown }

export type ControlMessage =
  | { type: 'takeover'; session: string; client: string; node: string }
  | { type: 'disconnect'; user?: string; client?: string; code: number; reason: string; node: string }
  | { type: 'subscribe'; user: string; channel: string; node: string }
  | { type: 'unsubscribe'; user: string; channel: string; node: string }
  | { type: 'message'; user?: string; client?: string; data: unknown; node: string }
