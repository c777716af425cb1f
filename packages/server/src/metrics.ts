/**
 * The Prometheus view of a gateway. The hot path only bumps plain numbers in `Counters`;
 * prom-client reads them in `collect()` callbacks at scrape time, so a scrape costs a walk over the
 * counters (and over the connections for the gauges), and a message costs nothing extra.
 * Every metric is listed in docs/metrics.md, and test/metrics.test.ts holds the two together.
 */
import { createRequire } from 'node:module'
import { closeCodeName } from '@holdfast/protocol'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client'
import { Distribution, type Counters } from './counters.js'
import { encodedCacheBytes } from './encoded-publications.js'
import type { Engine, PublishOutcome, StreamPublication } from './engine/engine.js'

export const METRIC_PREFIX = 'holdfast_'

/** What the exporter reads from the gateway at scrape time. */
export interface MetricsSource {
  readonly counters: Counters
  readonly connections: ReadonlySet<{ readonly subs: ReadonlyMap<string, unknown> | undefined; readonly socket: { readonly bufferedAmount: number } }>
  readonly bySession: ReadonlyMap<string, unknown>
  readonly hub: { readonly size: number }
  readonly engine: Engine
  readonly nodeId: string
  readonly draining: boolean
}

/**
 * An engine with a circuit breaker reports its state (the Redis engine does, with opossum's names);
 * engines without one are reported as `closed` while ready and `open` while not.
 */
export interface EngineBreakerInfo {
  breakerState?(): 'closed' | 'open' | 'halfOpen'
}

/**
 * An engine that keeps state in this process (the memory engine) reports what it holds against its
 * budgets, what the budgets refused and what they made it forget.
 */
export interface EngineBudgetInfo {
  state?(): {
    streams: number
    publications: number
    historyBytes: number
    presence: number
    idempotency: number
    refused: Record<string, number>
    evicted: Record<string, number>
  }
}

export type CircuitState = 'closed' | 'open' | 'half_open'
const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'open', 'half_open']

/** Units observed internally are ms (performance.now() differences); Prometheus wants seconds. */
const MS = 0.001

/** Bucket bounds, in ms, of the distributions the gateway records. */
export const HISTOGRAM_BOUNDS_MS = {
  // Round trips on a LAN are sub-ms (Date.now() resolution puts them at 0-1); mobile links reach seconds.
  ping_rtt_ms: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
  // Local fan-out is microseconds; through Redis, a millisecond or a few.
  publish_delivery_ms: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000],
  command_ms: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000],
} as const satisfies Record<string, readonly number[]>

/**
 * Counters exported as Prometheus counters: `key` is the name in `Counters`, `label` the
 * Prometheus label its label value goes into, `known` the label values shown as 0 before the
 * first event (so that rate() and absent() work from the start).
 */
interface CounterDef {
  name: string
  help: string
  key: string
  /** The Prometheus label that a Counters label value goes into. */
  label?: string
  known?: readonly string[]
  /** When one label is not enough: the label names, and how a Counters label value maps to them. */
  labelNames?: readonly string[]
  map?: (label: string) => LabelValues<string>
}

const PUBLISH_LABELS: Readonly<Record<string, LabelValues<string>>> = {
  client: { source: 'client', duplicate: 'false' },
  duplicate: { source: 'client', duplicate: 'true' },
  api: { source: 'api', duplicate: 'false' },
  api_duplicate: { source: 'api', duplicate: 'true' },
}

/** Close codes outside the table: 1005 is what ws reports for a close frame without a code. */
function disconnectCodeLabel(code: string): LabelValues<string> {
  const n = Number(code)
  return { code: closeCodeName(n) ?? (n === 1005 ? 'no_status' : 'other') }
}

const COUNTERS: readonly CounterDef[] = [
  { name: 'connections_accepted_total', help: 'Connections that completed the connect handshake (a session was established or resumed).', key: 'connections_accepted' },
  {
    name: 'connections_rejected_total',
    help: 'Connection attempts refused at the upgrade (HTTP status) or closed by the server before the connect handshake completed, by reason.',
    key: 'connections_rejected',
    label: 'reason',
  },
  { name: 'disconnects_total', help: 'Closed connections by close code name.', key: 'disconnects', labelNames: ['code'], map: disconnectCodeLabel },
  {
    name: 'publishes_total',
    help: 'Publishes stored, or recognised as duplicates by their idempotency key, by source (client or server API).',
    key: 'publishes',
    labelNames: ['source', 'duplicate'],
    map: (l) => PUBLISH_LABELS[l] ?? { source: l, duplicate: 'false' },
    known: Object.keys(PUBLISH_LABELS),
  },
  { name: 'recoveries_total', help: 'Subscribes that asked to recover from a position, by outcome.', key: 'recoveries', label: 'outcome', known: ['recovered', 'not_recovered'] },
  { name: 'recovery_failures_total', help: 'Recoveries answered with recovered:false, by reason.', key: 'recovery_failures', label: 'reason', known: ['epoch_changed', 'history_unavailable'] },
  { name: 'rate_limited_total', help: 'Commands refused by a per-connection rate limit, by limit (commands per second, inbound bytes per second, or replies still unread).', key: 'rate_limited', label: 'limit', known: ['commands', 'bytes', 'replies'] },
  { name: 'slow_consumer_closes_total', help: 'Connections closed because their send queue overflowed.', key: 'slow_consumer_closes' },
  { name: 'payload_too_large_total', help: 'Publishes and RPCs refused because their data exceeded maxPayload.', key: 'payload_too_large' },
  { name: 'bad_frames_total', help: 'Frames that could not be decoded (the connection is closed with bad_request).', key: 'bad_frames' },
  { name: 'limit_exceeded_total', help: 'Commands refused by a per-connection limit, by limit.', key: 'limit_exceeded', label: 'limit' },
  { name: 'connect_timeouts_total', help: 'Connections closed because no connect command arrived in time.', key: 'connect_timeouts' },
  { name: 'heartbeat_timeouts_total', help: 'Connections dropped because no pong arrived in time.', key: 'heartbeat_timeouts' },
  { name: 'insufficient_state_total', help: 'Subscribers closed for recovery because a gap was seen in a channel stream.', key: 'insufficient_state' },
  { name: 'command_errors_total', help: 'Commands answered with an error, by error code.', key: 'command_errors', label: 'code' },
  { name: 'rpcs_total', help: 'RPCs answered successfully.', key: 'rpcs' },
  { name: 'engine_errors_total', help: 'Failed engine operations, by operation.', key: 'engine_errors', label: 'op' },
  { name: 'hook_errors_total', help: 'Exceptions thrown (or rejections) by application hooks, by hook.', key: 'hook_errors', label: 'hook' },
]

/** The per-message counters, read from plain fields. */
const TRAFFIC: ReadonlyArray<{ name: string; help: string; field: 'messagesIn' | 'bytesIn' | 'messagesOut' | 'bytesOut' }> = [
  { name: 'messages_in_total', help: 'Client messages received (each message of a batch frame counts).', field: 'messagesIn' },
  { name: 'bytes_in_total', help: 'Bytes of client frames received.', field: 'bytesIn' },
  { name: 'messages_out_total', help: 'Server messages written to sockets (each message of a coalesced frame counts).', field: 'messagesOut' },
  { name: 'bytes_out_total', help: 'Bytes of frames written to sockets.', field: 'bytesOut' },
]

const HISTOGRAMS: ReadonlyArray<{ name: string; help: string; key: keyof typeof HISTOGRAM_BOUNDS_MS; label?: string }> = [
  { name: 'ping_rtt_seconds', help: 'Round trip of application pings (ping sent to pong received).', key: 'ping_rtt_ms' },
  {
    name: 'publish_delivery_seconds',
    help: 'From the engine publish call to the publication queued to the subscribers on this node, per publication published on this node.',
    key: 'publish_delivery_ms',
  },
  { name: 'command_duration_seconds', help: 'Time to run a client command, from dispatch to its reply, by command type.', key: 'command_ms', label: 'type' },
]

function serverVersion(): string {
  try {
    // Resolves from src/ and from dist/ alike: both sit next to the package's package.json.
    const pkg = createRequire(import.meta.url)('../package.json') as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** Printable bucket bound: 0.1 ms * 0.001 must read 0.0001, not 0.00010000000000000002. */
function bound(ms: number): number {
  return Number((ms * MS).toPrecision(12))
}

type HistogramData = Awaited<ReturnType<Histogram<string>['get']>>

/**
 * A prom-client histogram whose data comes from a `Distribution` (plain numbers filled by the hot
 * path) instead of per-event `observe()` calls, which hash a label object each time.
 */
class DistributionHistogram extends Histogram<string> {
  readonly #name: string
  readonly #help: string
  readonly #label: string | undefined
  readonly #read: () => Array<[string | undefined, Distribution]>
  readonly #empty: Distribution

  constructor(
    registry: Registry,
    def: { name: string; help: string; label: string | undefined; bounds: readonly number[] },
    read: () => Array<[string | undefined, Distribution]>,
  ) {
    super({ name: def.name, help: def.help, labelNames: def.label === undefined ? [] : [def.label], registers: [registry] })
    this.#name = def.name
    this.#help = def.help
    this.#label = def.label
    this.#read = read
    this.#empty = new Distribution(def.bounds)
  }

  override async get(): Promise<HistogramData> {
    return this.#snapshot()
  }

  /** prom-client's registry renders text from this method when a metric has it (histograms do). */
  async getForPromString(): Promise<HistogramData> {
    return this.#snapshot()
  }

  #snapshot(): HistogramData {
    const name = this.#name
    const values: HistogramData['values'] = []
    let series = this.#read()
    // An unlabelled histogram is always shown, with zeros before its first observation.
    if (series.length === 0 && this.#label === undefined) series = [[undefined, this.#empty]]
    for (const [label, d] of series) {
      const base: LabelValues<string> = label === undefined || this.#label === undefined ? {} : { [this.#label]: label }
      let acc = 0
      for (let i = 0; i < d.bounds.length; i++) {
        acc += d.buckets[i] ?? 0
        values.push({ metricName: `${name}_bucket`, labels: { ...base, le: bound(d.bounds[i] as number) }, value: acc })
      }
      values.push({ metricName: `${name}_bucket`, labels: { ...base, le: '+Inf' }, value: d.count })
      values.push({ metricName: `${name}_sum`, labels: base, value: d.sum * MS })
      values.push({ metricName: `${name}_count`, labels: base, value: d.count })
    }
    // prom-client's typings declare `type` as a numeric enum, but the runtime (and its registry,
    // which prints it) uses the string; this object is built exactly as prom-client builds its own.
    return { name, help: this.#help, type: 'histogram', values, aggregator: 'sum' } as unknown as HistogramData
  }
}

/**
 * Publish-to-delivery timing: from the engine publish call on this node to the moment the hub has
 * queued that publication to this node's subscribers. With the memory engine the delivery happens
 * inside the publish call; with Redis it comes back over pub/sub, before or after the publish
 * call resolves. Publications from other nodes are not timed (their clocks are not ours).
 */
export class DeliveryTimer {
  readonly #pending = new Map<string, PendingPublish[]>()
  readonly #record: (ms: number) => void
  readonly #maxWaitMs: number
  #sweptAt = 0

  constructor(record: (ms: number) => void, maxWaitMs = 30_000) {
    this.#record = record
    this.#maxWaitMs = maxWaitMs
  }

  /** Entries waiting for their delivery (for tests: nothing may pile up). */
  get pending(): number {
    let n = 0
    for (const list of this.#pending.values()) n += list.length
    return n
  }

  /** The engine publish call is about to be made. */
  start(channel: string): PendingPublish {
    const now = performance.now()
    // Lost deliveries (a feed that dropped a message) must not pile up: forget the old ones.
    if (now - this.#sweptAt > this.#maxWaitMs / 3) this.#sweep(now)
    const p: PendingPublish = { t0: now, channel, offset: 0, epoch: '', done: false }
    const list = this.#pending.get(channel)
    if (list === undefined) this.#pending.set(channel, [p])
    else list.push(p)
    return p
  }

  /** The publish resolved. Keep waiting only for a new publication that this node delivers. */
  stored(p: PendingPublish, out: PublishOutcome, localSubscribers: boolean): void {
    if (p.done) return
    if (out.duplicate || !localSubscribers) {
      this.#drop(p)
      return
    }
    p.offset = out.offset
    p.epoch = out.epoch
  }

  failed(p: PendingPublish): void {
    if (!p.done) this.#drop(p)
  }

  /** The hub queued `pub` to the channel's subscribers. Once per publication, never per subscriber. */
  delivered(channel: string, pub: StreamPublication): void {
    if (this.#pending.size === 0) return
    const list = this.#pending.get(channel)
    if (list === undefined) return
    let i = list.findIndex((p) => p.offset === pub.offset && p.epoch === pub.epoch)
    // Not resolved yet (the usual case: the feed is faster than the reply): the oldest in flight.
    if (i === -1) i = list.findIndex((p) => p.offset === 0)
    if (i === -1) return
    const p = list[i] as PendingPublish
    this.#drop(p)
    this.#record(performance.now() - p.t0)
  }

  #drop(p: PendingPublish): void {
    p.done = true
    const list = this.#pending.get(p.channel)
    if (list === undefined) return
    const i = list.indexOf(p)
    if (i !== -1) list.splice(i, 1)
    if (list.length === 0) this.#pending.delete(p.channel)
  }

  #sweep(now: number): void {
    this.#sweptAt = now
    for (const list of [...this.#pending.values()]) {
      for (const p of [...list]) if (now - p.t0 > this.#maxWaitMs) this.#drop(p)
    }
  }
}

export interface PendingPublish {
  t0: number
  channel: string
  /** 0 until the publish resolved. */
  offset: number
  epoch: string
  done: boolean
}

export interface MetricsOptions {
  /** Also export Node process metrics (prom-client's default metrics, prefixed). */
  processMetrics: boolean
}

/**
 * A gateway's metrics: its own prom-client registry (never the global one, so two gateways in a
 * process, or an app's own metrics, do not collide). Scrape with `text()`.
 */
export class Metrics {
  /** Content type of `text()`. */
  readonly contentType: string = Registry.PROMETHEUS_CONTENT_TYPE
  /** Times publications from the engine publish call to their fan-out on this node. */
  readonly delivery: DeliveryTimer
  readonly #registry = new Registry()
  readonly #src: MetricsSource
  #processMetrics: boolean

  constructor(src: MetricsSource, opts: MetricsOptions) {
    this.#src = src
    this.#processMetrics = opts.processMetrics
    const c = src.counters
    for (const [key, bounds] of Object.entries(HISTOGRAM_BOUNDS_MS)) c.defineHistogram(key, bounds)
    this.delivery = new DeliveryTimer((ms) => c.observe('publish_delivery_ms', ms))
    this.#define()
  }

  /**
   * The registry, e.g. to merge with the app's (`Registry.merge`). Process metrics are added on
   * first use: a gateway that is never scraped (tests, embedded use) pays nothing for their
   * event-loop monitor and GC observer.
   */
  get registry(): Registry {
    if (this.#processMetrics) {
      this.#processMetrics = false
      collectDefaultMetrics({ register: this.#registry, prefix: METRIC_PREFIX })
    }
    return this.#registry
  }

  /** @internal The registry as it is, for parts that add metrics of their own (the backend's): no process metrics started. */
  get ownRegistry(): Registry {
    return this.#registry
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  #define(): void {
    const registers = [this.#registry]
    const src = this.#src
    const c = src.counters
    const P = METRIC_PREFIX

    for (const t of TRAFFIC) {
      new Counter({
        name: P + t.name,
        help: t.help,
        registers,
        collect() {
          this.reset()
          this.inc(c[t.field])
        },
      })
    }

    for (const d of COUNTERS) {
      const labelNames = d.labelNames !== undefined ? [...d.labelNames] : d.label === undefined ? [] : [d.label]
      const toLabels = (label: string): LabelValues<string> => d.map?.(label) ?? (d.label === undefined ? {} : { [d.label]: label })
      new Counter({
        name: P + d.name,
        help: d.help,
        labelNames,
        registers,
        collect() {
          this.reset()
          for (const k of d.known ?? []) this.inc(toLabels(k), 0)
          for (const [label, value] of c.labelled(d.key)) {
            if (label === undefined) {
              if (labelNames.length === 0) this.inc(value)
            } else if (labelNames.length > 0) this.inc(toLabels(label), value)
          }
        },
      })
    }

    for (const h of HISTOGRAMS) {
      const def = { name: P + h.name, help: h.help, label: h.label, bounds: HISTOGRAM_BOUNDS_MS[h.key] }
      new DistributionHistogram(this.#registry, def, () => c.distributions(h.key))
    }

    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name: P + name,
        help,
        registers,
        collect() {
          this.set(read())
        },
      })
    }
    gauge('connections', 'Open WebSocket connections on this node (including those still in the connect handshake).', () => src.connections.size)
    gauge('sessions', 'Connected sessions on this node.', () => src.bySession.size)
    gauge('channels', 'Channels with at least one subscriber on this node.', () => src.hub.size)
    gauge('subscriptions', 'Subscriptions of the connections on this node.', () => {
      let n = 0
      for (const conn of src.connections) n += conn.subs?.size ?? 0
      return n
    })
    gauge('send_queue_bytes', 'Bytes written to sockets but not yet sent, summed over connections (the send queues).', () => {
      let n = 0
      for (const conn of src.connections) n += conn.socket.bufferedAmount
      return n
    })
    gauge('send_queue_max_bytes', 'The largest send queue of one connection, in bytes.', () => {
      let max = 0
      for (const conn of src.connections) if (conn.socket.bufferedAmount > max) max = conn.socket.bufferedAmount
      return max
    })
    gauge('engine_ready', '1 while the engine can serve publishes and history, 0 while it cannot.', () => (src.engine.isReady() ? 1 : 0))
    gauge('draining', '1 while the node drains (refuses new connections and closes the existing ones).', () => (src.draining ? 1 : 0))
    gauge('encoded_publications_bytes', "Bytes of stored publications' encodings kept for replies (at most 8 MiB per codec; per process).", encodedCacheBytes)

    new Gauge({
      name: `${P}engine_circuit_state`,
      help: "The engine's circuit breaker: 1 for the current state (closed: calls flow; open: failing fast; half_open: probing).",
      labelNames: ['state'],
      registers,
      collect() {
        const engine = src.engine as Engine & EngineBreakerInfo
        const reported = typeof engine.breakerState === 'function' ? engine.breakerState() : undefined
        const state: CircuitState = reported === 'halfOpen' ? 'half_open' : (reported ?? (engine.isReady() ? 'closed' : 'open'))
        for (const s of CIRCUIT_STATES) this.set({ state: s }, s === state ? 1 : 0)
      },
    })

    const budgeted = src.engine as Engine & EngineBudgetInfo
    if (typeof budgeted.state === 'function') {
      const state = (): ReturnType<NonNullable<EngineBudgetInfo['state']>> => (budgeted.state as NonNullable<EngineBudgetInfo['state']>)()
      new Gauge({
        name: `${P}engine_held`,
        help: 'What the engine holds in this process, by kind (each has a budget: docs/security.md).',
        labelNames: ['kind'],
        registers,
        collect() {
          const s = state()
          this.set({ kind: 'streams' }, s.streams)
          this.set({ kind: 'history_publications' }, s.publications)
          this.set({ kind: 'history_bytes' }, s.historyBytes)
          this.set({ kind: 'idempotency_ids' }, s.idempotency)
          this.set({ kind: 'presence_entries' }, s.presence)
        },
      })
      new Counter({
        name: `${P}engine_budget_refusals_total`,
        help: 'Writes the engine refused because a node-wide budget was spent, by budget.',
        labelNames: ['budget'],
        registers,
        collect() {
          this.reset()
          for (const [budget, n] of Object.entries(state().refused)) this.inc({ budget }, n)
        },
      })
      new Counter({
        name: `${P}engine_evictions_total`,
        help: 'What the engine forgot early to stay within its budgets: idle streams, and the oldest history publications.',
        labelNames: ['kind'],
        registers,
        collect() {
          this.reset()
          for (const [kind, n] of Object.entries(state().evicted)) this.inc({ kind }, n)
        },
      })
    }

    const version = serverVersion()
    new Gauge({
      name: `${P}node_info`,
      help: 'Always 1; the labels describe the node.',
      labelNames: ['node', 'version', 'engine'],
      registers,
      collect() {
        this.reset()
        this.set({ node: src.nodeId, version, engine: src.engine.name }, 1)
      },
    })
  }
}
