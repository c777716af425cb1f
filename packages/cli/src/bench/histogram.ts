import * as hdr from 'hdr-histogram-js'
import type { Percentiles } from './types.js'

export type Histogram = hdr.Histogram

/**
 * Latencies are recorded in whole microseconds: hdr histograms count integers, and a microsecond
 * keeps loopback latencies (tens of µs) distinguishable while an hour still fits.
 */
export function newHistogram(): Histogram {
  // 3 significant digits: 0.1% resolution at every magnitude; auto-resize so a saturated server's
  // multi-second latencies are recorded rather than thrown.
  return hdr.build({ numberOfSignificantValueDigits: 3, autoResize: true })
}

/** Record a latency given in milliseconds. */
export function recordMs(h: Histogram, ms: number): void {
  // A sub-microsecond (or, across processes, slightly negative) reading is still a delivery.
  h.recordValue(ms >= 0.001 ? Math.round(ms * 1000) : 1)
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h)
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s, 32, false)
}

/** Add an encoded histogram (from a worker) into `into`. */
export function addEncoded(into: Histogram, encoded: string): void {
  into.add(decodeHistogram(encoded))
}

const round3 = (us: number): number => Math.round(us) / 1000

export function percentiles(h: Histogram): Percentiles | null {
  if (h.totalCount === 0) return null
  return {
    count: h.totalCount,
    mean: round3(h.mean),
    p50: round3(h.getValueAtPercentile(50)),
    p95: round3(h.getValueAtPercentile(95)),
    p99: round3(h.getValueAtPercentile(99)),
    p999: round3(h.getValueAtPercentile(99.9)),
    max: round3(h.maxValue),
  }
}
