import { barChart, escapeXml as esc, lineChart } from './svg-chart.js'
import type { BenchReport, CompareReport, Percentiles, ServerKind } from './types.js'

/**
 * The `--html` report: one self-contained file (inline CSS and SVG, the raw report as embedded
 * JSON) that can be attached to an issue or opened offline. Nothing is fetched: no CDN, no fonts,
 * no scripts to run.
 */

const COLORS = { p50: '#2b8a3e', p95: '#e8a317', p99: '#d9480f', max: '#862e9c', a: '#1c7ed6', b: '#5c940d', c: '#c2255c' }
const SERVER_COLORS: Readonly<Record<ServerKind | 'external', string>> = {
  holdfast: '#1c7ed6',
  external: '#1c7ed6',
  'holdfast-uws': '#0b7285',
  ws: '#868e96',
  socketio: '#e8590c',
  uws: '#2b8a3e',
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:820px;color:#212529;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f8f9fa}
.muted{fill:#868e96;color:#868e96}.warn{color:#c92a2a}
svg{display:block;margin:8px 0;max-width:100%;height:auto}
svg .title{font-weight:600;font-size:13px}svg .tick{font-size:11px;fill:#495057}svg .label{font-size:11px;fill:#495057}
svg .legend{font-size:12px}svg .grid{stroke:#e9ecef}svg .axis{stroke:#868e96}svg .limit{stroke:#c92a2a;stroke-dasharray:5 4}
code{background:#f1f3f5;padding:1px 4px;border-radius:3px}
`

const fmtMs = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const int = (n: number): string => Math.round(n).toLocaleString('en-US')

function rows(pairs: Array<[string, string]>): string {
  return `<table>${pairs.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>`
}

function pctText(p: Percentiles | null): string {
  return p === null ? 'none' : `p50 ${fmtMs(p.p50)} · p95 ${fmtMs(p.p95)} · p99 ${fmtMs(p.p99)} · p99.9 ${fmtMs(p.p999)} · max ${fmtMs(p.max)} ms`
}

function runSection(r: BenchReport, heading: string): string {
  const s = r.scenario
  const d = r.delivery
  const out: string[] = [`<h2>${esc(heading)}</h2>`]
  out.push(
    rows([
      ['server', `${r.target.label} — ${r.target.url}${r.target.pid === null ? '' : ` (pid ${r.target.pid})`}`],
      ['scenario', `${int(s.connections)} ${r.mode === 'shootout' ? 'clients at most' : 'connections'}, ${s.rate} publications/s of ${s.size} B, ${s.channels} channel(s), ramp ${s.ramp}/s, ${s.workers} client process(es)`],
      ['connect', `${int(r.connect.connected)} / ${int(r.connect.attempted)} (${(r.connect.successRate * 100).toFixed(3)}%)`],
      ['handshake', pctText(r.connect.handshakeMs)],
      ['published', int(d.published)],
      ['delivered / owed', `${int(d.delivered)} / ${int(d.expected)}`],
      ['lost / duplicated', `${int(d.lost)} / ${int(d.duplicated)}${d.inFlightAtEnd > 0 ? ` (in flight at the end: ${int(d.inFlightAtEnd)})` : ''}${d.cutOffByDisconnect > 0 ? ` (cut off by disconnects: ${int(d.cutOffByDisconnect)})` : ''}`],
      ['deliveries per second', int(d.perSecond)],
      ['delivery latency', pctText(d.latencyMs)],
      ...(r.server === null
        ? ([['server CPU / memory', 'not measured']] as Array<[string, string]>)
        : ([
            ['server CPU', `${r.server.cpuPercent}% of a core; ${r.server.cpuMicrosPerDelivery ?? '-'} µs per delivery`],
            ['server RSS', `${(r.server.rssAfterRampBytes / 1048576).toFixed(1)} MiB with clients; ${r.server.rssPerConnectionBytes === null ? '-' : (r.server.rssPerConnectionBytes / 1024).toFixed(2)} KiB per connection`],
          ] as Array<[string, string]>)),
      ['client CPU', `${r.clients.cpuPercent}% over ${r.clients.processes} process(es)`],
    ]),
  )
  for (const w of r.warnings) out.push(`<p class="warn">⚠ ${esc(w)}</p>`)
  const tl = r.timeline
  out.push(
    lineChart({
      title: 'Delivery latency per second',
      xLabel: 'seconds since start',
      yLabel: 'ms',
      logY: true,
      series: (['p50', 'p95', 'p99', 'max'] as const).map((k) => ({ name: k, color: COLORS[k], points: tl.map((p) => [p.t, p.latency?.[k] ?? null] as [number, number | null]) })),
    }),
  )
  out.push(
    lineChart({
      title: 'Throughput and connections',
      xLabel: 'seconds since start',
      yLabel: 'per second / count',
      series: [
        { name: 'deliveries/s', color: COLORS.a, points: tl.map((p) => [p.t, p.deliveriesPerSecond]) },
        { name: 'open connections', color: COLORS.b, points: tl.map((p) => [p.t, p.connections]) },
      ],
    }),
  )
  out.push(
    lineChart({
      title: 'CPU (100 = one core)',
      xLabel: 'seconds since start',
      yLabel: '%',
      series: [
        { name: 'server', color: COLORS.c, points: tl.map((p) => [p.t, p.serverCpuPercent]) },
        { name: 'bench clients', color: COLORS.a, points: tl.map((p) => [p.t, p.clientCpuPercent]) },
      ],
    }),
  )
  if (tl.some((p) => p.serverRssBytes !== null)) {
    out.push(
      lineChart({
        title: 'Server RSS',
        xLabel: 'seconds since start',
        yLabel: 'MiB',
        series: [{ name: 'RSS', color: COLORS.max, points: tl.map((p) => [p.t, p.serverRssBytes === null ? null : p.serverRssBytes / 1048576]) }],
      }),
    )
  }
  if (d.latencyMs !== null) {
    const l = d.latencyMs
    out.push(
      barChart('Delivery latency percentiles, whole run', 'ms', [
        { label: 'p50', value: l.p50, color: COLORS.p50 },
        { label: 'p95', value: l.p95, color: COLORS.p95 },
        { label: 'p99', value: l.p99, color: COLORS.p99 },
        { label: 'p99.9', value: l.p999, color: COLORS.p99 },
        { label: 'max', value: l.max, color: COLORS.max },
      ]),
    )
  }
  if (r.shootout !== null) {
    const so = r.shootout
    out.push(
      lineChart({
        title: `Shootout: broadcast latency by clients (reached ${int(so.reached)})`,
        xLabel: 'clients',
        yLabel: 'ms',
        limit: { y: so.p95LimitMs, label: `limit ${so.p95LimitMs} ms` },
        series: (['p50', 'p95', 'p99'] as const).map((k) => ({ name: k, color: COLORS[k], points: so.steps.map((st) => [st.clients, st.latency?.[k] ?? null] as [number, number | null]) })),
      }),
    )
    out.push(`<p>Stopped: ${esc(so.stoppedBecause)}.</p>`)
  }
  return out.join('\n')
}

function page(title: string, body: string, data: unknown): string {
  // `<` escaped so the embedded JSON can never close its script element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
${body}
<p class="muted">Generated by holdfast bench. The full report is embedded below as JSON (id "report").</p>
<script type="application/json" id="report">${json}</script>
</body></html>
`
}

export function renderReportHtml(r: BenchReport): string {
  const title = `holdfast bench ${r.mode} — ${r.target.label}`
  const body = `<h1>${esc(title)}</h1><p class="muted">${esc(r.startedAt)} · holdfast ${esc(r.version)}</p>\n${runSection(r, 'Results')}`
  return page(title, body, r)
}

export function renderCompareHtml(c: CompareReport): string {
  const title = `holdfast bench --compare (${c.benchMode})`
  const out: string[] = [`<h1>${esc(title)}</h1><p class="muted">${esc(c.startedAt)} · holdfast ${esc(c.version)}</p>`]
  out.push('<h2>Ratios: holdfast / peer</h2>')
  out.push(
    `<table><tr><th>peer</th><th>CPU per delivery</th><th>RSS per connection</th><th>p99 latency</th><th>deliveries/s</th>${c.benchMode === 'shootout' ? '<th>clients reached</th>' : ''}</tr>` +
      c.ratios
        .map((x) => {
          const f = (n: number | null): string => (n === null ? '-' : `${n.toFixed(2)}×`)
          const label = c.runs.find((r) => r.target.kind === x.peer)?.target.label ?? x.peer
          return `<tr><td>${esc(x.holdfast)} vs ${esc(label)}</td><td>${f(x.cpuPerDelivery)}</td><td>${f(x.rssPerConnection)}</td><td>${f(x.p99)}</td><td>${f(x.deliveriesPerSecond)}</td>${c.benchMode === 'shootout' ? `<td>${f(x.clientsReached)}</td>` : ''}</tr>`
        })
        .join('') +
      '</table><p class="muted">Below 1× is better for CPU, RSS and latency; above 1× is better for deliveries/s and clients reached.</p>',
  )
  const bars = (title: string, unit: string, get: (r: BenchReport) => number | null | undefined): string =>
    barChart(
      title,
      unit,
      c.runs.map((r) => ({ label: r.target.label, value: get(r) ?? null, color: SERVER_COLORS[r.target.kind] })),
    )
  out.push('<h2>Side by side</h2>')
  out.push(bars('Server CPU per delivery', 'µs', (r) => r.server?.cpuMicrosPerDelivery))
  out.push(bars('Server RSS per connection', 'KiB', (r) => (r.server?.rssPerConnectionBytes == null ? null : r.server.rssPerConnectionBytes / 1024)))
  out.push(bars('Delivery latency p99', 'ms', (r) => r.delivery.latencyMs?.p99))
  out.push(bars('Deliveries per second', '/s', (r) => r.delivery.perSecond))
  if (c.benchMode === 'shootout') out.push(bars('Clients reached within the p95 limit', 'clients', (r) => r.shootout?.reached))
  out.push(
    lineChart({
      title: 'Delivery latency p99 per second, all servers',
      xLabel: 'seconds since the first publication',
      yLabel: 'ms',
      logY: true,
      // Each run on its own clock, aligned at its first publication so the runs overlay.
      series: c.runs.map((r) => {
        const start = r.timeline.find((p) => p.phase === 'publish' || p.phase === 'shootout')?.t ?? 0
        return { name: r.target.kind, color: SERVER_COLORS[r.target.kind], points: r.timeline.map((p) => [Math.round((p.t - start) * 10) / 10, p.latency?.p99 ?? null] as [number, number | null]) }
      }),
    }),
  )
  for (const [k, why] of Object.entries(c.skipped)) out.push(`<p class="warn">Skipped ${esc(k)}: ${esc(why)}</p>`)
  for (const r of c.runs) out.push(runSection(r, r.target.label))
  return page(title, out.join('\n'), c)
}
