import type { Socket } from 'node:net'
import type { BlackholeMode, DirectionFaults } from './faults.js'

/** What a Link needs from its connection: the live fault settings and somewhere to report. */
export interface LinkHost {
  /** The current faults for this direction (read at every step, so changes apply at once). */
  faults(): DirectionFaults
  blackholeMode(): BlackholeMode
  random(): number
  forwarded(bytes: number): void
  dropped(bytes: number): void
  /** closeAfterBytes was reached: the connection must close. */
  limitReached(): void
}

type Item = { kind: 'data'; data: Buffer; dueAt: number; gapMs: number } | { kind: 'end'; dueAt: number }

/**
 * Bytes queued in the proxy plus bytes the destination socket has not flushed, above which the
 * source is paused: a slow or throttled link must push back on the sender, as a network does,
 * instead of buffering without bound.
 */
const HIGH_WATER = 1 << 20
/** Bandwidth is metered in slices of this much time, so a throttled flow is smooth, not bursty. */
const QUANTUM_MS = 50

/**
 * One direction of a proxied connection: reads from `src`, writes to `dst`, with the faults of
 * that direction in between. Every chunk goes through one FIFO queue with one timer for its head,
 * so delays, slicing and throttling can never reorder bytes.
 */
export class Link {
  private readonly queue: Item[] = []
  private queuedBytes = 0
  private timer: NodeJS.Timeout | undefined
  /** Due time of the last queued item: a later chunk is never due before an earlier one. */
  private lastDueAt = 0
  private lastWriteAt = Number.NEGATIVE_INFINITY
  private tokens = 0
  private tokensAt = performance.now()
  private sent = 0
  private srcPaused = false
  private disposed = false

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly host: LinkHost,
  ) {
    dst.on('drain', () => this.pump())
  }

  /** Bytes written to `dst` so far. */
  get forwardedBytes(): number {
    return this.sent
  }

  /** true while this direction is blackholed (nothing, not even a FIN or RST, may pass). */
  get blackholed(): boolean {
    return this.host.faults().blackhole
  }

  push(chunk: Buffer): void {
    if (this.disposed) return
    const f = this.host.faults()
    if (f.blackhole && this.host.blackholeMode() === 'drop') {
      this.host.dropped(chunk.length)
      return
    }
    const dueAt = this.nextDueAt(f)
    if (f.sliceBytes > 0 && chunk.length > f.sliceBytes) {
      for (let off = 0; off < chunk.length; off += f.sliceBytes) {
        const data = chunk.subarray(off, off + f.sliceBytes)
        this.queue.push({ kind: 'data', data, dueAt, gapMs: off === 0 ? 0 : f.sliceDelayMs })
      }
    } else {
      this.queue.push({ kind: 'data', data: chunk, dueAt, gapMs: 0 })
    }
    this.queuedBytes += chunk.length
    this.pump()
  }

  /** The source sent FIN: pass it on after the bytes before it, with the same delay. */
  pushEnd(): void {
    if (this.disposed) return
    this.queue.push({ kind: 'end', dueAt: this.nextDueAt(this.host.faults()) })
    this.pump()
  }

  /** The faults changed: drop the pending timer and decide again with the new settings. */
  refresh(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.pump()
  }

  /** Forget everything queued and stop; the connection is going away. */
  dispose(): void {
    this.disposed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
    this.queuedBytes = 0
  }

  private nextDueAt(f: DirectionFaults): number {
    const now = performance.now()
    const jitter = f.jitterMs > 0 ? (this.host.random() * 2 - 1) * f.jitterMs : 0
    const dueAt = Math.max(now + Math.max(0, f.latencyMs + jitter), this.lastDueAt)
    this.lastDueAt = dueAt
    return dueAt
  }

  private pump(): void {
    if (this.disposed) return
    // With a timer pending, the head is not due yet; but a chunk just queued behind it still
    // counts towards the back-pressure decision.
    if (this.timer === undefined) this.forward()
    this.updateFlow()
  }

  /** Write every item that is due, then arm the timer for the next one. */
  private forward(): void {
    const f = this.host.faults()
    while (this.queue.length > 0 && !this.disposed) {
      const head = this.queue[0] as Item
      if (f.blackhole) {
        // `hold` keeps everything for after the heal. `drop` loses the bytes in flight, as a
        // partition does, but keeps a FIN: the stream did end, and the peer learns it once healed.
        if (this.host.blackholeMode() === 'hold' || head.kind === 'end') break
        this.queue.shift()
        this.queuedBytes -= head.data.length
        this.host.dropped(head.data.length)
        continue
      }
      if (this.dst.destroyed) {
        this.queue.length = 0
        this.queuedBytes = 0
        break
      }
      const now = performance.now()
      let wait = head.dueAt - now
      if (head.kind === 'end') {
        if (wait > 0) {
          this.schedule(wait)
          break
        }
        this.queue.shift()
        this.dst.end()
        continue
      }
      wait = Math.max(wait, this.lastWriteAt + head.gapMs - now)
      let size = head.data.length
      const rate = f.bandwidthBytesPerSec
      if (rate > 0) {
        const quantum = Math.max(1, Math.floor((rate * QUANTUM_MS) / 1000))
        this.tokens = Math.min(quantum, this.tokens + ((now - this.tokensAt) * rate) / 1000)
        this.tokensAt = now
        size = Math.min(size, quantum)
        if (this.tokens < size) wait = Math.max(wait, ((size - this.tokens) * 1000) / rate)
      }
      if (wait > 0) {
        this.schedule(wait)
        break
      }
      if (f.closeAfterBytes > 0 && this.sent + size >= f.closeAfterBytes) {
        // Forward exactly up to the limit, so a test knows which byte was the last one through.
        const last = head.data.subarray(0, Math.max(0, f.closeAfterBytes - this.sent))
        if (last.length > 0) this.write(last, now)
        this.host.limitReached()
        return
      }
      if (size < head.data.length) {
        this.write(head.data.subarray(0, size), now)
        head.data = head.data.subarray(size)
      } else {
        this.queue.shift()
        this.write(head.data, now)
      }
      if (rate > 0) this.tokens -= size
    }
  }

  private write(data: Buffer, now: number): void {
    this.queuedBytes -= data.length
    this.sent += data.length
    this.lastWriteAt = now
    this.dst.write(data)
    this.host.forwarded(data.length)
  }

  private schedule(waitMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.pump()
    }, Math.ceil(waitMs))
  }

  /** Pause the source while it would overfill us, or while a `hold` blackhole must not read. */
  private updateFlow(): void {
    if (this.disposed || this.src.destroyed) return
    const f = this.host.faults()
    const hold = f.blackhole && this.host.blackholeMode() === 'hold'
    const pause = hold || this.queuedBytes + this.dst.writableLength > HIGH_WATER
    if (pause && !this.srcPaused) {
      this.srcPaused = true
      this.src.pause()
    } else if (!pause && this.srcPaused) {
      this.srcPaused = false
      this.src.resume()
    }
  }
}
