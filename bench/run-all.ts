/**
 * `npm run bench`: the performance issue's comparison table, reproduced with `holdfast bench
 * --compare` in one run, so every figure is a ratio between servers measured alike on the same
 * machine at the same time.
 *
 *   npm run bench                                  # the table scenario (below)
 *   npm run bench -- --preset channels             # 1,000 publications/s over 100 channels
 *   npm run bench -- --connections 2000 --duration 10 --servers holdfast,ws
 *   npm run bench -- scale --connections 100000   # one machine's ceiling: bench/scale.ts
 *
 * Presets (any `holdfast bench` flag given after them overrides them):
 *   table     10,000 clients in 2 client processes, 1 channel, 40 broadcasts/s of 64 bytes, 30 s
 *   channels  10,000 clients in 2 client processes, 100 channels, 1,000 publications/s of 64 bytes, 30 s
 * both ramped at 500 connections/s with a 30 s connect timeout.
 *
 * Prints the table and writes the JSON and a self-contained HTML report to bench/results/ (git
 * ignores them; record the numbers you keep in docs/benchmarks.md with the command).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { formatCompare, renderCompareHtml, resolveBenchConfig, runCompare } from 'holdfast/bench'
import { CliError } from 'holdfast'

/**
 * The table measures fan-out, not connection storms: a ramp every server keeps up with on a busy
 * 2-core machine (a connect costs holdfast about a millisecond of CPU today), and a connect timeout
 * that does not fail clients queued behind the ramp.
 */
const GENTLE_RAMP = ['--ramp', '500', '--connect-timeout', '30']

const PRESETS: Readonly<Record<string, string[]>> = {
  table: ['--connections', '10000', '--workers', '2', '--channels', '1', '--rate', '40', '--size', '64', '--duration', '30', ...GENTLE_RAMP],
  channels: ['--connections', '10000', '--workers', '2', '--channels', '100', '--rate', '1000', '--size', '64', '--duration', '30', ...GENTLE_RAMP],
}

function takePreset(argv: string[]): { preset: string; rest: string[] } {
  const i = argv.indexOf('--preset')
  if (i === -1) return { preset: 'table', rest: argv }
  const preset = argv[i + 1] ?? ''
  if (PRESETS[preset] === undefined) throw new CliError(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got "${preset}"`)
  return { preset, rest: [...argv.slice(0, i), ...argv.slice(i + 2)] }
}

async function main(): Promise<void> {
  const { preset, rest } = takePreset(process.argv.slice(2))
  // Later flags win in node:util parseArgs, so the user's flags override the preset's.
  const cfg = resolveBenchConfig(['--compare', ...(PRESETS[preset] as string[]), ...rest.filter((a) => a !== '--compare')], process.env)
  if (cfg.json !== undefined || cfg.html !== undefined) throw new CliError('run-all writes its own files to bench/results/; drop --json and --html')
  const report = await runCompare(cfg, { stderr: process.stderr })
  const dir = new URL('./results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  const stamp = report.startedAt.replace(/[:.]/g, '-')
  const base = new URL(`compare-${preset}-${stamp}`, dir).pathname
  writeFileSync(`${base}.json`, `${JSON.stringify({ preset, argv: process.argv.slice(2), ...report }, null, 2)}\n`)
  writeFileSync(`${base}.html`, renderCompareHtml(report))
  process.stdout.write(formatCompare(report))
  process.stdout.write(`\nwrote ${base}.json and ${base}.html\n`)
}

if (process.argv[2] === 'scale') {
  // bench/scale.ts reads its own flags (it skips the word "scale") and exits when done.
  await import('./scale.js')
} else {
  main().catch(onError)
}

function onError(err: unknown): void {
  process.stderr.write(`bench/run-all: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(err instanceof CliError ? err.exitCode : 1)
}
