/**
 * The gateway's instrumentation surface: plain numbers that the hot path bumps cheaply and that
 * the Prometheus exporter (metrics.ts) and tests read. Nothing here knows about prom-client, so
 * instrumenting a code path never costs more than a field increment or a Map update, and never
 * allocates a label object per event.
 */

/**
 * The counters bumped per message or per socket write. Plain fields: a Map lookup per delivered
 * message would already cost more than the rule "no more than an integer increment" allows.
 */
export interface TrafficCounters {
  /** Client messages decoded (a batch frame counts each message). */
  messagesIn: number
  /** Bytes of client frames, as received. */
  bytesIn: number
  /** Server messages written (a coalesced frame counts each message in it). */
  messagesOut: number
  /** Bytes of frames handed to the sockets. */
  bytesOut: number
}

/** `get('messages_in')` and friends keep answering for the traffic counters. */
const TRAFFIC_FIELDS: Readonly<Record<string, keyof TrafficCounters>> = {
  messages_in: 'messagesIn',
  bytes_in: 'bytesIn',
  messages_out: 'messagesOut',
  bytes_out: 'bytesOut',
}

/** Label key of an unlabelled value; labels are never empty strings. */
const NO_LABEL = ''

/**
 * A fixed-bucket histogram over plain numbers: one short linear scan per observation, no
 * allocation. Bounds are in the unit observed (the exporter scales them, e.g. ms to seconds).
 */
export class Distribution {
  readonly bounds: readonly number[]
  /** Observations per bucket, not cumulative; the last slot is above every bound (+Inf). */
  readonly buckets: Float64Array
  count = 0
  sum = 0
  max = 0

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new TypeError('holdfast: histogram bounds must increase')
    }
    this.bounds = bounds
    this.buckets = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    // Negative values would be clock trouble (a wall clock stepping back): count them as 0.
    const v = value > 0 ? value : 0
    const b = this.bounds
    let i = 0
    while (i < b.length && v > (b[i] as number)) i++
    this.buckets[i] = (this.buckets[i] ?? 0) + 1
    this.count++
    this.sum += v
    if (v > this.max) this.max = v
  }
}

/** Buckets used when a distribution was not declared with its own (ms-oriented). */
const DEFAULT_BOUNDS: readonly number[] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

/**
 * Metric-ready counters and distributions, optionally labelled by one label value.
 * `inc('publishes', 'client')` and `get('publishes', 'client')` keep the names the rest of the
 * server (and its tests) use; metrics.ts maps them to Prometheus names and label names.
 */
export class Counters implements TrafficCounters {
  messagesIn = 0
  bytesIn = 0
  messagesOut = 0
  bytesOut = 0
  readonly #values = new Map<string, Map<string, number>>()
  readonly #dists = new Map<string, Map<string, Distribution>>()
  readonly #bounds = new Map<string, readonly number[]>()

  inc(name: string, label?: string, by = 1): void {
    let byLabel = this.#values.get(name)
    if (byLabel === undefined) this.#values.set(name, (byLabel = new Map()))
    const key = label ?? NO_LABEL
    byLabel.set(key, (byLabel.get(key) ?? 0) + by)
  }

  get(name: string, label?: string): number {
    if (label === undefined) {
      const field = TRAFFIC_FIELDS[name]
      if (field !== undefined) return this[field]
    }
    return this.#values.get(name)?.get(label ?? NO_LABEL) ?? 0
  }

  /** Every label value of a counter with its value (`undefined`: the unlabelled value). */
  labelled(name: string): Array<[label: string | undefined, value: number]> {
    const byLabel = this.#values.get(name)
    if (byLabel === undefined) return []
    return [...byLabel].map(([k, v]) => [k === NO_LABEL ? undefined : k, v])
  }

  /** Declare the bucket bounds of a distribution; observations made before keep their old buckets. */
  defineHistogram(name: string, bounds: readonly number[]): void {
    this.#bounds.set(name, [...bounds])
  }

  /** Record one observation (e.g. a ping round trip in ms), optionally under a label. */
  observe(name: string, value: number, label?: string): void {
    let byLabel = this.#dists.get(name)
    if (byLabel === undefined) this.#dists.set(name, (byLabel = new Map()))
    const key = label ?? NO_LABEL
    let d = byLabel.get(key)
    if (d === undefined) byLabel.set(key, (d = new Distribution(this.#bounds.get(name) ?? DEFAULT_BOUNDS)))
    d.observe(value)
  }

  /** Count, sum and max of a distribution: of one label, or of all labels together when none is given. */
  observations(name: string, label?: string): { count: number; sum: number; max: number } {
    const out = { count: 0, sum: 0, max: 0 }
    for (const [k, d] of this.#dists.get(name) ?? []) {
      if (label !== undefined && k !== label) continue
      out.count += d.count
      out.sum += d.sum
      if (d.max > out.max) out.max = d.max
    }
    return out
  }

  /** Every label value of a distribution (`undefined`: the unlabelled one). */
  distributions(name: string): Array<[label: string | undefined, d: Distribution]> {
    const byLabel = this.#dists.get(name)
    if (byLabel === undefined) return []
    return [...byLabel].map(([k, d]) => [k === NO_LABEL ? undefined : k, d])
  }

  /** Every counter as `name` or `name{label}` → value, traffic counters included. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [name, field] of Object.entries(TRAFFIC_FIELDS)) out[name] = this[field]
    for (const [name, byLabel] of this.#values) {
      for (const [k, v] of byLabel) out[k === NO_LABEL ? name : `${name}{${k}}`] = v
    }
    return out
  }
}
