/**
 * `npm run test:chaos`: the reliability suite. Runs test/chaos/*.chaos.ts (or the files given)
 * with node's test runner, one file at a time — the scenarios measure detection times and
 * latencies on a 2-core machine, so they must not compete with each other — under an overall
 * deadline, and prints a summary of every scenario's `result` line and the total time.
 *
 * The files are named *.chaos.ts so that `npm test` (scripts/run-tests.mjs, which collects
 * *.test.ts) never picks them up: they take minutes, and CI runs them once, on Node 20.
 *
 *   node --import tsx test/chaos/run.ts [file.chaos.ts ...] [--json FILE]
 *
 * Exit code: the test runner's (non-zero when any scenario failed), 1 on the deadline.
 */
import { spawn } from 'node:child_process'
import { readdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const HERE = fileURLToPath(new URL('.', import.meta.url))
/** The suite's budget is 6 minutes; past 9 something hangs, and CI must hear about it. */
const DEADLINE_MS = Number(process.env['HOLDFAST_CHAOS_DEADLINE_MS'] ?? 9 * 60_000)

const args = process.argv.slice(2)
const jsonAt = args.indexOf('--json')
const jsonFile = jsonAt === -1 ? undefined : args[jsonAt + 1]
let files = args.filter((a, i) => a.endsWith('.chaos.ts') && (jsonAt === -1 || i !== jsonAt + 1))
if (files.length === 0) {
  files = readdirSync(HERE)
    .filter((f) => f.endsWith('.chaos.ts'))
    .sort()
    .map((f) => relative(ROOT, join(HERE, f)))
}

const started = performance.now()
const child = spawn(
  process.execPath,
  ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=240000', '--test-reporter=spec', ...files],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], detached: true },
)

// Pass the report through, keeping the scenarios' `result` lines for the summary.
const results: Array<{ name: string; numbers: unknown }> = []
let partial = ''
child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
  process.stdout.write(chunk)
  partial += chunk
  const lines = partial.split('\n')
  partial = lines.pop() ?? ''
  for (const line of lines) {
    const m = /\bresult (\S+) (\{.*\})\s*$/.exec(line)
    if (m === null) continue
    try {
      results.push({ name: m[1] as string, numbers: JSON.parse(m[2] as string) as unknown })
    } catch {
      // A diagnostic that merely looks like a result line.
    }
  }
})

// The whole process group: the test runner and every node, proxy and client process under it
// (its own group, so that nothing of a killed run is left behind).
function killAll(): void {
  try {
    process.kill(-(child.pid as number), 'SIGKILL')
  } catch {
    child.kill('SIGKILL')
  }
}
const deadline = setTimeout(() => {
  console.error(`\n!! test:chaos did not finish within ${DEADLINE_MS / 1000} s: killing it`)
  killAll()
}, DEADLINE_MS)
// Being a group of its own, the run does not hear a terminal's Ctrl-C: pass it on.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, killAll)

child.on('exit', (code, signal) => {
  clearTimeout(deadline)
  const seconds = Math.round((performance.now() - started) / 100) / 10
  console.log(`\n== reliability suite: ${files.length} files in ${seconds} s (${signal ?? `exit ${code}`})`)
  for (const r of results) console.log(`   ${r.name.padEnd(28)} ${JSON.stringify(r.numbers)}`)
  if (jsonFile !== undefined) writeFileSync(jsonFile, `${JSON.stringify({ seconds, node: process.version, results }, null, 2)}\n`)
  process.exit(signal !== null ? 1 : (code ?? 1))
})
