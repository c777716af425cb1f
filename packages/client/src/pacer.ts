import type { ConnectionLimits } from '@holdfast/protocol'

/**
 * Most of the server's command budget the client plans to use. Our clock and the server's disagree
 * by the network's jitter (frames arrive in clumps), so a mirror of its bucket at 100% would still
 * be refused now and then; the retry path handles what slips through.
 */
const HEADROOM = 0.9
/**
 * Share of the server's burst the client plans to spend at once. The server's bucket stops
 * refilling when full, so when our first frames reach it late (a busy network or node) the
 * refill of that delay is lost, and the commands sent on time after them arrive together against
 * a bucket we think fuller than it is. Keeping half the burst in reserve absorbs such clumps: a
 * refused command would be retried after later ones had gone through, out of order.
 */
const BURST_SHARE = 0.5
/** Bytes of envelope a command adds to its data, as the server's byte budget counts them. */
const ENVELOPE_BYTES = 128

/** A mirror of one of the server's token buckets. Unbounded until the server states its limits. */
class Bucket {
  #perMs = Infinity
  #burst = Infinity
  #level = Infinity
  #last = 0

  reset(perSecond: number | undefined, burst: number | undefined): void {
    if (perSecond === undefined || burst === undefined || !(perSecond > 0) || !(burst >= 1)) {
      this.#perMs = Infinity
      this.#burst = Infinity
      this.#level = Infinity
      return
    }
    this.#perMs = (perSecond * HEADROOM) / 1000
    this.#burst = Math.max(1, Math.floor(burst * BURST_SHARE))
    this.#level = this.#burst
    this.#last = Date.now()
  }

  /** Whether `n` fit now; a request larger than the whole bucket fits once it is full. */
  has(n: number): boolean {
    this.#refill()
    return this.#level >= Math.min(n, this.#burst)
  }

  spend(n: number): void {
    this.#refill()
    this.#level -= n
  }

  waitMs(n: number): number {
    this.#refill()
    const need = Math.min(n, this.#burst)
    return this.#level >= need ? 0 : Math.ceil((need - this.#level) / this.#perMs)
  }

  #refill(): void {
    if (this.#perMs === Infinity) return
    const now = Date.now()
    this.#level = Math.min(this.#burst, this.#level + (now - this.#last) * this.#perMs)
    this.#last = now
  }
}

/**
 * A client-side mirror of the server's per-connection budgets (from the connect result's
 * `limits`: commands per second, and bytes per second of client frames), so that flushing a large
 * offline queue paces itself instead of being refused with `rate_limited` and, past a burst of
 * refusals, disconnected. A refusal would also let a later publish overtake the refused one.
 * Without limits it never waits.
 */
export class Pacer {
  readonly #commands = new Bucket()
  readonly #bytes = new Bucket()

  /** A new connection: the server's buckets start full. */
  reset(limits: ConnectionLimits | undefined): void {
    this.#commands.reset(limits?.commandsPerSecond, limits?.commandBurst)
    this.#bytes.reset(limits?.bytesPerSecond, limits?.bytesBurst)
  }

  /** Take a command token (and `dataBytes` plus an envelope of byte budget) if they are there. */
  take(dataBytes = 0): boolean {
    const bytes = dataBytes + ENVELOPE_BYTES
    if (!this.#commands.has(1) || !this.#bytes.has(bytes)) return false
    this.#commands.spend(1)
    this.#bytes.spend(bytes)
    return true
  }

  /** Spend a token even if none is left (commands that must go now: connect, subscribe); later ones wait longer. */
  consume(): void {
    this.#commands.spend(1)
    this.#bytes.spend(ENVELOPE_BYTES)
  }

  /** Milliseconds until a command of `dataBytes` fits (0 when it does). */
  waitMs(dataBytes = 0): number {
    return Math.max(this.#commands.waitMs(1), this.#bytes.waitMs(dataBytes + ENVELOPE_BYTES))
  }
}
