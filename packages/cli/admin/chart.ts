// Live line charts with uPlot: a canvas that redraws a few thousand points in well under a
// millisecond, a cursor with the values of every node at one instant, and a legend that hides a
// series on click. Bundled into admin.js (the CSP allows nothing from elsewhere); its stylesheet
// is copied to /admin/uplot.css by the build.
import uPlot from 'uplot'

export interface Series {
  /** Legend label (the node id, and "in"/"out" where a node has two lines). */
  label: string
  color: string
  dashed?: boolean
  /** [time in ms, value], in time order. */
  points: ReadonlyArray<readonly [number, number]>
}

/** A round axis maximum at or above `max` (1, 2, 2.5, 5 × 10ⁿ), so grid labels read well. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1
  const pow = 10 ** Math.floor(Math.log10(max))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= max) return m * pow
  return 10 * pow
}

function formatValue(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`
  return String(+v.toFixed(1))
}

/**
 * The samples of several series on one time axis: nodes publish on their own clocks, so the
 * union of their timestamps (in seconds, uPlot's unit) with null where a series has no sample.
 */
export function align(series: readonly Series[], start: number, end: number): uPlot.AlignedData {
  const times = new Set<number>()
  for (const s of series) for (const [t] of s.points) if (t >= start && t <= end) times.add(t)
  const xs = [...times].sort((a, b) => a - b)
  const index = new Map(xs.map((t, i) => [t, i]))
  const columns = series.map((s) => {
    const col: (number | null)[] = new Array<number | null>(xs.length).fill(null)
    for (const [t, v] of s.points) {
      const i = index.get(t)
      if (i !== undefined) col[i] = v
    }
    return col
  })
  return [xs.map((t) => t / 1000), ...columns] as uPlot.AlignedData
}

/** One chart in `el`, redrawn with `draw()`; rebuilt only when the set of series changes. */
export class LiveChart {
  readonly #el: HTMLElement
  #plot: uPlot | undefined
  #shape = ''
  /** The time window shown, in seconds: read by the x scale at every redraw. */
  #range: uPlot.Range.MinMax = [0, 1]

  constructor(el: HTMLElement) {
    this.#el = el
    new ResizeObserver(() => this.#plot?.setSize(this.#size())).observe(el)
  }

  #size(): { width: number; height: number } {
    return { width: Math.max(200, this.#el.clientWidth), height: 180 }
  }

  /** Redraw with the series over the `windowMs` ending at `end` (ms), values from zero up. */
  draw(series: readonly Series[], end: number, windowMs: number): void {
    const start = end - windowMs
    this.#range = [start / 1000, end / 1000]
    const data = align(series, start, end)
    const shape = series.map((s) => `${s.label}|${s.color}|${s.dashed === true}`).join(',')
    if (this.#plot === undefined || shape !== this.#shape) {
      this.#plot?.destroy()
      this.#shape = shape
      this.#plot = new uPlot(
        {
          ...this.#size(),
          legend: { show: series.length > 0 },
          cursor: { drag: { x: false, y: false } },
          scales: {
            x: { time: true, range: () => this.#range },
            y: { range: (u, _min, max) => [0, niceMax(max)] },
          },
          axes: [{}, { values: (_u, ticks) => ticks.map(formatValue), size: 48 }],
          series: [
            {},
            ...series.map((s) => ({
              label: s.label,
              stroke: s.color,
              width: s.dashed === true ? 1.5 : 2,
              ...(s.dashed === true ? { dash: [5, 4] } : {}),
              spanGaps: true,
              points: { show: (u: uPlot) => (u.data[0]?.length ?? 0) < 2 },
            })),
          ],
        },
        data,
        this.#el,
      )
    } else {
      // setData rescales: x from #range (the window ending at the newest sample), y from zero.
      this.#plot.setData(data)
    }
    // For tests: how many samples, and how many series with at least one, the chart shows.
    let points = 0
    let drawn = 0
    for (let i = 1; i < data.length; i++) {
      const n = (data[i] as (number | null)[]).filter((v) => v !== null).length
      points += n
      if (n > 0) drawn++
    }
    this.#el.dataset['points'] = String(points)
    this.#el.dataset['series'] = String(drawn)
  }
}
