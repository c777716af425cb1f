import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { renderCompareHtml, renderReportHtml } from './bench/html-report.js'
import { BENCH_FLAGS, resolveBenchConfig, type BenchFlag } from './bench/options.js'
import { formatCompare, formatReport } from './bench/report-text.js'
import { runBench } from './bench/runner.js'
import { runCompare } from './bench/compare.js'
import type { BenchReport, CompareReport } from './bench/types.js'
import { CliError } from './cli-error.js'

export function benchUsage(): string {
  const rows = (Object.keys(BENCH_FLAGS) as BenchFlag[]).map((f) => [`  --${f}${BENCH_FLAGS[f].value ? ` ${BENCH_FLAGS[f].value}` : ''}`, BENCH_FLAGS[f].help] as const)
  const w = Math.max(...rows.map((r) => r[0].length))
  return `Usage: holdfast bench [--url ws://127.0.0.1:8080/ws] --connections N --duration SECONDS [options]

Opens N connections (ramped, from several processes and source addresses 127.0.0.x), subscribes
each to one of C channels, publishes at R/s and measures connect success, handshake and delivery
latency (p50/p95/p99/p99.9/max), deliveries per second, lost and duplicated publications, and the
server's CPU and memory when it runs on this machine. Without --url it starts the server itself.

${rows.map(([flag, help]) => `${flag.padEnd(w)}  ${help}`).join('\n')}

Examples:
  holdfast bench --connections 2000 --duration 20s --rate 20
  holdfast bench --url ws://127.0.0.1:8080/ws --server-pid $(pgrep -f "holdfast serve") --connections 5000
  holdfast bench --compare --connections 10000 --workers 2 --rate 40 --duration 30 --html report.html
  holdfast bench --mode shootout --connections 20000 --step 1000 --p95-limit-ms 500

Every run is bounded (--timeout). Docs: docs/bench.md
`
}

function write(path: string, text: string, stdout: NodeJS.WritableStream): void {
  if (path === '-') {
    stdout.write(text)
    return
  }
  try {
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, text)
  } catch (err) {
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`, { cause: err, exitCode: 1 })
  }
}

export interface BenchCommandIO {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

/**
 * `holdfast bench`: run, print the summary (or the --compare tables) on stdout, write --json and
 * --html. With `--json -` the JSON goes to stdout instead of the summary, for piping into jq.
 */
export async function runBenchCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: BenchCommandIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<BenchReport | CompareReport> {
  const cfg = resolveBenchConfig(argv, env)
  let report: BenchReport | CompareReport
  try {
    report = cfg.compare ? await runCompare(cfg, { stderr: io.stderr }) : await runBench(cfg, { stderr: io.stderr })
  } catch (err) {
    if (err instanceof CliError) throw err
    throw new CliError(`bench failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err, exitCode: 1 })
  }
  if (cfg.json !== '-') io.stdout.write(report.mode === 'compare' ? formatCompare(report) : formatReport(report))
  if (cfg.json !== undefined) write(cfg.json, `${JSON.stringify(report, null, 2)}\n`, io.stdout)
  if (cfg.html !== undefined) write(cfg.html, report.mode === 'compare' ? renderCompareHtml(report) : renderReportHtml(report), io.stdout)
  return report
}
