/**
 * A hashed timing wheel: every heartbeat, pong deadline and connect timeout of a node shares ONE
 * interval timer instead of one setTimeout per connection.
 *
 * At 100k connections, per-connection timers cost a Timeout object each, a heap operation on every
 * re-arm (each ping re-arms) and GC pressure; the wheel costs four fields on the object that owns
 * the deadline and O(1), allocation-free schedule/cancel. The price is precision: an entry fires
 * between its delay and its delay plus one tick (plus event-loop lateness), which is what
 * heartbeats need anyway.
 */

/**
 * The intrusive fields a wheel keeps on the object it times. Each slot is a doubly linked list
 * threaded through these fields, which is what makes schedule/cancel O(1) without allocating.
 * Initialise them in the owner's constructor (`wheelDue = 0; wheelSlot = -1; wheelPrev =
 * undefined; wheelNext = undefined`) so every instance has the same shape; never write them.
 *
 * An object can hold one position in one wheel. An owner with several independent deadlines either
 * keeps a single "next deadline" (and decides what it meant when it fires) or uses one small entry
 * object per deadline.
 */
export interface WheelEntry {
  /** Due time on the wheel's clock, in ms. Meaningful only while scheduled. */
  wheelDue: number
  /** Index of the slot whose list holds the entry, or -1 when not scheduled. */
  wheelSlot: number
  /** Neighbours in the slot's list. */
  wheelPrev: WheelEntry | undefined
  wheelNext: WheelEntry | undefined
}

export interface TimerWheelOptions<T extends WheelEntry> {
  /** Tick length in ms: the wheel's resolution and its interval period. */
  tickMs: number
  /**
   * Number of slots. One revolution is `tickMs * slots`; longer delays still work but their
   * entries are looked at once per revolution until due, so size it to cover the common delays.
   * @default 512
   */
  slots?: number
  /** Called once for each entry that comes due. May schedule and cancel entries, this one included. */
  onExpire: (entry: T) => void
  /** Receives what `onExpire` threw; the wheel goes on firing the other entries. @default console.error */
  onError?: (error: unknown, entry: T) => void
  /** Clock in ms. It must not go backwards: the wheel would stall until it catches up. @default performance.now */
  now?: () => number
}

const UNSCHEDULED = -1
const DEFAULT_SLOTS = 512

export function isScheduled(entry: WheelEntry): boolean {
  return entry.wheelSlot !== UNSCHEDULED
}

function defaultOnError(error: unknown): void {
  console.error('holdfast: timer wheel onExpire threw', error)
}

/**
 * Time is cut into ticks counted from `origin`, the moment the interval was armed, so tick k is
 * processed by the interval's k-th callback, at `origin + k * tickMs` plus lateness. An entry due
 * at `d` goes to the first tick at or after `d`, hence fires within one tick after `d`. Aligning
 * ticks to the interval rather than to absolute time is what keeps the bound at one tick, not two.
 */
export class TimerWheel<T extends WheelEntry> {
  private readonly tickMs: number
  private readonly slotCount: number
  private readonly heads: (WheelEntry | undefined)[]
  private readonly onExpire: (entry: T) => void
  private readonly onError: (error: unknown, entry: T) => void
  private readonly now: () => number

  private count = 0
  private origin = 0
  /** Last tick processed; entries are never placed at or before it. */
  private cursor = 0
  /** start() was called and stop() was not. */
  private running = false
  private interval: ReturnType<typeof setInterval> | undefined = undefined
  /**
   * Bumped whenever the interval is armed or disarmed. A tick loop that sees it change (onExpire
   * called stop(), or cancelled the last entry and scheduled a new one, re-arming) stops at once,
   * and a callback of a cleared interval that still runs does nothing.
   */
  private generation = 0
  /**
   * The entry the tick loop will look at next. unlink() moves it forward when it removes that
   * entry, so onExpire may cancel or reschedule any entry without derailing the loop.
   */
  private visitNext: WheelEntry | undefined = undefined

  constructor(options: TimerWheelOptions<T>) {
    const { tickMs, slots = DEFAULT_SLOTS, onExpire, onError = defaultOnError, now = () => performance.now() } = options
    if (typeof tickMs !== 'number' || !(tickMs > 0) || tickMs === Infinity) {
      throw new TypeError(`holdfast: timer wheel "tickMs" must be a positive number, got ${String(tickMs)}`)
    }
    if (typeof slots !== 'number' || !Number.isInteger(slots) || slots < 1) {
      throw new TypeError(`holdfast: timer wheel "slots" must be a positive integer, got ${String(slots)}`)
    }
    if (typeof onExpire !== 'function') throw new TypeError('holdfast: timer wheel "onExpire" must be a function')
    this.tickMs = tickMs
    this.slotCount = slots
    this.heads = new Array<WheelEntry | undefined>(slots).fill(undefined)
    this.onExpire = onExpire
    this.onError = onError
    this.now = now
  }

  /** Entries scheduled and not yet fired or cancelled. */
  get size(): number {
    return this.count
  }

  /** Whether an interval timer is pending (false when stopped or empty). */
  get armed(): boolean {
    return this.interval !== undefined
  }

  /**
   * Fires `entry` after `delayMs` (at least, and at most one tick more). An entry that is already
   * scheduled is moved, so re-arming a heartbeat is a single call.
   */
  schedule(entry: T, delayMs: number): void {
    if (!(delayMs >= 0)) {
      // Negative means "as soon as possible"; NaN is a caller bug that would otherwise never fire.
      if (delayMs < 0) delayMs = 0
      else throw new TypeError(`holdfast: timer wheel delay must be a number, got ${String(delayMs)}`)
    } else if (delayMs === Infinity) {
      throw new TypeError('holdfast: timer wheel delay must be finite')
    }
    if (entry.wheelSlot !== UNSCHEDULED) {
      this.unlink(entry)
      this.count--
    }
    // Empty and running means disarmed: arm first, so the slot is computed on the new origin.
    if (this.running && this.interval === undefined) this.arm()
    const due = this.now() + delayMs
    entry.wheelDue = due
    this.link(entry, this.slotFor(due))
    this.count++
  }

  /** Removes `entry` if scheduled; a no-op otherwise. */
  cancel(entry: T): void {
    if (entry.wheelSlot === UNSCHEDULED) return
    this.unlink(entry)
    this.count--
    // An idle node (or a test) then has no pending timer at all.
    if (this.count === 0) this.disarm()
  }

  /** Starts firing. Entries scheduled while stopped keep their due times; overdue ones fire on the first tick. */
  start(): void {
    if (this.running) return
    this.running = true
    if (this.count > 0) this.arm()
  }

  /** Stops firing and clears the interval. Entries stay scheduled until `start()` or `cancel()`. */
  stop(): void {
    this.running = false
    this.disarm()
  }

  private arm(): void {
    this.disarm()
    this.origin = this.now()
    this.cursor = 0
    if (this.count > 0) this.rebucket()
    const generation = this.generation
    const interval = setInterval(() => this.tick(generation), this.tickMs)
    // The wheel must never be what keeps the process alive: sockets and servers do that.
    interval.unref()
    this.interval = interval
  }

  private disarm(): void {
    if (this.interval !== undefined) {
      clearInterval(this.interval)
      this.interval = undefined
    }
    this.generation++
  }

  /** Slots were computed on the previous origin; a new one changes every entry's tick. Rare: start() after stop(). */
  private rebucket(): void {
    const all: WheelEntry[] = []
    for (let s = 0; s < this.slotCount; s++) {
      for (let e = this.heads[s]; e !== undefined; e = e.wheelNext) all.push(e)
      this.heads[s] = undefined
    }
    for (const e of all) this.link(e, this.slotFor(e.wheelDue))
  }

  private tickFor(due: number): number {
    const tick = Math.ceil((due - this.origin) / this.tickMs)
    // Rounding can land one tick early; firing early is the one thing the wheel promises not to do.
    return this.origin + tick * this.tickMs < due ? tick + 1 : tick
  }

  private slotFor(due: number): number {
    let tick = this.tickFor(due)
    // Already processed (due now or in the past): the next tick, never the one being processed,
    // so an onExpire that schedules with delay 0 cannot loop forever inside one callback.
    if (tick <= this.cursor) tick = this.cursor + 1
    return tick % this.slotCount
  }

  private tick(generation: number): void {
    if (generation !== this.generation) return
    const target = Math.floor((this.now() - this.origin) / this.tickMs)
    let k = this.cursor + 1
    // After a long stall, one pass over every slot finds every due entry.
    if (target - k >= this.slotCount) k = target - this.slotCount + 1
    for (; k <= target; k++) {
      this.cursor = k
      this.visit(k % this.slotCount, k)
      if (generation !== this.generation) return
    }
    if (this.count === 0) this.disarm()
  }

  private visit(slot: number, tick: number): void {
    const generation = this.generation
    let e = this.heads[slot]
    while (e !== undefined) {
      this.visitNext = e.wheelNext
      // Entries of later revolutions share the slot; they stay.
      if (this.tickFor(e.wheelDue) <= tick) {
        this.unlink(e)
        this.count--
        try {
          this.onExpire(e as T)
        } catch (error) {
          this.report(error, e as T)
        }
        if (generation !== this.generation) break
      }
      e = this.visitNext
    }
    this.visitNext = undefined
  }

  private report(error: unknown, entry: T): void {
    try {
      this.onError(error, entry)
    } catch {
      // A throwing error handler must not cost the remaining entries their firing either.
    }
  }

  private link(e: WheelEntry, slot: number): void {
    const head = this.heads[slot]
    e.wheelPrev = undefined
    e.wheelNext = head
    if (head !== undefined) head.wheelPrev = e
    this.heads[slot] = e
    e.wheelSlot = slot
  }

  private unlink(e: WheelEntry): void {
    const prev = e.wheelPrev
    const next = e.wheelNext
    if (prev === undefined) {
      // Cheap partial guard: a head that is not ours means the entry lives in another wheel, and
      // unlinking it here would corrupt both.
      if (this.heads[e.wheelSlot] !== e) throw new Error('holdfast: timer wheel entry belongs to another wheel')
      this.heads[e.wheelSlot] = next
    } else {
      prev.wheelNext = next
    }
    if (next !== undefined) next.wheelPrev = prev
    if (this.visitNext === e) this.visitNext = next
    e.wheelPrev = undefined
    e.wheelNext = undefined
    e.wheelSlot = UNSCHEDULED
  }
}
