import type { EventEmitter } from 'node:events'
import CircuitBreaker from 'opossum'
import { HoldfastError } from '@holdfast/protocol'
import type { ScriptRunner } from './redis-scripts.js'

/**
 * The two connections of a Redis engine and everything about their health: the circuit breaker
 * around commands, the periodic PING that notices a Redis that stopped answering (SIGSTOP, a
 * blackholed network) while its TCP connection still looks fine, the subscriber's channel set and
 * its resubscription after a reconnect, and the one `ready` flag all of that adds up to.
 *
 * Nothing here queues or retries a command: a call either runs now or fails at once (or after
 * `commandTimeoutMs` at worst) with `engine_unavailable`, so a client command never hangs on a
 * dead Redis. Reconnecting is ioredis's job (its retryStrategy), resubscribing is ours.
 */

/** The part of an ioredis client (Redis or Cluster) the engine relies on. */
export interface RedisConnection extends EventEmitter, ScriptRunner {
  readonly status: string
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(): void
  ping(): Promise<unknown>
  subscribe(...channels: string[]): Promise<unknown>
  unsubscribe(...channels: string[]): Promise<unknown>
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
  /** A message on a subscribed pub/sub channel (raw bytes, decoded by the engine). */
  onMessage(channel: Buffer, message: Buffer): void
  /** The combined readiness changed. */
  onStateChange(ready: boolean): void
  /** Something went wrong that no caller will see (a failed resubscribe...). */
  onError(err: unknown): void
}

/** Subscribe in slices: one huge SUBSCRIBE after a reconnect would block Redis and our parser. */
const SUBSCRIBE_BATCH = 512

/** Redis replies that mean "not now" rather than "wrong": they count against the breaker. */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF|OOM)\b/

/**
 * True for errors that say the backend cannot serve right now: connection-level errors of
 * ioredis (closed, not writable, timed out, too many retries), the breaker's own rejections, and
 * the Redis replies above. A script or argument error is a bug, not an outage.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof HoldfastError) return err.code === 'engine_unavailable'
  if (!(err instanceof Error)) return false
  if (err.name === 'ReplyError') return UNAVAILABLE_REPLY.test(err.message)
  return true
}

/** No answer within the command timeout (ioredis's, or the breaker's own). */
function isTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  return (err as Error & { code?: unknown }).code === 'ETIMEDOUT' || err.message === 'Command timed out'
}

export function toEngineError(what: string, err: unknown): HoldfastError {
  if (err instanceof HoldfastError) return err
  const message = err instanceof Error ? err.message : String(err)
  if (isUnavailable(err)) return new HoldfastError('engine_unavailable', `redis ${what}: ${message}`, { cause: err })
  return new HoldfastError('internal', `redis ${what}: ${message}`, { cause: err })
}

type Job = () => Promise<unknown>

export class RedisLink {
  readonly cmd: RedisConnection
  readonly sub: RedisConnection
  readonly #settings: LinkSettings
  readonly #events: LinkEvents
  readonly #breaker: CircuitBreaker<[Job], unknown>
  /** Pub/sub channels this node wants; kept across reconnects and replayed on each. */
  readonly #wanted = new Set<string>()
  /** SUBSCRIBEs not acknowledged yet, so that a repeat waits for the same one. */
  readonly #pending = new Map<string, Promise<void>>()
  /** The subscriber has subscribed every wanted channel since it last connected. */
  #subSynced = false
  /** The subscriber answered its latest PING in time. */
  #subHealthy = true
  #started = false
  #closed = false
  #ready = false
  #timer: ReturnType<typeof setInterval> | undefined
  #cmdPing: Promise<void> | undefined
  #subPing: Promise<void> | undefined
  #resubscribing: Promise<void> | undefined
  readonly #readyWaiters = new Set<() => void>()

  constructor(cmd: RedisConnection, sub: RedisConnection, settings: LinkSettings, events: LinkEvents) {
    this.cmd = cmd
    this.sub = sub
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
    this.#breaker.on('open', () => this.#update())
    this.#breaker.on('close', () => this.#update())
    // Probe at once instead of waiting for the next health tick: recovery is noticed sooner.
    this.#breaker.on('halfOpen', () => void this.#checkCommands())

    cmd.on('ready', () => {
      if (this.#closed) return
      // A fresh connection that passed ioredis's ready check is better evidence than any probe.
      this.#breaker.close()
      this.#update()
    })
    sub.on('ready', () => {
      this.#subHealthy = true
      void this.#resubscribe()
    })
    for (const conn of [cmd, sub]) {
      conn.on('close', () => {
        if (conn === sub) this.#subSynced = false
        this.#update()
      })
      conn.on('end', () => this.#update())
      // Connection errors show up as state changes; without a listener ioredis would print them.
      conn.on('error', () => {})
    }
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#events.onMessage(channel, message))
  }

  get ready(): boolean {
    return this.#ready
  }

  get breakerState(): 'closed' | 'open' | 'halfOpen' {
    return this.#breaker.opened ? 'open' : this.#breaker.halfOpen ? 'halfOpen' : 'closed'
  }

  /** Connect both, and resolve once ready or after `waitMs` (the link keeps reconnecting either way). */
  async start(permanent: readonly string[], waitMs: number): Promise<void> {
    this.#started = true
    for (const ch of permanent) this.#wanted.add(ch)
    this.#timer = setInterval(() => this.#healthCheck(), this.#settings.healthCheckIntervalMs)
    this.#timer.unref()
    // A failed first connect is retried by ioredis's retryStrategy like any other.
    this.cmd.connect().catch(() => {})
    this.sub.connect().catch(() => {})
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
    await Promise.all(
      [this.cmd, this.sub].map(async (conn) => {
        // QUIT lets replies in flight arrive; a stalled Redis must not hold close() up, though.
        let timer: ReturnType<typeof setTimeout> | undefined
        const bound = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#settings.commandTimeoutMs)
        })
        await Promise.race([conn.quit().catch(() => {}), bound])
        clearTimeout(timer)
        conn.disconnect()
      }),
    )
  }

  /** Run a command on the command connection through the breaker. Rejects with a HoldfastError. */
  async run(what: string, job: (conn: RedisConnection) => Promise<unknown>): Promise<unknown> {
    if (this.#closed || !this.#started) throw new HoldfastError('engine_unavailable', `redis engine is ${this.#closed ? 'closed' : 'not started'}`)
    try {
      return await this.#breaker.fire(() => job(this.cmd))
    } catch (err) {
      throw toEngineError(what, err)
    }
  }

  /** Receive a pub/sub channel on this node. Idempotent; replayed after every reconnect. */
  subscribe(channel: string): Promise<void> {
    this.#live()
    // One Redis serves both connections: an open breaker says it is stalled for the subscriber too.
    if (this.sub.status !== 'ready' || !this.#subHealthy || this.#breaker.opened) {
      return Promise.reject(new HoldfastError('engine_unavailable', 'redis subscribe: Redis is unavailable'))
    }
    // A repeat waits for the SUBSCRIBE in flight, or returns at once when the channel is held:
    // it must never be able to drop a subscription that already works.
    const inFlight = this.#pending.get(channel)
    if (inFlight !== undefined) return inFlight
    if (this.#wanted.has(channel) && this.#subSynced) return Promise.resolve()
    this.#wanted.add(channel)
    const done = this.sub.subscribe(channel).then(
      () => {},
      (err: unknown) => {
        // A failed subscribe leaves nothing wanted behind (the hub forgets the channel too). If the
        // SUBSCRIBE only timed out it may still run later: queue an UNSUBSCRIBE behind it.
        this.#wanted.delete(channel)
        if (this.sub.status === 'ready') this.sub.unsubscribe(channel).catch(() => {})
        throw toEngineError('subscribe', err)
      },
    )
    const tracked = done.finally(() => this.#pending.delete(channel))
    this.#pending.set(channel, tracked)
    return tracked
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#live()
    this.#wanted.delete(channel)
    // A connection that is down holds no subscriptions, and the next one will not replay this.
    if (this.sub.status !== 'ready') return
    try {
      await this.sub.unsubscribe(channel)
    } catch (err) {
      throw toEngineError('unsubscribe', err)
    }
  }

  isWanted(channel: string): boolean {
    return this.#wanted.has(channel)
  }

  #live(): void {
    if (this.#closed || !this.#started) throw new HoldfastError('engine_unavailable', `redis engine is ${this.#closed ? 'closed' : 'not started'}`)
  }

  /**
   * Ready = both connections up, the subscriber holds every wanted channel, the breaker is closed
   * and the subscriber answers PINGs. Any input changing calls this; only edges are reported.
   */
  #update(): void {
    if (this.#closed) return
    const ready =
      this.#started &&
      this.cmd.status === 'ready' &&
      this.sub.status === 'ready' &&
      this.#subSynced &&
      this.#subHealthy &&
      this.#breaker.closed
    if (ready === this.#ready) return
    this.#ready = ready
    if (ready) for (const w of [...this.#readyWaiters]) w()
    try {
      this.#events.onStateChange(ready)
    } catch (err) {
      this.#events.onError(err)
    }
  }

  #resubscribe(): Promise<void> {
    this.#resubscribing ??= this.#doResubscribe().finally(() => {
      this.#resubscribing = undefined
    })
    return this.#resubscribing
  }

  async #doResubscribe(): Promise<void> {
    if (this.#closed) return
    this.#subSynced = false
    // All slices are written in one synchronous step, so an UNSUBSCRIBE issued meanwhile is
    // queued after them and wins: no channel is left subscribed that nobody wants.
    const channels = [...this.#wanted]
    const slices: Promise<unknown>[] = []
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) slices.push(this.sub.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH)))
    try {
      await Promise.all(slices)
      this.#subSynced = this.sub.status === 'ready'
    } catch (err) {
      // The connection dropped again (its next `ready` retries) or timed out (the health check retries).
      if (this.sub.status === 'ready') this.#events.onError(toEngineError('resubscribe', err))
    }
    this.#update()
  }

  #healthCheck(): void {
    if (this.#closed) return
    void this.#checkCommands()
    this.#healthCheckSubscriber()
    if (this.sub.status === 'ready' && !this.#subSynced && this.#subHealthy) void this.#resubscribe()
  }

  #healthCheckSubscriber(): void {
    if (this.#closed) return
    this.#subPing ??= this.#pingSubscriber().finally(() => {
      this.#subPing = undefined
    })
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

  async #pingSubscriber(): Promise<void> {
    if (this.sub.status !== 'ready') return
    let healthy: boolean
    try {
      await this.sub.ping()
      healthy = true
    } catch (err) {
      healthy = false
      if (isTimeout(err)) setImmediate(() => this.#healthCheckSubscriber())
    }
    if (this.#closed || healthy === this.#subHealthy) return
    this.#subHealthy = healthy
    this.#update()
  }
}
