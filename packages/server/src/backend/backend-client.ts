import { HoldfastError, errorCodeName, ErrorCodes } from '@holdfast/protocol'
import CircuitBreaker from 'opossum'
import type { Logger } from 'pino'
import { type Dispatcher, Pool } from 'undici'
import { randomHex } from '../random-id.js'
import type { BackendMetrics, FailureKind } from './backend-metrics.js'
import type { BreakerOptions, ProxyEvent, ResolvedProxyEvent } from './options.js'

/** A backend answer that is not a failure: what the application decided. */
export type BackendReply =
  | { kind: 'result'; result: Record<string, unknown> }
  | { kind: 'error'; error: HoldfastError }
  | { kind: 'disconnect'; code: number; reason: string }

/** Largest backend answer read, in bytes; a longer one is an invalid answer. */
export const MAX_REPLY_BYTES = 1024 * 1024

/** A failed call: the backend is down, slow or answered garbage. Counted by the breaker. */
export class BackendFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message)
  }
}

interface CallArgs {
  path: string
  body: string
  headers: Record<string, string>
  timeoutMs: number
}

/** One backend origin: a keep-alive pool and a circuit breaker around it. */
interface Backend {
  pool: Pool
  breaker: CircuitBreaker<[CallArgs], BackendReply>
}

export interface BackendClientOptions {
  maxConnections: number
  breaker: BreakerOptions
  metrics: BackendMetrics
  log: Logger | undefined
}

/**
 * POSTs proxy events to the application backend over kept-alive HTTP connections (undici `Pool`,
 * one per origin) behind a circuit breaker per origin (opossum). Every call ends within its
 * event's timeout: with the backend's reply, or with `HoldfastError('backend_unavailable')`.
 */
export class BackendClient {
  readonly #backends = new Map<string, Backend>()
  readonly #o: BackendClientOptions
  /** Failure log lines are limited to one per second per event and kind; the rest are counted in the next. */
  readonly #logged = new Map<string, { at: number; suppressed: number }>()

  constructor(o: BackendClientOptions) {
    this.#o = o
  }

  async call(event: ProxyEvent, target: ResolvedProxyEvent, body: object, traceId: string): Promise<BackendReply> {
    const m = this.#o.metrics
    const backend = this.#backend(target.origin)
    const started = performance.now()
    try {
      const reply = await backend.breaker.fire({
        path: target.path,
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${randomHex(8)}-01` },
        timeoutMs: target.timeoutMs,
      })
      m.calls.inc({ event, outcome: reply.kind })
      return reply
    } catch (err) {
      const kind: FailureKind = err instanceof BackendFailure ? err.kind : isOpenBreaker(err) ? 'open' : 'connect'
      m.calls.inc({ event, outcome: 'failed' })
      m.errors.inc({ event, kind })
      this.#logFailure(event, kind, err, traceId, target.origin)
      throw new HoldfastError('backend_unavailable', kind === 'timeout' ? `backend did not answer ${event} within ${target.timeoutMs} ms` : `backend unavailable for ${event} (${kind})`, { cause: err })
    } finally {
      m.duration.observe({ event }, (performance.now() - started) / 1000)
    }
  }

  #backend(origin: string): Backend {
    let b = this.#backends.get(origin)
    if (b !== undefined) return b
    const pool = new Pool(origin, { connections: this.#o.maxConnections, keepAliveTimeout: 30_000, connectTimeout: 10_000 })
    const s = this.#o.breaker
    const breaker = new CircuitBreaker<[CallArgs], BackendReply>((args) => post(pool, args), {
      timeout: false,
      errorThresholdPercentage: s.errorThresholdPercentage,
      volumeThreshold: s.volumeThreshold,
      resetTimeout: s.resetTimeoutMs,
      rollingCountTimeout: s.rollingWindowMs,
      // The breaker needs only the window's counts. Latency percentiles (an array push per call,
      // and a concat and sort of the whole window at every failure) and the per-bucket `snapshot`
      // events are opossum's own dashboards: the latency histogram is in BackendMetrics.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    })
    const gauge = this.#o.metrics.breakerOpen
    gauge.set({ backend: origin }, 0)
    breaker.on('open', () => {
      gauge.set({ backend: origin }, 1)
      this.#o.log?.warn({ backend: origin }, 'backend circuit breaker opened')
    })
    breaker.on('close', () => {
      gauge.set({ backend: origin }, 0)
      this.#o.log?.info({ backend: origin }, 'backend circuit breaker closed')
    })
    b = { pool, breaker }
    this.#backends.set(origin, b)
    return b
  }

  #logFailure(event: ProxyEvent, kind: FailureKind, err: unknown, trace: string, backend: string): void {
    const log = this.#o.log
    if (log === undefined) return
    const key = `${event}:${kind}`
    const now = performance.now()
    const last = this.#logged.get(key)
    if (last !== undefined && now - last.at < 1000) {
      last.suppressed++
      return
    }
    this.#logged.set(key, { at: now, suppressed: 0 })
    log.warn({ event, kind, trace, backend, err: (err as Error).message, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) }, 'backend call failed')
  }

  async close(): Promise<void> {
    const all = [...this.#backends.values()]
    this.#backends.clear()
    for (const b of all) b.breaker.shutdown()
    await Promise.all(all.map((b) => b.pool.destroy().catch(() => {})))
  }
}

function isOpenBreaker(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EOPENBREAKER'
}

/**
 * One POST, through undici's `dispatch` with a handler of our own: the answer's bytes go straight
 * to `ReplyReader`, without the Readable stream, async iterator and async resource that
 * `request()` builds for every call (the connect path's main cost in the gateway after the socket
 * I/O). undici's own timers bound it (no timer of ours per call): `timeoutMs` for the answer's
 * headers, and `timeoutMs` between the chunks of its body.
 */
function post(pool: Pool, args: CallArgs): Promise<BackendReply> {
  return new Promise((resolve, reject) => {
    pool.dispatch(
      { path: args.path, method: 'POST', headers: args.headers, body: args.body, headersTimeout: args.timeoutMs, bodyTimeout: args.timeoutMs },
      new ReplyReader(resolve, reject),
    )
  })
}

/** Collects one answer (status 200, at most MAX_REPLY_BYTES) and settles its call once. */
class ReplyReader implements Dispatcher.DispatchHandler {
  #chunks: Buffer[] = []
  #size = 0
  /** Settled early (a non-200 status): the rest of the answer is read and dropped, keeping the connection. */
  #settled = false
  readonly #resolve: (r: BackendReply) => void
  readonly #reject: (e: BackendFailure) => void

  constructor(resolve: (r: BackendReply) => void, reject: (e: BackendFailure) => void) {
    this.#resolve = resolve
    this.#reject = reject
  }

  onRequestStart(): void {}

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode !== 200) return this.#fail(new BackendFailure('status', `HTTP ${statusCode}`))
    if (Number(headers['content-length']) > MAX_REPLY_BYTES) controller.abort(new BackendFailure('invalid', `answer larger than ${MAX_REPLY_BYTES} bytes`))
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#size += chunk.length
    if (this.#size > MAX_REPLY_BYTES) controller.abort(new BackendFailure('invalid', `answer larger than ${MAX_REPLY_BYTES} bytes`))
    else if (!this.#settled) this.#chunks.push(chunk)
  }

  onResponseEnd(): void {
    if (this.#settled) return
    this.#settled = true
    const c = this.#chunks
    try {
      this.#resolve(parseReply((c.length === 1 ? (c[0] as Buffer) : Buffer.concat(c)).toString('utf8')))
    } catch (err) {
      this.#reject(err as BackendFailure)
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#fail(err instanceof BackendFailure ? err : new BackendFailure(isTimeout(err) ? 'timeout' : 'connect', err.message))
  }

  #fail(err: BackendFailure): void {
    if (this.#settled) return
    this.#settled = true
    this.#chunks = []
    this.#reject(err)
  }
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
}

/** The backend's JSON answer, checked; anything else is an `invalid` failure. */
export function parseReply(text: string): BackendReply {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new BackendFailure('invalid', 'answer is not JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BackendFailure('invalid', 'answer is not a JSON object')
  const o = v as Record<string, unknown>
  if (o['disconnect'] !== undefined) {
    const d = o['disconnect'] as { code?: unknown; reason?: unknown }
    if (typeof d !== 'object' || d === null || typeof d.code !== 'number' || !Number.isInteger(d.code) || !(d.code === 1000 || (d.code >= 4000 && d.code <= 4999))) {
      throw new BackendFailure('invalid', 'disconnect.code must be 1000 or a 4000-4999 close code')
    }
    return { kind: 'disconnect', code: d.code, reason: typeof d.reason === 'string' ? d.reason.slice(0, 120) : '' }
  }
  if (o['error'] !== undefined) {
    const e = o['error'] as { code?: unknown; message?: unknown }
    const name = typeof e === 'object' && e !== null && typeof e.code === 'number' ? errorCodeName(e.code) : undefined
    if (name === undefined) throw new BackendFailure('invalid', 'error.code must be a number from the error code table')
    const message = typeof e.message === 'string' ? e.message.slice(0, 512) : ErrorCodes[name].description
    return { kind: 'error', error: new HoldfastError(name, message) }
  }
  const r = o['result']
  if (r === undefined) throw new BackendFailure('invalid', 'answer has none of result, error, disconnect')
  if (r === null) return { kind: 'result', result: {} }
  if (typeof r !== 'object' || Array.isArray(r)) throw new BackendFailure('invalid', 'result must be an object')
  return { kind: 'result', result: r as Record<string, unknown> }
}
