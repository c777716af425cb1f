import type { BenchReport, CompareReport, Percentiles } from './types.js'

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const kib = (b: number): string => (b / 1024).toFixed(2)
const mib = (b: number): string => (b / 1048576).toFixed(1)

function pct(p: Percentiles | null): string {
  if (p === null) return 'none'
  return `p50 ${ms(p.p50)}  p95 ${ms(p.p95)}  p99 ${ms(p.p99)}  p99.9 ${ms(p.p999)}  max ${ms(p.max)} ms`
}

/** The human summary printed after a run (stdout). */
export function formatReport(r: BenchReport): string {
  const s = r.scenario
  const lines: string[] = []
  const what =
    r.mode === 'fanout'
      ? `${int(s.connections)} connections, ${s.rate} publications/s of ${s.size} B over ${s.channels} channel${s.channels === 1 ? '' : 's'}, ${s.durationS} s`
      : `up to ${int(s.connections)} clients in steps of ${int(r.shootout?.step ?? 0)}, ${s.rate} broadcasts/s of ${s.size} B`
  lines.push(`holdfast bench ${r.mode}: ${r.target.label} at ${r.target.url}`)
  lines.push(`  scenario    ${what}; ${s.workers} client process${s.workers === 1 ? '' : 'es'}, ${s.sourceIps.length} source address${s.sourceIps.length === 1 ? '' : 'es'}`)
  const c = r.connect
  lines.push(
    `  connect     ${int(c.connected)}/${int(c.attempted)} subscribed (${(c.successRate * 100).toFixed(3)}%), ${int(c.failed)} failed` +
      (c.perSecond === null ? '' : `; ${int(c.perSecond)}/s over ${c.rampSeconds} s`) +
      (r.server?.cpuMicrosPerConnect == null ? '' : `, server ${r.server.cpuMicrosPerConnect} µs CPU each`),
  )
  if (c.handshakeMs !== null) lines.push(`  handshake   ${pct(c.handshakeMs)}`)
  for (const [reason, n] of Object.entries(c.failures)) lines.push(`  failure     ${int(n)} × ${reason}`)
  for (const [reason, n] of Object.entries(c.disconnectedDuringRun)) lines.push(`  dropped     ${int(n)} × ${reason} (after subscribing)`)
  const d = r.delivery
  lines.push(`  published   ${int(d.published)}${Object.keys(d.publishErrors).length > 0 ? ` (refused: ${JSON.stringify(d.publishErrors)})` : ''}`)
  lines.push(
    `  delivered   ${int(d.delivered)} of ${int(d.expected)} owed; lost ${int(d.lost)}, duplicated ${int(d.duplicated)}` +
      (d.inFlightAtEnd > 0 ? `, in flight at the end ${int(d.inFlightAtEnd)}` : '') +
      (d.cutOffByDisconnect > 0 ? `, cut off by disconnects ${int(d.cutOffByDisconnect)}` : '') +
      (d.outOfOrder > 0 ? `, out of order ${int(d.outOfOrder)}` : ''),
  )
  lines.push(`  throughput  ${int(d.perSecond)} deliveries/s over ${d.windowSeconds} s (drain ${d.drainSeconds} s)`)
  lines.push(`  latency     ${pct(d.latencyMs)}`)
  if (r.server !== null) {
    const sv = r.server
    lines.push(
      `  server      ${sv.pids.length === 1 ? `pid ${sv.pid}` : `${sv.pids.length} processes (summed)`}: CPU ${sv.cpuPercent}% of a core (${sv.cpuSeconds} s)` +
        (sv.cpuMicrosPerDelivery === null ? '' : `, ${sv.cpuMicrosPerDelivery} µs per delivery`),
    )
    lines.push(
      `  memory      RSS ${mib(sv.rssBaselineBytes)} MiB before clients, ${mib(sv.rssAfterRampBytes)} MiB with them, peak ${mib(sv.rssPeakBytes)} MiB` +
        (sv.rssPerConnectionBytes === null ? '' : `; ${kib(sv.rssPerConnectionBytes)} KiB per connection`),
    )
    if (sv.processes.length > 1) {
      for (const p of sv.processes) {
        lines.push(
          `  process     pid ${p.pid}: CPU ${p.cpuPercent}% (${p.cpuSeconds} s); RSS ${mib(p.rssBaselineBytes)} MiB before clients, ` +
            `${mib(p.rssAfterRampBytes)} MiB with them, peak ${mib(p.rssPeakBytes)} MiB`,
        )
      }
    }
  } else lines.push('  server      not measured (pass --server-pid with --url, or let the bench start the server)')
  lines.push(`  clients     ${r.clients.processes} process${r.clients.processes === 1 ? '' : 'es'}, ${r.clients.cpuPercent}% CPU while publishing`)
  if (r.shootout !== null) {
    const so = r.shootout
    for (const st of so.steps) {
      lines.push(`  step        ${int(st.clients).padStart(7)} clients: p95 ${st.latency === null ? '-' : ms(st.latency.p95)} ms, ${int(st.deliveriesPerSecond)} deliveries/s${st.serverCpuPercent === null ? '' : `, server ${st.serverCpuPercent}%`}`)
    }
    lines.push(`  reached     ${int(so.reached)} clients with broadcast p95 <= ${so.p95LimitMs} ms (${so.stoppedBecause})`)
  }
  for (const w of r.warnings) lines.push(`  warning     ${w}`)
  return `${lines.join('\n')}\n`
}

function ratio(n: number | null): string {
  return n === null || !Number.isFinite(n) ? '-' : `${n.toFixed(2)}×`
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')).join('\n')
}

/** The `--compare` tables: every server's figures, then holdfast's ratio to each peer. */
export function formatCompare(c: CompareReport): string {
  const first = c.runs[0]
  const out: string[] = []
  if (first !== undefined) {
    const s = first.scenario
    out.push(
      `holdfast bench --compare (${c.benchMode}): ${int(s.connections)} clients in ${s.workers} process${s.workers === 1 ? '' : 'es'}, ` +
        `${s.channels} channel${s.channels === 1 ? '' : 's'}, ${s.rate} publications/s of ${s.size} B` +
        (c.benchMode === 'fanout' ? `, ${s.durationS} s` : ''),
      '',
    )
  }
  const rows: string[][] = [
    ['server', 'connected', 'CPU µs/connect', 'RSS/conn KiB', 'CPU µs/delivery', 'CPU %', 'p50 ms', 'p99 ms', 'max ms', 'deliveries/s', 'lost', 'in flight', 'cut off', 'dup', ...(c.benchMode === 'shootout' ? ['reached'] : [])],
  ]
  for (const r of c.runs) {
    rows.push([
      r.target.label,
      `${int(r.connect.connected)}/${int(r.connect.attempted)}`,
      r.server?.cpuMicrosPerConnect == null ? '-' : String(Math.round(r.server.cpuMicrosPerConnect)),
      r.server === null || r.server.rssPerConnectionBytes === null ? '-' : kib(r.server.rssPerConnectionBytes),
      r.server?.cpuMicrosPerDelivery == null ? '-' : r.server.cpuMicrosPerDelivery.toFixed(2),
      r.server === null ? '-' : String(r.server.cpuPercent),
      r.delivery.latencyMs === null ? '-' : ms(r.delivery.latencyMs.p50),
      r.delivery.latencyMs === null ? '-' : ms(r.delivery.latencyMs.p99),
      r.delivery.latencyMs === null ? '-' : ms(r.delivery.latencyMs.max),
      int(r.delivery.perSecond),
      int(r.delivery.lost),
      int(r.delivery.inFlightAtEnd),
      int(r.delivery.cutOffByDisconnect),
      int(r.delivery.duplicated),
      ...(c.benchMode === 'shootout' ? [int(r.shootout?.reached ?? 0)] : []),
    ])
  }
  out.push(table(rows), '')
  if (c.ratios.length > 0) {
    const rr: string[][] = [['holdfast / peer', 'CPU per delivery', 'RSS per connection', 'p99 latency', 'deliveries/s', ...(c.benchMode === 'shootout' ? ['clients reached'] : [])]]
    for (const x of c.ratios) {
      const label = c.runs.find((r) => r.target.kind === x.peer)?.target.label ?? x.peer
      rr.push([`${x.holdfast} vs ${label}`, ratio(x.cpuPerDelivery), ratio(x.rssPerConnection), ratio(x.p99), ratio(x.deliveriesPerSecond), ...(c.benchMode === 'shootout' ? [ratio(x.clientsReached)] : [])])
    }
    out.push(table(rr))
    out.push('(below 1× is better for CPU, RSS and latency; above 1× is better for deliveries/s and clients reached)')
  }
  for (const [k, why] of Object.entries(c.skipped)) out.push(`skipped ${k}: ${why}`)
  for (const r of c.runs) for (const w of r.warnings) out.push(`warning [${r.target.kind}] ${w}`)
  return `${out.join('\n')}\n`
}
