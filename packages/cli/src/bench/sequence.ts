/**
 * The loss and duplicate checker. Every publication on a channel carries a sequence number (0, 1,
 * 2... per channel) and its send time `t`. A connection is owed exactly the publications sent after
 * its subscription was confirmed (`ackAt`) and before it was closed (`closeAt`): anything sent
 * earlier may or may not reach it, depending on when the server processed the subscribe, so it is
 * neither owed nor held against the server. Since the confirmation travels server -> client and the
 * publication client -> server, a publication sent after the client saw the confirmation reached
 * the server after the subscription: a correct server must deliver it.
 *
 * The state is a few numbers per connection (10k+ connections per process): the first and next
 * sequence, counters, and sets that exist only once something went wrong (a gap or an early
 * arrival). Sequences arrive in order on a correct server (one publisher per channel, one TCP
 * stream), so the common path is two comparisons and an increment.
 */

/** Per-connection checker state; the bench's connection object carries these fields itself. */
export interface SeqState {
  /** Send time of the subscription's confirmation as seen by the client; NaN until then. */
  ackAt: number
  /** When the connection closed; Infinity while open. */
  closeAt: number
  /** First sequence received; -1 before any. */
  first: number
  /** One past the highest sequence received. */
  next: number
  /** Distinct owed deliveries received. */
  owedRecv: number
  dups: number
  outOfOrder: number
  /** Sequences in [first, next) not received yet. Allocated on the first gap only. */
  holes: Set<number> | undefined
  /** Sequences below `first` that arrived later. Allocated on the first such arrival only. */
  early: Set<number> | undefined
  /** The holes set hit its cap: later fills of untracked holes count as duplicates. */
  overflow: boolean
}

/** A runaway gap (a server dropping everything) must not eat the worker's memory. */
export const MAX_HOLES = 1000

export function newSeqState(): SeqState {
  return { ackAt: Number.NaN, closeAt: Number.POSITIVE_INFINITY, first: -1, next: 0, owedRecv: 0, dups: 0, outOfOrder: 0, holes: undefined, early: undefined, overflow: false }
}

function owed(s: SeqState, t: number): void {
  // NaN ackAt (a delivery before the confirmation) compares false: such a publication was sent
  // before the client heard of its subscription, so it was not owed.
  if (t >= s.ackAt && t < s.closeAt) s.owedRecv++
}

/** Record one delivery of `seq` (sent at `t`). Returns false for a duplicate. */
export function recordDelivery(s: SeqState, seq: number, t: number): boolean {
  if (s.first < 0) {
    s.first = seq
    s.next = seq + 1
    owed(s, t)
    return true
  }
  if (seq >= s.next) {
    if (seq > s.next) {
      let holes = s.holes
      for (let k = s.next; k < seq; k++) {
        holes ??= s.holes = new Set()
        if (holes.size >= MAX_HOLES) {
          s.overflow = true
          break
        }
        holes.add(k)
      }
    }
    s.next = seq + 1
    owed(s, t)
    return true
  }
  if (seq >= s.first) {
    if (s.holes?.delete(seq) === true) {
      s.outOfOrder++
      owed(s, t)
      return true
    }
    s.dups++
    return false
  }
  // Below the first sequence seen: late, or a repeat of something late.
  if (s.early?.has(seq) === true) {
    s.dups++
    return false
  }
  ;(s.early ??= new Set()).add(seq)
  s.outOfOrder++
  owed(s, t)
  return true
}

/**
 * A channel's publication log prepared for counting: the send times by sequence (non-decreasing,
 * since one publisher sends them in order) and a prefix count of the ones the server accepted.
 */
export class PreparedLog {
  readonly t: Float64Array
  /** accepted[i] = publications with sequence < i that the server accepted. */
  private readonly accepted: Uint32Array
  /** Send times with refused ones filled in from their neighbour, so that binary search works. */
  private readonly sorted: Float64Array

  constructor(t: Float64Array) {
    this.t = t
    this.accepted = new Uint32Array(t.length + 1)
    this.sorted = new Float64Array(t.length)
    let last = Number.NEGATIVE_INFINITY
    for (let i = 0; i < t.length; i++) {
      const v = t[i] as number
      const ok = !Number.isNaN(v)
      this.accepted[i + 1] = (this.accepted[i] as number) + (ok ? 1 : 0)
      if (ok) last = v
      this.sorted[i] = last
    }
  }

  get length(): number {
    return this.t.length
  }

  /** Accepted publications with sequence in [from, to). */
  countAccepted(from: number, to: number): number {
    const a = Math.max(0, Math.min(from, this.t.length))
    const b = Math.max(a, Math.min(to, this.t.length))
    return (this.accepted[b] as number) - (this.accepted[a] as number)
  }

  /** The first sequence sent at or after `time`. */
  firstAtOrAfter(time: number): number {
    let lo = 0
    let hi = this.sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.sorted[mid] as number) < time) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export interface SeqVerdict {
  /** Publications this connection was owed. */
  owed: number
  /** Owed and never delivered, and no longer able to arrive. */
  lost: number
  /** Owed, not delivered, after the last delivery, while deliveries were still arriving at the end. */
  inFlight: number
  /** Not delivered after the last delivery of a connection the server closed during the run. */
  cutOff: number
}

/**
 * Compare what a connection received with what was published on its channel. `quiescent` says
 * whether deliveries had stopped when the run ended: if they had, everything missing is lost; if
 * not, what is missing after the connection's last delivery may still be on its way (a saturated
 * server's backlog), and is reported as in flight instead. Missing publications *before* the last
 * delivery are lost either way: a stream delivers in order, so they are not coming.
 */
export function checkConnection(s: SeqState, log: PreparedLog, quiescent: boolean): SeqVerdict {
  if (Number.isNaN(s.ackAt)) return { owed: 0, lost: 0, inFlight: 0, cutOff: 0 }
  const from = log.firstAtOrAfter(s.ackAt)
  const closed = Number.isFinite(s.closeAt)
  const to = closed ? log.firstAtOrAfter(s.closeAt) : log.length
  const owedCount = log.countAccepted(from, to)
  const missing = Math.max(0, owedCount - s.owedRecv)
  const tail = Math.min(missing, log.countAccepted(Math.max(from, s.first < 0 ? from : s.next), to))
  // A closed connection's tail is what the server did not send before it closed the connection:
  // the close is reported (disconnectedDuringRun) and is not also a loss. The client sees the
  // close late when its own loop is behind, so its closeAt alone would overstate what was owed.
  if (closed) return { owed: owedCount - tail, lost: missing - tail, inFlight: 0, cutOff: tail }
  const inFlight = quiescent ? 0 : tail
  return { owed: owedCount, lost: missing - inFlight, inFlight, cutOff: 0 }
}
