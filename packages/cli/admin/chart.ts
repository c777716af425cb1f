// Line charts drawn as inline SVG: no library, no CDN (the CSP allows nothing from elsewhere),
// and crisp at any width because the SVG scales with its viewBox.

const SVG = 'http://www.w3.org/2000/svg'
const W = 600
const H = 180
const PAD = { left: 44, right: 8, top: 10, bottom: 20 }

export interface Series {
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

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  if (text !== undefined) node.textContent = text
  return node
}

/**
 * Redraw `svg` with the series over the `windowMs` ending at `end`. Values are drawn from zero up,
 * with three grid lines and the time axis in seconds ago.
 */
export function drawChart(svg: SVGSVGElement, series: readonly Series[], end: number, windowMs: number): void {
  const start = end - windowMs
  let max = 0
  for (const s of series) for (const [t, v] of s.points) if (t >= start && v > max) max = v
  const top = niceMax(max)
  const plotW = W - PAD.left - PAD.right
  const plotH = H - PAD.top - PAD.bottom
  const x = (t: number): number => PAD.left + ((t - start) / windowMs) * plotW
  const y = (v: number): number => PAD.top + plotH - (v / top) * plotH

  const parts: SVGElement[] = []
  for (const f of [0, 0.5, 1]) {
    const yy = y(top * f)
    parts.push(el('line', { class: 'grid-line', x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy }))
    parts.push(el('text', { x: PAD.left - 6, y: yy + 4, 'text-anchor': 'end' }, formatValue(top * f)))
  }
  // At most five time labels, on round seconds.
  const step = [5, 10, 15, 30, 60].find((s) => windowMs / (s * 1000) <= 4) ?? 60
  for (let ago = 0; ago * 1000 <= windowMs; ago += step) {
    const t = end - ago * 1000
    const anchor = ago === 0 ? 'end' : ago * 1000 === windowMs ? 'start' : 'middle'
    parts.push(el('text', { x: x(t), y: H - 5, 'text-anchor': anchor }, ago === 0 ? 'now' : `-${ago}s`))
  }
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= start && t <= end)
    if (pts.length === 0) continue
    const d = pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    // A single sample is still shown: as a dot, a line needs two points.
    if (pts.length === 1) {
      const [t, v] = pts[0] as readonly [number, number]
      parts.push(el('circle', { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: s.color }))
    } else {
      parts.push(el('polyline', { class: s.dashed === true ? 'series dashed' : 'series', points: d, stroke: s.color }))
    }
  }
  svg.replaceChildren(...parts)
}
