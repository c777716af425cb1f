/**
 * Metric-ready counters, kept as plain numbers so the hot path pays one Map lookup; the
 * Prometheus exporter (and tests) read them. Labels are folded into the key as `name{label}`.
 */
export class Counters {
  readonly #values = new Map<string, number>()
  readonly #sums = new Map<string, { count: number; sum: number; max: number }>()

  inc(name: string, label?: string, by = 1): void {
    const key = label === undefined ? name : `${name}{${label}}`
    this.#values.set(key, (this.#values.get(key) ?? 0) + by)
  }

  get(name: string, label?: string): number {
    return this.#values.get(label === undefined ? name : `${name}{${label}}`) ?? 0
  }

  /** Record one observation (e.g. a ping round trip in ms). */
  observe(name: string, value: number): void {
    const s = this.#sums.get(name)
    if (s === undefined) this.#sums.set(name, { count: 1, sum: value, max: value })
    else {
      s.count++
      s.sum += value
      if (value > s.max) s.max = value
    }
  }

  observations(name: string): { count: number; sum: number; max: number } {
    return this.#sums.get(name) ?? { count: 0, sum: 0, max: 0 }
  }

  /** Every counter as `name{label}` → value. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#values)
  }
}
