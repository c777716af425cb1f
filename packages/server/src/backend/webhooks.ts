import type { Logger } from 'pino'
import { Pool } from 'undici'
import { randomHex } from '../random-id.js'
import type { BackendMetrics } from './backend-metrics.js'
import type { ResolvedWebhooks, WebhookEvent } from './options.js'
import { WebhookHeaders, signWebhook } from './signature.js'

/** One event waiting for delivery (or between attempts). */
interface Pending {
  id: string
  event: WebhookEvent
  body: string
  attempts: number
}

/** How long close() keeps delivering what is queued before it drops the rest. */
const FLUSH_MS = 2000

/** Full jitter: a random wait in [0, min(maxMs, baseMs * 2^attempt)). */
export function jitteredDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)))
}

/**
 * Webhook delivery: a bounded queue that `emit` never blocks on (a full queue drops the new event,
 * counted and logged), `concurrency` deliveries at a time over kept-alive connections, each
 * signed, retried with full-jitter backoff until `maxAttempts`. At least once: a delivery whose
 * answer was lost is sent again with the same id, which the receiver deduplicates.
 */
export class WebhookQueue {
  readonly #o: ResolvedWebhooks
  readonly #metrics: BackendMetrics
  readonly #log: Logger | undefined
  readonly #node: string
  readonly #pool: Pool
  readonly #path: string
  readonly #ready: Pending[] = []
  /** Events queued, waiting between attempts, or in flight: what counts against maxQueue. */
  #size = 0
  #inFlight = 0
  #closed = false
  /** Events waiting between attempts, by their timer. */
  readonly #timers = new Map<NodeJS.Timeout, Pending>()
  #lastDropLog = -Infinity
  #dropsSinceLog = 0
  #idle: (() => void) | undefined

  constructor(o: ResolvedWebhooks, node: string, metrics: BackendMetrics, log: Logger | undefined) {
    this.#o = o
    this.#node = node
    this.#metrics = metrics
    this.#log = log
    const url = new URL(o.url)
    this.#pool = new Pool(url.origin, { connections: o.concurrency, keepAliveTimeout: 30_000, connectTimeout: o.timeoutMs })
    this.#path = url.pathname + url.search
    metrics.queueLength = () => this.#size
  }

  get size(): number {
    return this.#size
  }

  wants(event: WebhookEvent): boolean {
    return this.#o.events.has(event)
  }

  /** Queue an event; never blocks, never throws. */
  emit(event: WebhookEvent, data: object): void {
    if (!this.#o.events.has(event) || this.#closed) return
    if (this.#size >= this.#o.maxQueue) {
      this.#metrics.webhooks.inc({ event, outcome: 'dropped_full' })
      this.#dropsSinceLog++
      const now = performance.now()
      if (now - this.#lastDropLog >= 1000) {
        this.#log?.warn({ event, dropped: this.#dropsSinceLog, maxQueue: this.#o.maxQueue }, 'webhook queue full; events dropped')
        this.#lastDropLog = now
        this.#dropsSinceLog = 0
      }
      return
    }
    const id = randomHex(16)
    const body = JSON.stringify({ id, event, time: Date.now(), node: this.#node, data })
    this.#size++
    this.#ready.push({ id, event, body, attempts: 0 })
    this.#pump()
  }

  #pump(): void {
    while (this.#inFlight < this.#o.concurrency && this.#ready.length > 0) {
      const p = this.#ready.shift() as Pending
      this.#inFlight++
      void this.#deliver(p).finally(() => {
        this.#inFlight--
        this.#pump()
        if (this.#size === 0) this.#idle?.()
      })
    }
  }

  async #deliver(p: Pending): Promise<void> {
    p.attempts++
    let ok = false
    let why = ''
    const ts = Math.floor(Date.now() / 1000)
    const headers: Record<string, string> = { 'content-type': 'application/json', [WebhookHeaders.id]: p.id, [WebhookHeaders.event]: p.event, [WebhookHeaders.timestamp]: String(ts) }
    if (this.#o.secret !== undefined) headers[WebhookHeaders.signature] = signWebhook(this.#o.secret, ts, p.body)
    try {
      const res = await this.#pool.request({ path: this.#path, method: 'POST', headers, body: p.body, signal: AbortSignal.timeout(this.#o.timeoutMs) })
      await res.body.dump().catch(() => {})
      ok = res.statusCode >= 200 && res.statusCode < 300
      if (!ok) why = `HTTP ${res.statusCode}`
    } catch (err) {
      why = (err as Error).message
    }
    this.#metrics.webhookAttempts.inc({ outcome: ok ? 'ok' : 'failed' })
    if (ok) {
      this.#size--
      this.#metrics.webhooks.inc({ event: p.event, outcome: 'delivered' })
      return
    }
    if (p.attempts >= this.#o.maxAttempts || this.#closed) {
      this.#size--
      this.#metrics.webhooks.inc({ event: p.event, outcome: 'dropped_attempts' })
      this.#log?.warn({ event: p.event, id: p.id, attempts: p.attempts, err: why }, 'webhook dropped after its last attempt')
      return
    }
    this.#log?.debug({ event: p.event, id: p.id, attempt: p.attempts, err: why }, 'webhook attempt failed; retrying')
    const t = setTimeout(() => {
      this.#timers.delete(t)
      this.#ready.push(p)
      this.#pump()
    }, jitteredDelay(p.attempts - 1, this.#o.baseMs, this.#o.maxMs))
    t.unref()
    this.#timers.set(t, p)
  }

  /** Deliver what is queued for up to 2 s (retries come due at once), then drop the rest and close. */
  async close(): Promise<void> {
    if (this.#closed) return
    // Events waiting to retry get one last attempt now.
    const waiting = this.#timers.size
    for (const [t, p] of this.#timers) {
      clearTimeout(t)
      this.#ready.push(p)
    }
    this.#timers.clear()
    this.#closed = true
    if (waiting > 0) this.#log?.info({ waiting }, 'webhooks: last attempt for events waiting to retry')
    if (this.#size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FLUSH_MS)
        this.#idle = () => {
          clearTimeout(timer)
          resolve()
        }
        this.#pump()
      })
    }
    for (const p of this.#ready.splice(0)) {
      this.#size--
      this.#metrics.webhooks.inc({ event: p.event, outcome: 'dropped_attempts' })
    }
    await this.#pool.destroy().catch(() => {})
  }
}
