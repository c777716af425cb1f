import { CloseCodes, type ClientInfo, type CloseCodeName, type Codec, type Command, type ServerMessage } from '@holdfast/protocol'
import type { Logger } from 'pino'
import type { TrafficCounters } from './counters.js'
import { TokenBucket } from './limits/token-bucket.js'
import { encodeMessage, joined, Pieces, separatorOf, type Encoded } from './encoded-publications.js'
import { markDirty, type Flushable } from './outbound.js'
import type { SubscriptionList } from './subscription-list.js'
import type { AuthResult } from './auth/types.js'
import type { TransportSink, TransportSocket, UpgradeRequest } from './transport/transport.js'
import { newTraceId } from './tracing.js'

export const enum ConnState {
  /** Upgraded, waiting for the connect command. */
  Handshake = 0,
  Connected = 1,
  /** Closing or closed: nothing more is sent or processed. */
  Closed = 2,
}

/** Upgrade-time facts a connection keeps until its connect command is handled. */
export interface PendingConnect {
  preAuth: AuthResult | undefined
  req: UpgradeRequest | undefined
}

/** What a connection remembers about one of its subscriptions (filed in its SubscriptionList). */
export interface ConnSubscription {
  channel: string
  /** The connection's next subscription (the list is chained through its records). */
  next: ConnSubscription | undefined
  /** false while the subscribe command is recovering; publications are buffered by the hub meanwhile. */
  live: boolean
  /** Presence is kept for this subscription (refreshed by the node). */
  presence: boolean
  /** Channel info granted by the backend proxy's subscribe: shown in presence instead of the connection's. */
  info?: unknown
  /** The backend proxy's subscribe overrode the namespace's joinLeave for this subscription. */
  joinLeave?: boolean
  /** Subscribed with a channel token: ends the subscription at the token's expiry. */
  tokenTimer?: NodeJS.Timeout
}

/** A rate as the options give it. */
export interface Rate {
  readonly perSecond: number
  readonly burst: number
}

/** The per-connection rates: the node's options object itself (nothing per connection). */
export interface ConnectionRates {
  /** Commands per second. */
  readonly commandRate: Rate
  /** Bytes of client frames per second. */
  readonly inboundByteRate: Rate
}

/** Hooks the node gives each connection (one object for all of them: nothing here costs per connection). */
export interface ConnectionOwner {
  readonly maxQueueBytes: number
  /** The command rate and the inbound byte rate (the node's options). */
  readonly rates: ConnectionRates
  /** The node's logger; each connection makes a child of it on first use. */
  readonly log: Logger | undefined
  /** Bytes and messages written, counted per flush (one write), never per message queued. */
  readonly counters: TrafficCounters
  onSlowConsumer(conn: Connection): void
  /** A frame from the client (the connection is its transport's sink: no closures per socket). */
  connectionFrame(conn: Connection, data: Uint8Array | string, isBinary: boolean): void
  connectionClosed(conn: Connection, code: number, reason: string): void
}

let counter = 0

/** How long a peer closed for misbehaving gets to answer the close before its socket is dropped. */
const DROP_GRACE_MS = 1000

function terminateSocket(socket: TransportSocket): void {
  socket.terminate()
}

/** How far past maxQueueBytes one turn's burst may queue before the connection counts as slow. */
const BURST_FACTOR = 4
/** A frame larger than this is written in pieces (one system call) rather than joined into one buffer first. */
const PIECES_ABOVE = 64 * 1024

/** A turn's messages as the pieces of one frame, with the codec's separator between messages. */
function framePieces(codec: Codec, out: readonly Encoded[]): Pieces {
  const sep = separatorOf(codec)
  const parts: Uint8Array[] = []
  let size = 0
  for (let i = 0; i < out.length; i++) {
    if (i > 0 && sep !== undefined) {
      parts.push(sep)
      size += sep.byteLength
    }
    const m = out[i] as Encoded
    if (m instanceof Pieces) parts.push(...m.parts)
    else parts.push(m)
    size += m.byteLength
  }
  return new Pieces(parts, size)
}

/**
 * One client connection: identity, subscriptions, the coalescing send queue and heartbeat state.
 * Kept small (a node holds tens of thousands): optional state is created lazily.
 */
export class Connection implements Flushable, TransportSink {
  readonly id: string
  readonly socket: TransportSocket
  readonly codec: Codec
  readonly ip: string
  /** The trace id given at the upgrade; a random one is made on first use when none was (most connections never log). */
  #traceId: string | undefined
  #bucket: TokenBucket | undefined = undefined
  #bytes: TokenBucket | undefined = undefined
  state: ConnState = ConnState.Handshake
  user = ''
  session = ''
  info: unknown = undefined
  /** Token expiry, ms since the epoch; 0 when the credentials do not expire. */
  expiresAt = 0
  /** Subscriptions by channel (Map-like; created by the first). */
  subs: SubscriptionList<ConnSubscription> | undefined = undefined
  /** Consecutive commands refused by the rate limit. */
  rateRejects = 0
  /** Ordered commands waiting while an earlier one runs (see commands.ts). */
  inbox: Command[] | undefined = undefined
  busy = false
  /** Bytes of read replies per second (created by the first read; see commands.ts #admitRead). */
  replies: TokenBucket | undefined = undefined
  /** Reads (history, presence) waiting while an earlier one runs: one read at a time (see commands.ts). */
  readInbox: Command[] | undefined = undefined
  readBusy = false
  /** Bytes handed to the socket so far; less what it still buffers, what the client took. */
  bytesWritten = 0
  /** What the client had taken at the last ping: a socket holding bytes that took nothing since is not being read. */
  takenAtPing = 0
  // heartbeat (driven by the node's timer wheel; times on its clock, heartbeats.ts monotonicMs)
  awaitingPong = false
  pingSentAt = 0
  nextPingAt = 0
  // timer-wheel intrusive fields (see timer-wheel.ts)
  wheelDue = 0
  wheelSlot = -1
  wheelPrev: Connection | undefined = undefined
  wheelNext: Connection | undefined = undefined
  // outbound queue
  queuedForFlush = false
  /** What this turn queued: one message, or several (joined into one frame at the flush). */
  #out: Encoded | Encoded[] | undefined = undefined
  /** Bytes of pushes (unrequested) queued this turn: the burst bound applies to these. */
  #pushBytes = 0
  /** Bytes of replies queued this turn (added to #requested when they are written). */
  #replyBytes = 0
  /**
   * Bytes of replies the client asked for (a recovery, a history page), written in earlier turns,
   * that may still sit in the socket's buffer. They are bounded by the command's own limits, not by
   * maxQueueBytes: a client that fell far behind must be able to take its recovery in one reply.
   * Shrinks with the buffer (the socket drains in order, so what is left of earlier replies is at
   * most what it still holds).
   */
  #requested = 0
  #owner: ConnectionOwner
  #log: Logger | undefined
  /** Close code this side decided, for the disconnect hook and metrics. */
  closeCode = 0
  closeReason = ''
  /** What the upgrade learned for the connect command (token verified before it, the request); cleared by connect. */
  pending: PendingConnect | undefined = undefined

  constructor(
    socket: TransportSocket,
    codec: Codec,
    ip: string,
    traceId: string | undefined,
    owner: ConnectionOwner,
  ) {
    this.id = `${(++counter).toString(36)}${Math.random().toString(36).slice(2, 8)}`
    this.socket = socket
    this.codec = codec
    this.ip = ip
    this.#traceId = traceId
    this.#owner = owner
  }

  /**
   * Command rate (one token per command). Created full on first use and dropped again by
   * `releaseIdle` once full: an idle connection holds no buckets, and a full bucket dropped and
   * created anew is the same bucket.
   */
  get bucket(): TokenBucket {
    const rate = this.#owner.rates.commandRate
    return (this.#bucket ??= new TokenBucket(rate.perSecond, rate.burst, performance.now()))
  }

  /** Inbound byte rate (one token per byte of client frames); created and dropped as `bucket`. */
  get bytes(): TokenBucket {
    const rate = this.#owner.rates.inboundByteRate
    return (this.#bytes ??= new TokenBucket(rate.perSecond, rate.burst, performance.now()))
  }

  /** Drop the rate buckets that are full at `now` (performance.now()): they hold nothing a new one would not. */
  releaseIdle(now: number): void {
    const b = this.#bucket
    if (b !== undefined && b.tokens(now) >= b.burst) this.#bucket = undefined
    const y = this.#bytes
    if (y !== undefined && y.tokens(now) >= y.burst) this.#bytes = undefined
  }

  onFrame(data: Uint8Array | string, isBinary: boolean): void {
    this.#owner.connectionFrame(this, data, isBinary)
  }

  onClose(code: number, reason: string): void {
    this.#owner.connectionClosed(this, code, reason)
  }

  /** The trace id the connection logs and calls the backend under. */
  get traceId(): string {
    return (this.#traceId ??= newTraceId())
  }

  /** A child logger with the connection and trace ids on every line, created on first use. */
  get log(): Logger | undefined {
    const base = this.#owner.log
    if (this.#log === undefined && base !== undefined) this.#log = base.child({ client: this.id, trace: this.traceId })
    return this.#log
  }

  /**
   * The connection's logger if `level` is enabled, else undefined. Use it for per-connection
   * chatter (connect, disconnect at debug): a child logger costs about a kilobyte, and creating
   * one for every connection just to drop a disabled line would double the memory per socket.
   */
  logAt(level: 'debug' | 'trace'): Logger | undefined {
    return this.#owner.log?.isLevelEnabled(level) === true ? this.log : undefined
  }

  /** Who this connection is in presence and join/leave; a subscription's own info (backend proxy) wins. */
  clientInfo(sub?: ConnSubscription): ClientInfo {
    const info = sub?.info ?? this.info
    return info === undefined ? { client: this.id, user: this.user } : { client: this.id, user: this.user, info }
  }

  /** Queue one push (encoded here). */
  send(msg: ServerMessage): void {
    this.enqueue(this.codec.encode(msg))
  }

  /**
   * Queue the reply to a client's command. Replies do not count against the push bounds (the
   * client asked for them): without this, a client that fell further behind than the bound could
   * never take the recovery that catches it up. They are bounded instead by `maxReplyBytes`: a
   * history or recovery page holds at most that much, a read waits behind the one before it and is
   * refused while earlier replies are still buffered (`replyBacklog`), and a socket that stops
   * draining is closed at the next heartbeat.
   */
  reply(msg: ServerMessage): number {
    if (this.state === ConnState.Closed) return 0
    const bytes = encodeMessage(this.codec, msg)
    this.queueReply(bytes)
    return bytes.byteLength
  }

  /** Queue already-encoded bytes the client asked for (a recovery page sent as `pub` pushes). */
  queueReply(bytes: Encoded): void {
    if (this.state === ConnState.Closed) return
    this.#replyBytes += bytes.byteLength
    this.#queue(bytes)
  }

  /** Bytes queued this turn or held by the socket: what the client has yet to take. */
  backlog(): number {
    return this.socket.bufferedAmount + this.#pushBytes + this.#replyBytes
  }

  /** Bytes of replies queued or written and not yet taken by the client (at most what the socket still holds). */
  replyBacklog(): number {
    const buffered = this.socket.bufferedAmount
    if (this.#requested > buffered) this.#requested = buffered
    return this.#requested + this.#replyBytes
  }

  /** Queue already-encoded bytes (a publication encoded once for all subscribers). */
  enqueue(bytes: Uint8Array): void {
    if (this.state === ConnState.Closed) return
    const max = this.#owner.maxQueueBytes
    if (this.#pushBytes === 0) {
      // The first push this turn: a slow consumer is one whose socket still holds more than the
      // limit from earlier turns, beyond the replies it asked for. (Read once per turn: nothing is
      // written to the socket between flushes.)
      const buffered = this.socket.bufferedAmount
      if (this.#requested > buffered) this.#requested = buffered
      if (buffered - this.#requested > max) {
        this.#owner.onSlowConsumer(this)
        return
      }
    }
    // What this turn queued is not yet the client's fault (a burst of publications), so it only
    // trips a looser bound that keeps memory finite.
    this.#pushBytes += bytes.byteLength
    if (this.#pushBytes > BURST_FACTOR * max) {
      this.#owner.onSlowConsumer(this)
      return
    }
    this.#queue(bytes)
  }

  #queue(bytes: Encoded): void {
    const out = this.#out
    if (out === undefined) this.#out = bytes
    else if (Array.isArray(out)) out.push(bytes)
    else this.#out = [out, bytes]
    markDirty(this)
  }

  flush(): void {
    const out = this.#out
    if (out === undefined || this.state === ConnState.Closed) return
    this.#out = undefined
    this.#pushBytes = 0
    this.#requested += this.#replyBytes
    this.#replyBytes = 0
    const traffic = this.#owner.counters
    let frame: Encoded
    if (Array.isArray(out)) {
      let size = 0
      let whole = true
      for (const m of out) {
        size += m.byteLength
        if (m instanceof Pieces) whole = false
      }
      frame = whole && size <= PIECES_ABOVE ? this.codec.frame(out as Uint8Array[]) : framePieces(this.codec, out)
      traffic.messagesOut += out.length
    } else {
      frame = out
      traffic.messagesOut++
    }
    traffic.bytesOut += frame.byteLength
    // As the socket counts them: with the WebSocket frame header (server frames are unmasked).
    const len = frame.byteLength
    this.bytesWritten += len + (len < 126 ? 2 : len < 65_536 ? 4 : 10)
    if (!(frame instanceof Pieces)) this.socket.write(frame, this.codec.binary)
    else if (this.socket.writePieces !== undefined) this.socket.writePieces(frame.parts, len, this.codec.binary)
    else this.socket.write(joined(frame.parts, len), this.codec.binary)
  }

  /**
   * Close with a code from the table: a `disconnect` push goes first (proxies may rewrite close
   * codes, the push survives), then the close frame. Returns false if already closing.
   */
  close(name: CloseCodeName, reason: string = name): boolean {
    return this.closeWith(CloseCodes[name].code, reason)
  }

  /**
   * `dropQueued`: discard what is queued (a slow consumer's backlog; it recovers from history).
   * Otherwise queued replies (acks of stored publishes) still go out before the disconnect push.
   */
  closeWith(code: number, reason: string, dropQueued = false): boolean {
    if (this.state === ConnState.Closed) return false
    this.closeCode = code
    this.closeReason = reason
    const push = this.codec.encode({ type: 'disconnect', code, reason })
    if (dropQueued) this.#out = undefined
    this.#queue(push)
    this.flush()
    this.state = ConnState.Closed
    try {
      this.socket.close(code, reason.slice(0, 120))
    } catch {
      this.socket.terminate()
    }
    return true
  }

  /**
   * Close, and drop the socket after a short grace whether or not the peer answers the close: for
   * a peer that does not read (its buffers are full) or keeps flooding (the closing handshake would
   * make the node parse its frames until ws's 30 s close timeout).
   */
  closeAndDrop(code: number, reason: string, dropQueued: boolean): void {
    if (!this.closeWith(code, reason, dropQueued)) return
    // Nothing it sends matters any more: stop parsing it.
    this.socket.pause?.()
    setTimeout(terminateSocket, DROP_GRACE_MS, this.socket).unref()
  }

  /** Drop without a handshake (the peer is unresponsive). */
  terminate(code: number, reason: string): void {
    if (this.state !== ConnState.Closed) {
      this.closeCode = code
      this.closeReason = reason
      this.state = ConnState.Closed
    }
    this.#out = undefined
    this.socket.terminate()
  }
}
