/**
 * Tiny SVG charts for the HTML report, drawn here so the report is one file that opens anywhere
 * offline: no charting library, no CDN, no script needed to see the figures.
 *
 * Why not uPlot here (the dashboard uses it): the report is a document, not a live view. Static
 * SVG shows with scripts off, prints, stays readable in a diff of two reports, and keeps the file
 * small; uPlot would embed ~50 KB of script to draw charts that never change.
 */

export interface Series {
  name: string
  color: string
  /** [x, y]; a null y breaks the line. */
  points: Array<[number, number | null]>
}

export interface LineChartOptions {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Logarithmic y axis (latencies spanning orders of magnitude). */
  logY?: boolean
  /** A horizontal reference line, e.g. the shootout's p95 limit. */
  limit?: { y: number; label: string }
  width?: number
  height?: number
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function fmt(n: number): string {
  if (n === 0) return '0'
  const a = Math.abs(n)
  if (a >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${+(n / 1e3).toPrecision(3)}k`
  if (a >= 1) return String(+n.toPrecision(3))
  return String(+n.toPrecision(2))
}

/** 1, 2, 5 × 10^k steps, about `count` of them over [0, max]. */
function linearTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag) as number
  const ticks: number[] = []
  for (let v = 0; v <= max + step * 0.5; v += step) ticks.push(+v.toPrecision(12))
  if ((ticks[ticks.length - 1] as number) < max) ticks.push(+(ticks.length * step).toPrecision(12))
  return ticks
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) ticks.push(10 ** e)
  return ticks
}

export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 760
  const H = o.height ?? 280
  // Title on the first line, legend on the second, plot below both.
  const m = { l: 64, r: 16, t: 52, b: 42 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const xs: number[] = []
  const ys: number[] = []
  for (const s of o.series) {
    for (const [x, y] of s.points) {
      xs.push(x)
      if (y !== null && Number.isFinite(y) && (!o.logY || y > 0)) ys.push(y)
    }
  }
  if (o.limit !== undefined) ys.push(o.limit.y)
  const title = `<text x="${m.l}" y="20" class="title">${escapeXml(o.title)}</text>`
  if (xs.length === 0 || ys.length === 0) {
    return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${title}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="muted">no data</text></svg>`
  }
  const x0 = Math.min(...xs)
  const x1 = Math.max(...xs, x0 + 1)
  let yTicks: number[]
  let yMap: (y: number) => number
  if (o.logY === true) {
    yTicks = logTicks(Math.min(...ys), Math.max(...ys))
    const lo = Math.log10(yTicks[0] as number)
    const hi = Math.log10(yTicks[yTicks.length - 1] as number)
    const span = Math.max(hi - lo, 1e-9)
    yMap = (y) => m.t + ph - ((Math.log10(Math.max(y, yTicks[0] as number)) - lo) / span) * ph
  } else {
    yTicks = linearTicks(Math.max(...ys))
    const hi = yTicks[yTicks.length - 1] as number
    yMap = (y) => m.t + ph - (y / (hi || 1)) * ph
  }
  const xMap = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw
  const parts: string[] = [title]
  for (const t of yTicks) {
    const y = yMap(t).toFixed(1)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" class="grid"/><text x="${m.l - 6}" y="${y}" dy="4" text-anchor="end" class="tick">${fmt(t)}</text>`)
  }
  // x ticks at round values inside [x0, x1], not at x0 + k·step.
  const xTicks = linearTicks(x1 - x0, 6)
  const xStep = xTicks.length > 1 ? (xTicks[1] as number) - (xTicks[0] as number) : 1
  for (let v = Math.ceil(x0 / xStep) * xStep; v <= x1 + 1e-9; v += xStep) {
    parts.push(`<text x="${xMap(v).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" class="tick">${fmt(+v.toPrecision(12))}</text>`)
  }
  parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" class="axis"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" class="axis"/>`)
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" text-anchor="middle" class="label">${escapeXml(o.xLabel)}</text>`)
  parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${escapeXml(o.yLabel)}${o.logY === true ? ' (log)' : ''}</text>`)
  if (o.limit !== undefined) {
    const y = yMap(o.limit.y).toFixed(1)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" class="limit"/><text x="${m.l + pw - 4}" y="${y}" dy="-4" text-anchor="end" class="tick">${escapeXml(o.limit.label)}</text>`)
  }
  for (const s of o.series) {
    let d = ''
    let pen = false
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y) || (o.logY === true && y <= 0)) {
        pen = false
        continue
      }
      d += `${pen ? 'L' : 'M'}${xMap(x).toFixed(1)} ${yMap(y).toFixed(1)}`
      pen = true
    }
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`)
    if (s.points.length <= 40) {
      for (const [x, y] of s.points) if (y !== null && (o.logY !== true || y > 0)) parts.push(`<circle cx="${xMap(x).toFixed(1)}" cy="${yMap(y).toFixed(1)}" r="2.2" fill="${s.color}"/>`)
    }
  }
  let lx = m.l
  for (const s of o.series) {
    parts.push(`<rect x="${lx}" y="28" width="12" height="12" fill="${s.color}"/><text x="${lx + 16}" y="38" class="legend">${escapeXml(s.name)}</text>`)
    lx += 28 + s.name.length * 7
  }
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${parts.join('')}</svg>`
}

export interface Bar {
  label: string
  value: number | null
  color: string
}

/** Horizontal bars with their values: one metric across servers, or one run's percentiles. */
export function barChart(title: string, unit: string, bars: Bar[], width = 760): string {
  const rowH = 26
  const m = { l: 230, r: 90, t: 34 }
  const H = m.t + bars.length * rowH + 10
  const max = Math.max(0, ...bars.map((b) => b.value ?? 0)) || 1
  const pw = width - m.l - m.r
  const parts = [`<text x="8" y="20" class="title">${escapeXml(title)}</text>`]
  bars.forEach((b, i) => {
    const y = m.t + i * rowH
    parts.push(`<text x="${m.l - 8}" y="${y + 16}" text-anchor="end" class="legend">${escapeXml(b.label)}</text>`)
    if (b.value === null) {
      parts.push(`<text x="${m.l + 4}" y="${y + 16}" class="muted">not measured</text>`)
      return
    }
    const w = Math.max(1, (b.value / max) * pw)
    parts.push(`<rect x="${m.l}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${b.color}"/>`)
    parts.push(`<text x="${(m.l + w + 6).toFixed(1)}" y="${y + 16}" class="tick">${escapeXml(`${fmt(b.value)} ${unit}`)}</text>`)
  })
  return `<svg viewBox="0 0 ${width} ${H}" width="${width}" height="${H}" role="img">${parts.join('')}</svg>`
}
