/**
 * How much `holdfast --version` (or any quick command) loads and how long it takes: the wall time
 * of N runs of the built CLI, and the JavaScript files it reads, counted from the kernel's side
 * (`strace -e openat`), so nothing inside the process changes what is measured.
 *
 *   npm run build && node --import tsx bench/cli-startup.ts                    # 30 runs of dist/bin.js --version
 *   node --import tsx bench/cli-startup.ts --bin /other/checkout/packages/cli/dist/bin.js --runs 30 -- token --help
 *
 * Prints the median and p90 wall time, and the files read by kind (ESM/CommonJS .js, .json, native
 * .node) and by package. Needs strace for the file count (Linux); without it only times are shown.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({
  options: { bin: { type: 'string' }, runs: { type: 'string' } },
  allowPositionals: true,
})
const bin = values.bin ?? fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url))
const runs = Number(values.runs ?? 30)
const args = positionals.length > 0 ? positionals : ['--version']

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

const times: number[] = []
for (let i = 0; i < runs; i++) {
  const t0 = performance.now()
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'ignore' })
  times.push(performance.now() - t0)
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} exited ${r.status}`)
}
times.sort((a, b) => a - b)
process.stdout.write(`holdfast ${args.join(' ')} (${bin})\n`)
process.stdout.write(`wall time over ${runs} runs: median ${quantile(times, 0.5).toFixed(1)} ms, p90 ${quantile(times, 0.9).toFixed(1)} ms\n`)

let strace = true
try {
  execFileSync('strace', ['-V'], { stdio: 'ignore' })
} catch {
  strace = false
}
if (!strace) {
  process.stdout.write('files read: strace not found, not counted\n')
} else {
  const dir = mkdtempSync(join(tmpdir(), 'cli-startup-'))
  const out = join(dir, 'trace')
  execFileSync('strace', ['-f', '-qq', '-e', 'trace=openat', '-o', out, process.execPath, bin, ...args], { stdio: 'ignore' })
  const files = new Set<string>()
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    // openat(AT_FDCWD, "/path/file.js", O_RDONLY|O_CLOEXEC) = 21
    const m = /openat\([^,]+, "([^"]+)", [^)]*\) = \d+$/.exec(line)
    if (m !== null && /\.(m?js|cjs|json|node)$/.test(m[1] as string)) files.add(m[1] as string)
  }
  rmSync(dir, { recursive: true, force: true })
  const byPackage = new Map<string, number>()
  for (const f of files) {
    const nm = f.lastIndexOf('/node_modules/')
    const pkg = nm === -1 ? (f.includes('/packages/') ? `packages/${f.split('/packages/')[1]?.split('/')[0]}` : 'other') : f.slice(nm + 14).split('/').slice(0, f.slice(nm + 14).startsWith('@') ? 2 : 1).join('/')
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + 1)
  }
  const js = [...files].filter((f) => /\.(m?js|cjs)$/.test(f)).length
  process.stdout.write(`files read: ${files.size} (${js} JavaScript, ${files.size - js} .json/.node)\n`)
  const top = [...byPackage].sort((a, b) => b[1] - a[1])
  process.stdout.write(`by package: ${top.map(([p, n]) => `${p} ${n}`).join(', ')}\n`)
}
