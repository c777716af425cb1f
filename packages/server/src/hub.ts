import { continuesFrom, type ClientInfo, type Codec, type Publication, type StreamPosition, type SubscribeResult } from '@holdfast/protocol'
import { ConnState, type Connection } from './connection.js'
import type { Engine, StreamPublication } from './engine/engine.js'
import { encodePubPush, pubPush } from './encoded-publications.js'
import type { ResolvedChannelOptions } from './options.js'

/** Most live publications held for one subscriber while it reads history. */
const MAX_RECOVERY_BUFFER = 10_000

/** A subscriber whose subscribe is still reading history: live publications wait in `buffer`. */
interface Recovering {
  conn: Connection
  buffer: StreamPublication[]
}

/**
 * One channel with subscribers on this node. Shared by all of them: one object per channel. Most
 * channels of a large node are personal (one subscriber each), so an entry stays small: the live
 * subscribers are the connection itself until a second one joins (then a Set), and the engine
 * subscribe's promise is dropped once it resolved.
 */
interface ChannelEntry {
  name: string
  /** Live subscribers: none, one connection, or (from the second on) a Set. */
  live: Connection | Set<Connection> | undefined
  /** Subscribers still reading history; undefined when none (most channels, most of the time). */
  recovering: Set<Recovering> | undefined
  /** Last publication the live feed delivered here; undefined until the first one. */
  epoch: string | undefined
  offset: number
  /** Resolves once the engine feeds this node the channel (the first subscriber awaits it); undefined after. */
  ready: Promise<void> | undefined
}

function liveCount(entry: ChannelEntry): number {
  const live = entry.live
  return live === undefined ? 0 : live instanceof Set ? live.size : 1
}

function addLive(entry: ChannelEntry, conn: Connection): void {
  const live = entry.live
  if (live === undefined) entry.live = conn
  else if (live instanceof Set) live.add(conn)
  else entry.live = new Set([live, conn])
}

/** Remove a live subscriber; false when it was not one. */
function deleteLive(entry: ChannelEntry, conn: Connection): boolean {
  const live = entry.live
  if (live === conn) {
    entry.live = undefined
    return true
  }
  if (!(live instanceof Set) || !live.delete(conn)) return false
  if (live.size === 0) entry.live = undefined
  return true
}

/**
 * Queue one message to every live subscriber, encoded once per codec in use (JSON or MessagePack):
 * the same bytes go to every subscriber of a codec.
 */
function fanOut(entry: ChannelEntry, encode: (codec: Codec) => Uint8Array): void {
  const live = entry.live
  if (live === undefined) return
  if (!(live instanceof Set)) {
    live.enqueue(encode(live.codec))
    return
  }
  let json: Uint8Array | undefined
  let msgpack: Uint8Array | undefined
  for (const conn of live) conn.enqueue(conn.codec.binary ? (msgpack ??= encode(conn.codec)) : (json ??= encode(conn.codec)))
}

/** The live subscribers as an array: for loops whose callbacks may remove them. */
function liveSnapshot(entry: ChannelEntry): Connection[] {
  const live = entry.live
  return live === undefined ? [] : live instanceof Set ? [...live] : [live]
}

/** Remove a recovering subscriber; the set goes when it empties (deleting while iterating is safe). */
function unrecover(entry: ChannelEntry, rec: Recovering): void {
  const set = entry.recovering
  if (set === undefined) return
  set.delete(rec)
  if (set.size === 0) entry.recovering = undefined
}

export interface HubEvents {
  /** A gap or epoch change was seen on the live feed: the subscriber must reconnect and recover. */
  onInsufficientState(conn: Connection, channel: string): void
  /** A subscriber stopped taking the recovery it asked for: close it as a slow consumer. */
  onStalled(conn: Connection): void
  /** A subscription went live (`joined`) or a live one ended. */
  onMember?(conn: Connection, channel: string, joined: boolean): void
  /** The channel got its first subscriber on this node (`occupied`) or lost its last. */
  onLocalChannel?(channel: string, occupied: boolean): void
}

export interface HubOptions {
  /** Most bytes of publications in one recovery page; the rest follows in further pages as the client reads. */
  maxReplyBytes: number
  /** How long a recovery waits for the client to take a page before the client counts as stalled, in ms. @default 30000 */
  stallMs?: number
}

/** How often a recovery looks at the socket while it waits for the client to take a page. */
const DRAIN_POLL_MS = 20

/**
 * Resolves true once the connection holds at most `lowWater` bytes not yet taken (queued or in its socket), false when the
 * connection closed or `timeoutMs` passed first. A recovery waits here between pages, so a page is
 * read from the engine only when the client has taken the one before it.
 */
function drained(conn: Connection, lowWater: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  return new Promise((resolve) => {
    const check = (): void => {
      if (conn.state === ConnState.Closed) resolve(false)
      else if (conn.backlog() <= lowWater) resolve(true)
      else if (performance.now() >= deadline) resolve(false)
      else setTimeout(check, DRAIN_POLL_MS)
    }
    check()
  })
}

/**
 * The node's channel table and fan-out. A publication is encoded once per codec in use and the
 * same bytes are queued to every subscriber. Subscribing merges history with the live feed so
 * that nothing published meanwhile is lost or delivered twice (the subscribe race).
 */
export class Hub {
  readonly channels = new Map<string, ChannelEntry>()
  readonly #engine: Engine
  readonly #events: HubEvents
  readonly #maxReplyBytes: number
  readonly #stallMs: number

  constructor(engine: Engine, events: HubEvents, opts: HubOptions) {
    this.#engine = engine
    this.#events = events
    this.#maxReplyBytes = opts.maxReplyBytes
    this.#stallMs = opts.stallMs ?? 30_000
  }

  get size(): number {
    return this.channels.size
  }

  subscriberCount(channel: string): number {
    const e = this.channels.get(channel)
    return e === undefined ? 0 : liveCount(e) + (e.recovering?.size ?? 0)
  }

  #entry(channel: string): ChannelEntry {
    let e = this.channels.get(channel)
    if (e === undefined) {
      const entry: ChannelEntry = {
        name: channel,
        live: undefined,
        recovering: undefined,
        epoch: undefined,
        offset: 0,
        ready: undefined,
      }
      // A failed subscribe fails every subscriber waiting on it, and the last of them drops the
      // entry (subscribe's catch), so the next subscriber tries again rather than inherit it.
      entry.ready = this.#engine.subscribe(channel)
      this.channels.set(channel, entry)
      e = entry
      this.#events.onLocalChannel?.(channel, true)
    }
    return e
  }

  /**
   * Subscribe `conn` to `channel`, recovering from `recover` when given. `reply` is called with
   * the subscribe result; a recovery longer than `maxReplyBytes` continues after it in `pub`
   * pushes, one page at a time as the client takes them. Then, in the same synchronous step,
   * publications that arrived meanwhile are queued and the connection goes live: nothing slips
   * between. Resolves false when the connection went away or hit a gap meanwhile; rejects (leaving
   * no trace) when the engine fails before the reply.
   */
  async subscribe(
    conn: Connection,
    channel: string,
    opts: ResolvedChannelOptions,
    recover: StreamPosition | undefined,
    reply: (result: SubscribeResult) => void,
  ): Promise<boolean> {
    const entry = this.#entry(channel)
    const rec: Recovering = { conn, buffer: [] }
    // Join the live feed *before* reading history: anything published after the read is buffered.
    ;(entry.recovering ??= new Set()).add(rec)
    const gone = (): boolean => conn.state === ConnState.Closed || conn.subs?.get(channel) === undefined || this.channels.get(channel) !== entry
    let page
    try {
      await entry.ready
      entry.ready = undefined // resolved: nothing left to wait for
      page = await this.#engine.history(channel, {
        stream: opts,
        ...(recover === undefined ? {} : { since: recover }),
        limit: recover === undefined ? 0 : opts.maxRecoverPublications,
        maxBytes: this.#maxReplyBytes,
      })
    } catch (err) {
      unrecover(entry, rec)
      this.#dropIfEmpty(entry)
      throw err
    }
    if (gone()) return this.#abandon(entry, rec)
    if (entry.epoch === undefined) {
      entry.epoch = page.epoch
      entry.offset = page.offset
    }
    // Where the client stands once it has this reply.
    const at: StreamPosition = { epoch: page.epoch, offset: page.offset }
    let publications: Publication[] = []
    let recovered = false
    // More missed than maxRecoverPublications is refused whole rather than replayed in part.
    if (recover !== undefined && page.continuous && page.offset - recover.offset <= opts.maxRecoverPublications) {
      recovered = true
      publications = page.publications
      at.offset = publications.at(-1)?.offset ?? recover.offset
    }
    reply({ epoch: page.epoch, offset: at.offset, recovered, wasRecovering: recover !== undefined, publications })
    // The rest of a recovery cut by bytes: page after page, each read once the client took the last.
    const top = page.offset
    while (at.offset < top) {
      if (!(await drained(conn, this.#maxReplyBytes / 2, this.#stallMs))) {
        if (conn.state !== ConnState.Closed && !gone()) this.#events.onStalled(conn)
        return this.#abandon(entry, rec)
      }
      if (gone()) return this.#abandon(entry, rec)
      let next
      try {
        next = await this.#engine.history(channel, { stream: opts, since: at, limit: opts.maxRecoverPublications, maxBytes: this.#maxReplyBytes })
      } catch {
        next = undefined
      }
      if (gone()) return this.#abandon(entry, rec)
      // Trimmed, lost or failed while the client was reading: a gap it must hear about.
      if (next === undefined || !next.continuous || next.epoch !== at.epoch || next.publications.length === 0) {
        this.#abandon(entry, rec)
        this.#events.onInsufficientState(conn, channel)
        return false
      }
      for (const pub of next.publications) {
        conn.queueReply(encodePubPush(conn.codec, channel, at.epoch, pub))
        at.offset = pub.offset
      }
    }
    // From here to the end: synchronous.
    unrecover(entry, rec)
    for (const pub of rec.buffer) {
      if (pub.epoch === at.epoch && pub.offset <= at.offset) continue
      if (pub.offset !== at.offset + 1 || !continuesFrom(at, pub.epoch)) {
        this.#events.onInsufficientState(conn, channel)
        return false
      }
      at.epoch = pub.epoch
      at.offset = pub.offset
      conn.enqueue(this.#encodePub(conn.codec, channel, pub))
    }
    addLive(entry, conn)
    this.#events.onMember?.(conn, channel, true)
    return true
  }

  /** A subscribe that ends before going live leaves nothing behind. */
  #abandon(entry: ChannelEntry, rec: Recovering): false {
    unrecover(entry, rec)
    this.#dropIfEmpty(entry)
    return false
  }

  /**
   * After the engine came back: any channel whose stream moved past what this node delivered
   * (publications lost while the feed was down), or changed epoch, sends its live subscribers to
   * recovery with insufficient_state. Channels that did not move are left alone.
   */
  async resync(optionsOf: (channel: string) => ResolvedChannelOptions): Promise<void> {
    for (const entry of [...this.channels.values()]) {
      if (entry.epoch === undefined || entry.live === undefined) continue
      let page
      try {
        page = await this.#engine.history(entry.name, { stream: optionsOf(entry.name), limit: 0 })
      } catch {
        return // still down; the next state change retries
      }
      if (this.channels.get(entry.name) !== entry) continue
      // Moved on (publications the feed missed) or back (a stream that lost its top): recover.
      if (page.offset !== entry.offset || !continuesFrom({ epoch: entry.epoch, offset: entry.offset }, page.epoch)) {
        for (const conn of liveSnapshot(entry)) this.#events.onInsufficientState(conn, entry.name)
      }
    }
  }

  /** Remove a connection from a channel (unsubscribe or close). */
  remove(conn: Connection, channel: string): void {
    const entry = this.channels.get(channel)
    if (entry === undefined) return
    if (deleteLive(entry, conn)) this.#events.onMember?.(conn, channel, false)
    if (entry.recovering !== undefined) for (const r of entry.recovering) if (r.conn === conn) unrecover(entry, r)
    this.#dropIfEmpty(entry)
  }

  #dropIfEmpty(entry: ChannelEntry): void {
    if (entry.live !== undefined || entry.recovering !== undefined) return
    if (this.channels.get(entry.name) !== entry) return
    this.channels.delete(entry.name)
    this.#events.onLocalChannel?.(entry.name, false)
    // Fire and forget: a failed unsubscribe only means extra traffic until the engine forgets us.
    this.#engine.unsubscribe(entry.name).catch(() => {})
  }

  /** The engine's live feed. Hot path: one encode per codec, one enqueue per subscriber. */
  onPublication(channel: string, pub: StreamPublication): void {
    const entry = this.channels.get(channel)
    if (entry === undefined) return
    if (entry.epoch !== undefined) {
      if (pub.epoch === entry.epoch && pub.offset <= entry.offset) return // a repeat from the feed
      if (pub.offset !== entry.offset + 1 || (pub.epoch !== entry.epoch && entry.offset !== 0)) {
        // The feed skipped something (or the stream restarted): every live subscriber missed it.
        // They reconnect and recover from history (or learn recovered:false); never a silent gap.
        entry.epoch = pub.epoch
        entry.offset = pub.offset
        for (const conn of liveSnapshot(entry)) this.#events.onInsufficientState(conn, channel)
        this.#buffer(entry, pub)
        return
      }
    }
    entry.epoch = pub.epoch
    entry.offset = pub.offset
    this.#buffer(entry, pub)
    fanOut(entry, (codec) => this.#encodePub(codec, channel, pub))
  }

  /**
   * Hold a live publication for subscribers still reading history. The buffer is bounded: a
   * history read so slow that this many publications arrive meanwhile is abandoned, and the
   * client recovers on reconnect instead of the node growing without limit.
   */
  #buffer(entry: ChannelEntry, pub: StreamPublication): void {
    if (entry.recovering === undefined) return
    for (const r of entry.recovering) {
      if (r.buffer.length >= MAX_RECOVERY_BUFFER) {
        unrecover(entry, r)
        this.#events.onInsufficientState(r.conn, entry.name)
      } else r.buffer.push(pub)
    }
  }

  onJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): void {
    const entry = this.channels.get(channel)
    if (entry !== undefined) fanOut(entry, (codec) => codec.encode({ type: kind, channel, info }))
  }

  #encodePub(codec: Codec, channel: string, pub: StreamPublication): Uint8Array {
    return codec.encode(pubPush(channel, pub.epoch, pub))
  }
}
