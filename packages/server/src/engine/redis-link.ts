import type { EventEmitter } from 'node:events'
import CircuitBreaker from 'opossum'
import { HoldfastError } from '@holdfast/protocol'
import { isTimeout, isUnavailable, toEngineError } from './redis-errors.js'
import { closeConnection, reviveOnEnd, type Feed } from './redis-feed.js'
import type { ScriptRunner } from './redis-scripts.js'

/**
 * The connections of a Redis engine and everything about their health: the circuit breaker
 * around commands, the periodic PING that notices a Redis that stopped answering (SIGSTOP, a
 * blackholed network) while its TCP connection still looks fine, the live feed (redis-feed.ts),
 * and the one `ready` flag all of that adds up to.
 *
 * Nothing here queues or retries a command: a call either runs now or fails at once (or after
 * `commandTimeoutMs` at worst) with `engine_unavailable`, so a client command never hangs on a
 * dead Redis. Reconnecting is ioredis's job (its retryStrategy), resubscribing is the feed's.
 */

/** The part of an ioredis client (Redis or Cluster) the engine sends commands on. */
export interface RedisConnection extends EventEmitter, ScriptRunner {
  readonly status: string
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(): void
  ping(): Promise<unknown>
}

export interface BreakerSettings {
  /** Failed share of the calls in the rolling window, in %, above which the breaker opens. */
  errorThresholdPercentage: number
  /** Calls needed in the window before the percentage counts. */
  volumeThreshold: number
  /** How long the breaker stays open before one probe call may try again, in ms. */
  resetTimeoutMs: number
  /** Length of the rolling window of call statistics, in ms. */
  rollingWindowMs: number
}

export interface LinkSettings {
  commandTimeoutMs: number
  healthCheckIntervalMs: number
  breaker: BreakerSettings
}

export interface LinkEvents {
  /** The combined readiness changed; `reason` says why it is not ready. */
  onStateChange(ready: boolean, reason: string): void
  /** Still not ready after a while: why, now. */
  onStillNotReady?(reason: string): void
  /** Something went wrong that no caller will see (a failed resubscribe...). */
  onError(err: unknown): void
  /**
   * Runs each time the command connection is (re)connected, before any call may use it: the engine
   * learns which server it now talks to. Calls wait for it; a rejection is reported and retried
   * at the next health check.
   */
  onConnected?(): Promise<void>
}

export { isUnavailable, toEngineError } from './redis-errors.js'

type Job = () => Promise<unknown>

/** While not ready, say why again every this many health checks (the reason may have changed). */
const REPORT_EVERY_TICKS = 10

export class RedisLink {
  readonly cmd: RedisConnection
  readonly feed: Feed
  readonly #settings: LinkSettings
  readonly #events: LinkEvents
  readonly #breaker: CircuitBreaker<[Job], unknown>
  #started = false
  #closed = false
  #ready = false
  #timer: ReturnType<typeof setInterval> | undefined
  #cmdPing: Promise<void> | undefined
  /** The onConnected probe of the current command connection: pending, done, or failed. */
  #probe: Promise<void> | undefined
  #probed = false
  /** The latest connection error, for the log line that says why the engine is not ready. */
  #lastError: string | undefined
  #notReadyTicks = 0
  readonly #readyWaiters = new Set<() => void>()

  constructor(cmd: RedisConnection, feed: Feed, settings: LinkSettings, events: LinkEvents) {
    this.cmd = cmd
    this.feed = feed
    this.#settings = settings
    this.#events = events
    const b = settings.breaker
    this.#breaker = new CircuitBreaker<[Job], unknown>((job: Job) => job(), {
      // The same bound as ioredis's commandTimeout: whichever fires first, nothing waits longer.
      timeout: settings.commandTimeoutMs,
      errorThresholdPercentage: b.errorThresholdPercentage,
      volumeThreshold: b.volumeThreshold,
      resetTimeout: b.resetTimeoutMs,
      rollingCountTimeout: b.rollingWindowMs,
      // Only outages open the breaker; a bad argument or script error says nothing about Redis.
      errorFilter: (err: unknown) => !isUnavailable(err),
      // Counts are all it needs. Latency percentiles would keep every call's latency for the window.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    })
    // A command that got no answer within the timeout is as telling as a failed PING: Redis is
    // stalled, so stop sending at once instead of letting every caller wait out its own timeout.
    this.#breaker.on('failure', (err: unknown) => {
      if (isTimeout(err) && !this.#closed) this.#breaker.open()
    })
    this.#breaker.on('open', () => this.update())
    this.#breaker.on('close', () => this.update())
    // Probe at once instead of waiting for the next health tick: recovery is noticed sooner.
    this.#breaker.on('halfOpen', () => void this.#checkCommands())

    cmd.on('ready', () => {
      if (this.#closed) return
      // A fresh connection that passed ioredis's ready check is better evidence than any probe.
      this.#breaker.close()
      this.#probed = false
      void this.#runProbe()
      this.update()
    })
    cmd.on('close', () => {
      this.#probed = false
      this.update()
    })
    cmd.on('end', () => this.update())
    reviveOnEnd(cmd, () => this.#closed || !this.#started)
    cmd.on('error', (err: unknown) => {
      this.#lastError = err instanceof Error ? err.message : String(err)
    })
  }

  get ready(): boolean {
    return this.#ready
  }

  get breakerState(): 'closed' | 'open' | 'halfOpen' {
    return this.#breaker.opened ? 'open' : this.#breaker.halfOpen ? 'halfOpen' : 'closed'
  }

  get breakerOpen(): boolean {
    return this.#breaker.opened
  }

  /** Connect, and resolve once ready or after `waitMs` (the link keeps reconnecting either way). */
  async start(permanent: readonly string[], waitMs: number): Promise<void> {
    this.#started = true
    this.#timer = setInterval(() => this.#healthCheck(), this.#settings.healthCheckIntervalMs)
    this.#timer.unref()
    // A failed first connect is retried by ioredis's retryStrategy like any other.
    this.cmd.connect().catch(() => {})
    this.feed.start(permanent)
    if (this.#ready) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#readyWaiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, waitMs)
      this.#readyWaiters.add(done)
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#ready = false
    if (this.#timer !== undefined) clearInterval(this.#timer)
    for (const w of [...this.#readyWaiters]) w()
    this.#breaker.shutdown()
    await Promise.all([closeConnection(this.cmd, this.#settings.commandTimeoutMs), this.feed.close()])
  }

  /** Run a command through the breaker, on the command connection or another one (`on`). Rejects with a HoldfastError. */
  async run<C extends ScriptRunner = RedisConnection>(what: string, job: (conn: C) => Promise<unknown>, on?: C): Promise<unknown> {
    this.#live()
    // The first calls on a new connection wait until the engine knows which server it reached.
    if (!this.#probed && this.#probe !== undefined) await this.#probe
    try {
      return await this.#breaker.fire(() => job(on ?? (this.cmd as unknown as C)))
    } catch (err) {
      throw toEngineError(what, err)
    }
  }

  /** Receive a pub/sub channel on this node. Idempotent; replayed after every reconnect. */
  subscribe(channel: string): Promise<void> {
    this.#live()
    // One Redis serves every connection: an open breaker says it is stalled for the feed too.
    if (this.#breaker.opened) return Promise.reject(new HoldfastError('engine_unavailable', 'redis subscribe: Redis is unavailable'))
    return this.feed.subscribe(channel)
  }

  unsubscribe(channel: string): Promise<void> {
    this.#live()
    return this.feed.unsubscribe(channel)
  }

  isWanted(channel: string): boolean {
    return this.feed.isWanted(channel)
  }

  #live(): void {
    if (this.#closed || !this.#started) throw new HoldfastError('engine_unavailable', `redis engine is ${this.#closed ? 'closed' : 'not started'}`)
  }

  /** Why the engine is not ready, in words for a log line. */
  #reason(): string {
    const last = this.#lastError === undefined ? '' : ` (last error: ${this.#lastError})`
    if (this.cmd.status !== 'ready') return `no connection to Redis${last}`
    if (!this.#probed) return 'connected, checking the server'
    if (!this.#breaker.closed) return 'Redis does not answer in time (circuit breaker open)'
    if (!this.feed.synced) return `the subscriber connection is not up or not resubscribed yet${last}`
    return 'ready'
  }

  /**
   * Ready = the command connection up and probed, the feed synced, the breaker closed. Any input
   * changing calls this; only edges are reported.
   */
  update(): void {
    if (this.#closed) return
    const ready = this.#started && this.cmd.status === 'ready' && this.#probed && this.feed.synced && this.#breaker.closed
    if (ready === this.#ready) return
    this.#ready = ready
    if (ready) for (const w of [...this.#readyWaiters]) w()
    try {
      this.#events.onStateChange(ready, this.#reason())
    } catch (err) {
      this.#events.onError(err)
    }
  }

  #runProbe(): Promise<void> {
    const probe = this.#events.onConnected
    if (probe === undefined) {
      this.#probed = true
      return Promise.resolve()
    }
    this.#probe ??= (async () => {
      try {
        // Directly on the connection: the breaker may still be open from the outage.
        await probe()
        this.#probed = this.cmd.status === 'ready'
      } catch (err) {
        this.#events.onError(toEngineError('probe', err))
      }
    })().finally(() => {
      this.#probe = undefined
      this.update()
    })
    return this.#probe
  }

  #healthCheck(): void {
    if (this.#closed) return
    if (this.#ready || !this.#started) this.#notReadyTicks = 0
    else if (++this.#notReadyTicks % REPORT_EVERY_TICKS === 0) this.#events.onStillNotReady?.(this.#reason())
    void this.#checkCommands()
    if (this.cmd.status === 'ready' && !this.#probed) void this.#runProbe()
    this.feed.healthCheck()
  }

  /**
   * PING the command connection directly, past the breaker, one at a time. A failure opens the
   * breaker at once (if even a PING gets no answer, no command would); an answer closes it. While
   * Redis is frozen a PING is nearly always waiting on the socket, so the breaker closes the moment
   * Redis answers again instead of at the next half-open probe.
   */
  #checkCommands(): Promise<void> {
    this.#cmdPing ??= (async () => {
      if (this.#closed || this.cmd.status !== 'ready') return
      try {
        await this.cmd.ping()
        if (!this.#closed && !this.#breaker.closed) this.#breaker.close()
      } catch (err) {
        if (isUnavailable(err) && !this.#closed) this.#breaker.open()
        // Stalled, not dead: send the next PING at once so that one always waits on the socket.
        if (isTimeout(err)) setImmediate(() => void (this.#closed || this.#checkCommands()))
      }
    })().finally(() => {
      this.#cmdPing = undefined
    })
    return this.#cmdPing
  }
}
