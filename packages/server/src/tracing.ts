/**
 * OpenTelemetry spans for connections and commands (only through `@opentelemetry/api`, with the
 * app's Tracer: no SDK is a dependency). Off the hot path: nothing here runs per delivered message.
 * The app's lifecycle hooks are in hooks.ts.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context as otelContext,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api'
import { HoldfastError, type Command, type SubscribeResult } from '@holdfast/protocol'
import { randomHex } from './random-id.js'

/** The parts of a W3C `traceparent` header. */
export interface TraceParent {
  traceId: string
  spanId: string
  flags: number
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const INVALID_TRACE = '00000000000000000000000000000000'
const INVALID_SPAN = '0000000000000000'

/** Parse a `traceparent` header; undefined when absent or malformed (then the trace starts here). */
export function parseTraceparent(header: string | string[] | undefined): TraceParent | undefined {
  const v = Array.isArray(header) ? header[0] : header
  if (v === undefined) return undefined
  const m = TRACEPARENT.exec(v.trim())
  // Version ff is forbidden by the spec; all-zero ids are invalid.
  if (m === null || m[1] === 'ff' || m[2] === INVALID_TRACE || m[3] === INVALID_SPAN) return undefined
  return { traceId: m[2] as string, spanId: m[3] as string, flags: parseInt(m[4] as string, 16) }
}

export function newTraceId(): string {
  return randomHex(16)
}

/** The commands that get a span; the rest (ping, presence, history...) are too small to trace. */
const TRACED: ReadonlySet<Command['type']> = new Set(['subscribe', 'publish', 'rpc'])

/**
 * Spans for connections and their commands. Each connection's spans are children of its connect
 * span, which is itself a child of the upgrade's `traceparent` when there is one: a connection's
 * work is one trace, whose id is also the `trace` field of its log lines.
 */
export class Tracing {
  readonly #tracer: Tracer | undefined
  /** Connection → the context its spans are started in (the connect span's). */
  readonly #contexts = new WeakMap<object, Context>()
  /** Connection → its connect span while the handshake runs. */
  readonly #connecting = new WeakMap<object, Span>()

  constructor(tracer: Tracer | undefined) {
    this.#tracer = tracer
  }

  get enabled(): boolean {
    return this.#tracer !== undefined
  }

  /**
   * The upgrade was accepted: start the connect span. Returns the trace id the connection logs
   * under: the `traceparent`'s, else the new span's (so logs and traces match); undefined when
   * there is neither, and the connection makes a random one when it first needs it.
   */
  startConnect(parent: TraceParent | undefined, attributes: Attributes): { span: Span | undefined; traceId: string | undefined } {
    if (this.#tracer === undefined) return { span: undefined, traceId: parent?.traceId }
    const ctx =
      parent === undefined
        ? ROOT_CONTEXT
        : trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags, isRemote: true })
    const span = this.#tracer.startSpan('holdfast.connect', { kind: SpanKind.SERVER, attributes }, ctx)
    const sc = span.spanContext()
    const traceId = parent?.traceId ?? (isSpanContextValid(sc) ? sc.traceId : undefined)
    return { span, traceId }
  }

  /** Tie the connect span to its connection, once the connection exists. */
  bind(conn: object, span: Span | undefined): void {
    if (span === undefined) return
    this.#connecting.set(conn, span)
    this.#contexts.set(conn, trace.setSpan(ROOT_CONTEXT, span))
  }

  /** The connect handshake succeeded. */
  connected(conn: object, attributes: Attributes): void {
    const span = this.#connecting.get(conn)
    if (span === undefined) return
    this.#connecting.delete(conn)
    // Success leaves the status unset, as OpenTelemetry asks of instrumentation libraries.
    span.setAttributes(attributes)
    span.end()
  }

  /** The connection closed; a handshake still open failed with this close code. */
  closed(conn: object, code: number, codeName: string): void {
    const span = this.#connecting.get(conn)
    if (span === undefined) return
    this.#connecting.delete(conn)
    span.setAttributes({ 'holdfast.close_code': code, 'holdfast.close_reason': codeName })
    span.setStatus({ code: SpanStatusCode.ERROR, message: codeName })
    span.end()
  }

  /** A span for a subscribe, publish or rpc command; undefined for other commands or without a tracer. */
  startCommand(conn: object, cmd: Command): Span | undefined {
    if (this.#tracer === undefined || !TRACED.has(cmd.type)) return undefined
    const attributes: Attributes = {}
    if (cmd.type === 'subscribe' || cmd.type === 'publish') attributes['holdfast.channel'] = cmd.channel
    if (cmd.type === 'publish') attributes['holdfast.source'] = 'client'
    if (cmd.type === 'rpc') {
      attributes['holdfast.rpc.method'] = cmd.method
      attributes['rpc.method'] = cmd.method
      attributes['rpc.system'] = 'holdfast'
    }
    if (cmd.type === 'subscribe') attributes['holdfast.was_recovering'] = cmd.recover !== undefined
    return this.#tracer.startSpan(`holdfast.${cmd.type}`, { kind: SpanKind.SERVER, attributes }, this.#contexts.get(conn) ?? ROOT_CONTEXT)
  }

  /** A server-API publish: a child of whatever span the app has active (its HTTP request, say). */
  startApiPublish(channel: string): Span | undefined {
    if (this.#tracer === undefined) return undefined
    return this.#tracer.startSpan('holdfast.publish', { kind: SpanKind.PRODUCER, attributes: { 'holdfast.channel': channel, 'holdfast.source': 'api' } }, otelContext.active())
  }

  /** Record what a subscribe reply says. */
  subscribed(span: Span | undefined, result: SubscribeResult): void {
    span?.setAttributes({ 'holdfast.recovered': result.recovered, 'holdfast.offset': result.offset, 'holdfast.epoch': result.epoch })
  }

  /** Run `fn` with `span` active, so that spans the app starts inside (an RPC handler's) nest under it. */
  within<T>(span: Span | undefined, fn: () => T): T {
    return span === undefined ? fn() : otelContext.with(trace.setSpan(otelContext.active(), span), fn)
  }

  /** End a command span with its outcome: `err` undefined means success. */
  end(span: Span | undefined, result?: object, err?: unknown): void {
    if (span === undefined) return
    if (err !== undefined) {
      const code = err instanceof HoldfastError ? err.code : 'internal'
      span.setAttribute('holdfast.error', code)
      span.setStatus({ code: SpanStatusCode.ERROR, message: code })
      // Only our own errors are recorded whole: an app's exception may carry data it would not log.
      if (err instanceof HoldfastError) span.recordException(err)
    } else if (result !== undefined && 'offset' in result) {
      const r = result as { offset: unknown; duplicate?: unknown }
      if (typeof r.offset === 'number') span.setAttribute('holdfast.offset', r.offset)
      span.setAttribute('holdfast.duplicate', r.duplicate === true)
    }
    span.end()
  }
}
