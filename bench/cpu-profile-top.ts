/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. a bench server run with
 * HOLDFAST_BENCH_SERVER_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof") and prints where the time went:
 * self time by function and by file, as shares of the whole profile, and optionally the call
 * chains into one function.
 *
 *   node --import tsx bench/cpu-profile-top.ts FILE.cpuprofile [--top 40] [--callers writeBuffer]
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, callers: { type: 'string' } } })
const file = positionals[0]
if (file === undefined) {
  process.stderr.write('usage: cpu-profile-top.ts FILE.cpuprofile [--top N] [--callers FUNCTION]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const top = Number(values.top)

const selfTime = new Map<number, number>()
profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const total = [...selfTime.values()].reduce((a, b) => a + b, 0)
const shortUrl = (url: string): string => url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(packages|bench|test)\//, '$1/')

const byFunction = new Map<string, number>()
const byFile = new Map<string, number>()
for (const n of profile.nodes) {
  const t = selfTime.get(n.id) ?? 0
  const f = n.callFrame
  const url = shortUrl(f.url)
  const fn = `${f.functionName || '(anonymous)'} ${url}${url === '' ? '' : `:${f.lineNumber + 1}`}`
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + t)
  const where = url === '' ? f.functionName : url
  byFile.set(where, (byFile.get(where) ?? 0) + t)
}

const print = (title: string, m: Map<string, number>): void => {
  process.stdout.write(`--- ${title}\n`)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`)
}
process.stdout.write(`profile: ${(total / 1e6).toFixed(2)} s sampled\n`)
print('self time by function', byFunction)
print('self time by file', byFile)

if (values.callers !== undefined) {
  const parent = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n)
  const chains = new Map<string, number>()
  for (const n of profile.nodes) {
    if (n.callFrame.functionName !== values.callers) continue
    const names: string[] = []
    for (let p = parent.get(n.id), d = 0; p !== undefined && d < 6; p = parent.get(p.id), d++) names.push(`${p.callFrame.functionName || '(anonymous)'}@${shortUrl(p.callFrame.url)}`)
    const k = names.join(' < ')
    chains.set(k, (chains.get(k) ?? 0) + (selfTime.get(n.id) ?? 0))
  }
  print(`call chains into ${values.callers}`, chains)
}
