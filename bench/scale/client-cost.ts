/**
 * What one client connection costs the load generator: the scale bench's bare-socket generator
 * (generator.ts) beside the same load on the `ws` client library (ws-client.ts), each in one
 * plain-node process holding N connections to a raw uWebSockets.js server (the cheapest server,
 * so the client side is what is measured). Reports RSS growth per connection and CPU per connect.
 *
 *   node --conditions=source --import tsx bench/scale/client-cost.ts [--connections 10000] [--rate 2000]
 */
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleChildren } from './bundle.js'
import type { GeneratorConfig, GeneratorProgress } from './generator.js'
import { track } from './processes.js'
import { CHANNEL, startReference } from './servers.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const { values } = parseArgs({ options: { connections: { type: 'string', default: '10000' }, rate: { type: 'string', default: '2000' } } })
const N = Number(values.connections)
const RATE = Number(values.rate)
if (!(N > 0 && N <= 19_000) || !(RATE > 0)) throw new Error('--connections must be 1-19000 and --rate positive')

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function measure(bundle: string, port: number, ip: string): Promise<GeneratorProgress & { seconds: number }> {
  const cfg: GeneratorConfig = { host: '127.0.0.1', port, path: '/ws', protocol: undefined, channel: CHANNEL, connections: N, rate: RATE, maxPending: 500, sourceIps: [ip], connectTimeoutMs: 60_000 }
  const proc = track(fork(bundle, [], { cwd: ROOT, execArgv: [], env: { ...process.env, HOLDFAST_SCALE_GENERATOR: JSON.stringify(cfg) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  let last: GeneratorProgress | undefined
  proc.on('message', (m: GeneratorProgress) => {
    if (m.type === 'progress') last = m
  })
  const t0 = performance.now()
  const deadline = t0 + 120_000
  while ((last === undefined || last.ready + last.failed < N) && performance.now() < deadline) await sleep(250)
  const seconds = (performance.now() - t0) / 1000
  // Let the ramp's garbage go, then read what the connections hold.
  await sleep(5000)
  const p = last as GeneratorProgress
  await sleep(1100)
  const settled = last as GeneratorProgress
  proc.kill('SIGKILL')
  return { ...settled, cpuUs: p.cpuUs, cpuSystemUs: p.cpuSystemUs, seconds }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-client-cost-'))
  try {
    const b = await bundleChildren(ROOT, dir)
    const server = await startReference({ root: ROOT, bundle: b.reference, workers: 1, idleTimeout: 60, track })
    const rows: string[] = []
    for (const [name, bundle, ip] of [
      ['bare net.Socket (generator.ts)', b.generator, '127.9.0.1'],
      ['ws 8 client, perMessageDeflate off (ws-client.ts)', b.wsClient, '127.9.0.2'],
    ] as const) {
      const r = await measure(bundle, server.wsPort, ip)
      const kib = ((r.rssBytes - r.rssBaselineBytes) / r.ready / 1024).toFixed(2)
      rows.push(`| ${name} | ${r.ready} / ${N} | ${kib} KiB | ${Math.round(r.cpuUs / r.ready)} µs (kernel ${Math.round(r.cpuSystemUs / r.ready)} µs) | ${(r.rssBaselineBytes / 2 ** 20).toFixed(1)} MiB |`)
      await sleep(2000)
    }
    await server.stop()
    process.stdout.write(['| client | ready | RSS growth per connection | CPU per connect | process RSS before connecting |', '| --- | --- | --- | --- | --- |', ...rows].join('\n') + '\n')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`client-cost: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  },
)
