/**
 * How many subscribed, heartbeating connections one machine holds (issue #19): holdfast serve
 * (uws and ws transports, `--workers N`) beside raw uWebSockets.js, loaded by a lightweight
 * generator (bench/scale/generator.ts) spread over processes and source addresses.
 *
 *   npm run build     # the servers run from packages/cli/dist: lean processes, not tsx
 *   npm run bench -- scale --connections 100000
 *   node --conditions=source --import tsx bench/scale.ts --connections 100000 \
 *     [--servers holdfast-uws,holdfast-ws,uws] [--engine memory|redis] [--workers N]
 *     [--generators N] [--rate 3000] [--idle 25] [--broadcasts 5] [--max-rss-gib 18]
 *     [--time-limit 600] [--json FILE]
 *
 * For each server in turn: start it with enough worker processes for 20,000 open files each
 * (16,000 connections per worker by default), ramp the generators to the target at `--rate`
 * connections per second (each connection: WebSocket upgrade, `connect`, `subscribe` to one
 * channel), then measure
 *   - connections reached, handshakes per second over the ramp (mean and best 5 s), handshake time;
 *   - server RSS per connection (every server process summed, growth over the idle baseline);
 *   - kernel memory per connection (slab growth and TCP buffer pages, both ends of every loopback
 *     connection);
 *   - heartbeat CPU: server CPU over `--idle` seconds with nothing but pings and pongs (the ping
 *     interval is 25 s: one full round);
 *   - `--broadcasts` publications to every connection, one at a time: delivery latency p50/p99,
 *     time until the last connection has it, lost and duplicated (per connection, by offset);
 *   - the generators' own RSS and CPU per connection, to show they are not what binds.
 * Then kill everything and wait for the sockets to go before the next server.
 *
 * Bounded: a run stops (and says why) when the processes' RSS summed passes `--max-rss-gib`, when
 * a server's ramp passes `--time-limit` seconds, or when the ramp stalls for 45 s. Loopback only.
 * Prints a table and writes bench/results/scale-<time>.json.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import * as hdr from 'hdr-histogram-js'
import { readProcSample } from 'holdfast/bench'
import { track } from './scale/processes.js'
import { bundleChildren, type Bundles } from './scale/bundle.js'
import type { GeneratorConfig, GeneratorProgress, GeneratorReport } from './scale/generator.js'
import { CHANNEL, SERVER_KINDS, startHoldfast, startReference, type RunningServer, type ServerKind } from './scale/servers.js'
import { childrenOf, cpuSplit, loadAverage, readKernel, type KernelSample } from './scale/system.js'
import { RedisServer } from '@holdfast/testkit/support/redis-server'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Connections per server worker: 20,000 open files, less room for the kernel's uneven spread. */
const PER_WORKER = 16_000
/** Connections per generator process (20,000 open files each) and per source address (28,232 ephemeral ports). */
const PER_GENERATOR = 18_000

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== 'scale'),
  options: {
    connections: { type: 'string', default: '10000' },
    servers: { type: 'string', default: SERVER_KINDS.join(',') },
    engine: { type: 'string', default: 'memory' },
    workers: { type: 'string' },
    generators: { type: 'string' },
    rate: { type: 'string', default: '3000' },
    idle: { type: 'string', default: '25' },
    broadcasts: { type: 'string', default: '5' },
    'max-rss-gib': { type: 'string', default: '18' },
    'time-limit': { type: 'string', default: '600' },
    json: { type: 'string' },
  },
  strict: true,
})

function positive(name: keyof typeof values, fallback?: number): number {
  const raw = values[name]
  if (raw === undefined && fallback !== undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${String(raw)}`)
  return n
}

const N = Math.round(positive('connections'))
const SERVERS = (values.servers as string).split(',').map((s) => s.trim()) as ServerKind[]
for (const s of SERVERS) if (!SERVER_KINDS.includes(s)) throw new Error(`--servers: unknown "${s}" (${SERVER_KINDS.join(', ')})`)
const ENGINE = values.engine
if (ENGINE !== 'memory' && ENGINE !== 'redis') throw new Error(`--engine must be memory or redis, got ${ENGINE}`)
const WORKERS = Math.round(positive('workers', Math.ceil(N / PER_WORKER)))
const GENERATORS = Math.round(positive('generators', Math.ceil(N / PER_GENERATOR)))
if (N / GENERATORS > 19_000) throw new Error(`--generators ${GENERATORS}: ${Math.ceil(N / GENERATORS)} connections per process is past 19,000 (20,000 open files)`)
const RATE = positive('rate')
const IDLE_S = positive('idle')
const BROADCASTS = Math.round(positive('broadcasts'))
const MAX_RSS = positive('max-rss-gib') * 2 ** 30
const TIME_LIMIT_MS = positive('time-limit') * 1000
/** uWS pings after this much silence (a multiple of 4): about holdfast's 25 s ping interval. */
const REFERENCE_IDLE_TIMEOUT_S = 28

const log = (line: string): void => void process.stderr.write(`[scale] ${line}\n`)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const mono = (): number => performance.now()

class Stop extends Error {}

interface Percentiles {
  p50: number
  p99: number
  max: number
}

export interface ScaleResult {
  name: ServerKind
  engine: string
  target: number
  serverWorkers: number
  generatorProcesses: number
  reached: number
  stoppedBy: string | null
  failures: Record<string, number>
  closedAfterReady: Record<string, number>
  rampSeconds: number
  handshakesPerSecond: { mean: number; best5s: number }
  handshakeMs: Percentiles | null
  server: {
    rssBaselineBytes: number
    rssConnectedBytes: number
    rssPerConnectionBytes: number | null
    rssSlopePerConnectionBytes: number | null
    cpuMicrosPerConnect: number | null
    kernelCpuMicrosPerConnect: number | null
    heartbeatCpuPercent: number
    pingsAnsweredPerSecond: number
    log: RunningServer['logged']
  } & Record<string, unknown>
  kernel: { slabPerConnectionBytes: number | null; tcpBufferBytes: number; tcpInUse: number; timeWaitBefore: number }
  broadcast: {
    published: number
    publishErrors: string[]
    owed: number
    delivered: number
    lost: number
    duplicated: number
    latencyMs: Percentiles | null
    toAllMs: number[]
  }
  generators: { rssPerConnectionBytes: number | null; cpuMicrosPerConnect: number | null; kernelCpuMicrosPerConnect: number | null; heartbeatCpuPercent: number }
  loadAverage: { before: number; after: number }
}

function percentiles(h: hdr.Histogram): Percentiles | null {
  if (h.totalCount === 0) return null
  const ms = (us: number): number => Math.round(us) / 1000
  return { p50: ms(h.getValueAtPercentile(50)), p99: ms(h.getValueAtPercentile(99)), max: ms(h.maxValue) }
}

function sum(pids: number[], pick: 'rssBytes' | 'cpuUs'): number {
  let total = 0
  for (const pid of pids) total += readProcSample(pid)?.[pick] ?? 0
  return total
}

/** Source addresses: generator g of run r uses 127.(r+1).(g / 250).(g % 250 + 1), never reused in a bench. */
function sourceIp(run: number, g: number): string {
  return `127.${run + 1}.${Math.floor(g / 250)}.${(g % 250) + 1}`
}

interface Gen {
  proc: ChildProcess
  last: GeneratorProgress | undefined
  report: GeneratorReport | undefined
}

async function runOne(kind: ServerKind, run: number, bundles: Bundles, dir: string): Promise<ScaleResult> {
  const startedAt = mono()
  const loadBefore = loadAverage()
  const kernelBefore = readKernel()
  let redis: RedisServer | undefined
  let server: RunningServer | undefined
  const gens: Gen[] = []
  let stoppedBy: string | null = null
  try {
    if (kind !== 'uws' && ENGINE === 'redis') redis = await RedisServer.start()
    const redisPid = redis === undefined ? undefined : childrenOf(process.pid, (_c, comm) => comm === 'redis-server')[0]
    server =
      kind === 'uws'
        ? await startReference({ root: ROOT, bundle: bundles.reference, workers: WORKERS, idleTimeout: REFERENCE_IDLE_TIMEOUT_S, track })
        : await startHoldfast({ root: ROOT, dir, transport: kind === 'holdfast-uws' ? 'uws' : 'ws', workers: WORKERS, redisUrl: redis?.url, redisPid, track })
    const srv = server
    log(`${kind}: ${WORKERS} server processes on ${srv.wsHost}:${srv.wsPort} (pids ${srv.pids.join(',')}); ${GENERATORS} generators, ${N} connections at ${RATE}/s`)
    await sleep(3000)
    const rssBaseline = sum(srv.pids, 'rssBytes')
    const cpuBeforeRamp = cpuSplit(srv.pids)

    // Generators: an even share each, one source address each.
    for (let g = 0; g < GENERATORS; g++) {
      const share = Math.floor(N / GENERATORS) + (g < N % GENERATORS ? 1 : 0)
      const cfg: GeneratorConfig = {
        host: srv.wsHost,
        port: srv.wsPort,
        path: '/ws',
        protocol: srv.protocol,
        channel: CHANNEL,
        connections: share,
        rate: RATE / GENERATORS,
        // Few handshakes in flight: a starved server's accept queue (512) overflows otherwise, and
        // the kernel's SYN cookies then leave connects hanging until their timeout.
        maxPending: Math.max(25, Math.ceil(400 / GENERATORS)),
        sourceIps: [sourceIp(run, g)],
        connectTimeoutMs: 20_000,
      }
      const proc = track(fork(bundles.generator, [], { cwd: ROOT, execArgv: [], env: { ...process.env, HOLDFAST_SCALE_GENERATOR: JSON.stringify(cfg) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
      const gen: Gen = { proc, last: undefined, report: undefined }
      proc.on('message', (m: GeneratorProgress | GeneratorReport) => {
        if (m.type === 'progress') gen.last = m
        else gen.report = m
      })
      gens.push(gen)
    }
    const genPids = (): number[] => gens.map((g) => g.proc.pid as number)
    const total = (key: keyof Omit<GeneratorProgress, 'type'>): number => gens.reduce((n, g) => n + (g.last?.[key] ?? 0), 0)
    const guard = (ramping: boolean): void => {
      const rss = sum([...srv.pids, ...genPids()], 'rssBytes')
      if (rss > MAX_RSS) throw new Stop(`RSS of server and generators ${(rss / 2 ** 30).toFixed(1)} GiB passed --max-rss-gib`)
      // Past the time limit the ramp stops; what was reached is still measured (briefly).
      if (ramping && mono() - startedAt > TIME_LIMIT_MS) throw new Stop('--time-limit reached')
      if (gens.some((g) => g.proc.exitCode !== null)) throw new Stop('a generator process exited')
      if (srv.pids.some((pid) => readProcSample(pid) === undefined)) throw new Stop('a server process exited')
    }

    // Ramp.
    const rampStart = mono()
    const readyAt: Array<[number, number]> = []
    /** (open connections, server RSS) through the ramp: the slope is the cost of a connection. */
    const rssAt: Array<[number, number]> = []
    let lastReady = 0
    let lastChange = mono()
    let rampEnd = rampStart
    try {
      for (;;) {
        await sleep(1000)
        guard(true)
        const ready = total('ready')
        const settled = total('ready') + total('failed') + total('closed')
        readyAt.push([mono(), ready])
        rssAt.push([ready - total('closed'), sum(srv.pids, 'rssBytes')])
        if (ready !== lastReady) {
          lastReady = ready
          lastChange = mono()
          rampEnd = mono()
        }
        if (readyAt.length % 5 === 0) {
          const rss = sum(srv.pids, 'rssBytes')
          log(`${kind}: ${ready} ready, ${total('pending')} connecting, ${total('failed')} failed, ${total('closed')} closed; server RSS ${(rss / 2 ** 20).toFixed(0)} MiB; load ${loadAverage()}`)
        }
        if (total('opened') >= N && settled >= N) break
        if (mono() - lastChange > 45_000) throw new Stop(`the ramp stalled at ${ready} for 45 s`)
      }
    } catch (err) {
      if (!(err instanceof Stop)) throw err
      stoppedBy = err.message
      log(`${kind}: stopped: ${stoppedBy}`)
    }
    const reached = total('ready') - total('closed')
    const rampSeconds = (rampEnd - rampStart) / 1000
    let best5s = 0
    for (let i = 5; i < readyAt.length; i++) {
      const [t1, r1] = readyAt[i] as [number, number]
      const [t0, r0] = readyAt[i - 5] as [number, number]
      best5s = Math.max(best5s, ((r1 - r0) * 1000) / (t1 - t0))
    }
    const cpuAfterRamp = cpuSplit(srv.pids)
    const genCpuAfterRamp = cpuSplit(genPids())
    await sleep(2000)
    const rssConnected = sum(srv.pids, 'rssBytes')
    // Start-up garbage still in the idle baseline makes (connected - idle) / n read low; the
    // slope from the first sample past a fifth of the connections to the end does not see it.
    const from = rssAt.find(([c]) => c >= reached / 5)
    const rssSlope = from !== undefined && reached - from[0] > reached / 2 ? Math.round((rssConnected - from[1]) / (reached - from[0])) : null
    const genRss = sum(genPids(), 'rssBytes') - gens.reduce((n, g) => n + (g.last?.rssBaselineBytes ?? 0), 0)
    const kernelConnected: KernelSample = readKernel()

    // Heartbeats only.
    let heartbeatCpu = 0
    let genHeartbeatCpu = 0
    let pingsPerSecond = 0
    if (stoppedBy === null || !stoppedBy.startsWith('RSS')) {
      log(`${kind}: ${reached} connected; ${IDLE_S} s of heartbeats only`)
      const c0 = sum(srv.pids, 'cpuUs')
      const g0 = sum(genPids(), 'cpuUs')
      const p0 = total('pings')
      const t0 = mono()
      await sleep(IDLE_S * 1000)
      const seconds = (mono() - t0) / 1000
      heartbeatCpu = (sum(srv.pids, 'cpuUs') - c0) / 1e4 / seconds
      genHeartbeatCpu = (sum(genPids(), 'cpuUs') - g0) / 1e4 / seconds
      pingsPerSecond = (total('pings') - p0) / seconds
    }

    // Broadcasts to everyone, one at a time.
    let lastOffset = 0
    let published = 0
    const publishErrors: string[] = []
    const open = reached
    if (reached > 0 && stoppedBy?.startsWith('RSS') !== true) {
      for (let n = 0; n < BROADCASTS; n++) {
        guard(false)
        const before = total('delivered')
        try {
          lastOffset = await srv.publish(n)
        } catch (err) {
          // A refused publication is owed to nobody; say so and go on to the next.
          publishErrors.push(err instanceof Error ? err.message : String(err))
          continue
        }
        published++
        const deadline = mono() + 30_000
        while (total('delivered') - before < total('ready') - total('closed') && mono() < deadline) await sleep(250)
        await sleep(1000)
      }
    }
    // Final reports.
    for (const g of gens) g.proc.send({ type: 'report', lastOffset })
    const reportDeadline = mono() + 30_000
    while (gens.some((g) => g.report === undefined) && mono() < reportDeadline) await sleep(100)
    const reports = gens.map((g) => g.report).filter((r): r is GeneratorReport => r !== undefined)
    const latency = hdr.build({ numberOfSignificantValueDigits: 3, autoResize: true })
    const handshake = hdr.build({ numberOfSignificantValueDigits: 3, autoResize: true })
    const failures: Record<string, number> = {}
    const closedAfterReady: Record<string, number> = {}
    const toAll = new Map<number, number>()
    for (const r of reports) {
      latency.add(hdr.decodeFromCompressedBase64(r.latency, 32, false))
      handshake.add(hdr.decodeFromCompressedBase64(r.handshake, 32, false))
      for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
      for (const [k, v] of Object.entries(r.closedAfterReady)) closedAfterReady[k] = (closedAfterReady[k] ?? 0) + v
      for (const p of r.perPublication) toAll.set(p.n, Math.max(toAll.get(p.n) ?? 0, p.lastUs))
    }
    const sumOf = (k: 'delivered' | 'lost' | 'duplicated'): number => reports.reduce((n, r) => n + r[k], 0)
    const serverCpuRamp = cpuAfterRamp.totalUs - cpuBeforeRamp.totalUs
    const serverKernelRamp = cpuAfterRamp.systemUs - cpuBeforeRamp.systemUs
    const perReady = (us: number): number | null => (total('ready') > 0 ? Math.round(us / total('ready')) : null)
    const result: ScaleResult = {
      name: kind,
      engine: kind === 'uws' ? '-' : ENGINE,
      target: N,
      serverWorkers: WORKERS,
      generatorProcesses: GENERATORS,
      reached,
      stoppedBy,
      failures,
      closedAfterReady,
      rampSeconds: Math.round(rampSeconds * 10) / 10,
      handshakesPerSecond: { mean: Math.round(total('ready') / Math.max(rampSeconds, 1)), best5s: Math.round(best5s) },
      handshakeMs: percentiles(handshake),
      server: {
        rssBaselineBytes: rssBaseline,
        rssConnectedBytes: rssConnected,
        rssPerConnectionBytes: reached > 0 ? Math.round((rssConnected - rssBaseline) / reached) : null,
        rssSlopePerConnectionBytes: rssSlope,
        cpuMicrosPerConnect: perReady(serverCpuRamp),
        kernelCpuMicrosPerConnect: perReady(serverKernelRamp),
        heartbeatCpuPercent: Math.round(heartbeatCpu * 10) / 10,
        pingsAnsweredPerSecond: Math.round(pingsPerSecond),
        log: srv.logged,
      },
      kernel: {
        slabPerConnectionBytes: reached > 0 ? Math.round((kernelConnected.slabBytes - kernelBefore.slabBytes) / reached) : null,
        tcpBufferBytes: kernelConnected.tcpBufferBytes,
        tcpInUse: kernelConnected.tcpInUse,
        timeWaitBefore: kernelBefore.tcpTimeWait,
      },
      broadcast: {
        published,
        publishErrors,
        owed: published * open,
        delivered: sumOf('delivered'),
        lost: sumOf('lost'),
        duplicated: sumOf('duplicated'),
        latencyMs: percentiles(latency),
        toAllMs: [...toAll.entries()].sort((a, b) => a[0] - b[0]).map(([, us]) => Math.round(us / 1000)),
      },
      generators: {
        rssPerConnectionBytes: reached > 0 ? Math.round(genRss / reached) : null,
        cpuMicrosPerConnect: perReady(genCpuAfterRamp.totalUs),
        kernelCpuMicrosPerConnect: perReady(genCpuAfterRamp.systemUs),
        heartbeatCpuPercent: Math.round(genHeartbeatCpu * 10) / 10,
      },
      loadAverage: { before: loadBefore, after: loadAverage() },
    }
    return result
  } finally {
    for (const g of gens) if (g.proc.exitCode === null) g.proc.kill('SIGKILL')
    await server?.stop()
    await redis?.close()
    // The next server starts once this one's sockets are gone (bounded).
    const deadline = mono() + 60_000
    while (readKernel().tcpInUse > kernelBefore.tcpInUse + 1000 && mono() < deadline) await sleep(500)
  }
}

const kib = (b: number | null): string => (b === null ? '-' : `${(b / 1024).toFixed(2)} KiB`)
const int = (n: number): string => Math.round(n).toLocaleString('en-US')

function table(results: ScaleResult[]): string {
  const rows: Array<[string, (r: ScaleResult) => string]> = [
    ['connections reached / target', (r) => `${int(r.reached)} / ${int(r.target)}${r.stoppedBy === null ? '' : ` (stopped: ${r.stoppedBy})`}`],
    ['server processes / generators', (r) => `${r.serverWorkers} / ${r.generatorProcesses}`],
    ['connect failures', (r) => (Object.keys(r.failures).length === 0 ? 'none' : Object.entries(r.failures).map(([k, n]) => `${int(n)} ${k}`).join(', '))],
    ['closed after subscribing', (r) => (Object.keys(r.closedAfterReady).length === 0 ? 'none' : Object.entries(r.closedAfterReady).map(([k, n]) => `${int(n)} ${k}`).join(', '))],
    ['handshakes/s (mean, best 5 s)', (r) => `${int(r.handshakesPerSecond.mean)}, ${int(r.handshakesPerSecond.best5s)} (ramp ${r.rampSeconds} s)`],
    ['handshake p50 / p99', (r) => (r.handshakeMs === null ? '-' : `${r.handshakeMs.p50} / ${r.handshakeMs.p99} ms`)],
    ['server CPU per connect', (r) => (r.server.cpuMicrosPerConnect === null ? '-' : `${int(r.server.cpuMicrosPerConnect)} µs (kernel ${int(r.server.kernelCpuMicrosPerConnect ?? 0)})`)],
    ['server RSS idle → connected', (r) => `${int(r.server.rssBaselineBytes / 2 ** 20)} → ${int(r.server.rssConnectedBytes / 2 ** 20)} MiB`],
    ['server RSS per connection (growth / n; slope over the ramp)', (r) => `${kib(r.server.rssPerConnectionBytes)}; ${kib(r.server.rssSlopePerConnectionBytes)}`],
    ['kernel slab per connection (both ends)', (r) => kib(r.kernel.slabPerConnectionBytes)],
    ['TCP buffer pages (connected)', (r) => `${int(r.kernel.tcpBufferBytes / 2 ** 20)} MiB`],
    ['heartbeat CPU (server, idle)', (r) => `${r.server.heartbeatCpuPercent}% of a core (${int(r.server.pingsAnsweredPerSecond)} pings/s)`],
    ['broadcasts: delivered / owed', (r) => `${int(r.broadcast.delivered)} / ${int(r.broadcast.owed)} (${r.broadcast.published} publications${r.broadcast.publishErrors.length > 0 ? `; ${r.broadcast.publishErrors.length} refused: ${r.broadcast.publishErrors[0]}` : ''})`],
    ['lost / duplicated', (r) => `${int(r.broadcast.lost)} / ${int(r.broadcast.duplicated)}`],
    ['delivery p50 / p99 / max', (r) => (r.broadcast.latencyMs === null ? '-' : `${r.broadcast.latencyMs.p50} / ${r.broadcast.latencyMs.p99} / ${r.broadcast.latencyMs.max} ms`)],
    ['time to reach all, per broadcast', (r) => r.broadcast.toAllMs.map((ms) => `${int(ms)}`).join(', ') + ' ms'],
    ['generators: RSS per conn, CPU per connect', (r) => `${kib(r.generators.rssPerConnectionBytes)}, ${r.generators.cpuMicrosPerConnect ?? '-'} µs (kernel ${r.generators.kernelCpuMicrosPerConnect ?? '-'})`],
    ['generators: heartbeat CPU', (r) => `${r.generators.heartbeatCpuPercent}% of a core`],
    ['server log', (r) => `${r.server.log.warn} warnings, ${r.server.log.error} errors`],
    ['load average before → after', (r) => `${r.loadAverage.before} → ${r.loadAverage.after}`],
  ]
  const head = `| figure | ${results.map((r) => `${r.name}${r.engine === 'redis' ? ' (redis)' : ''}`).join(' | ')} |`
  const sep = `| --- |${results.map(() => ' --- |').join('')}`
  return [head, sep, ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(' | ')} |`)].join('\n')
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'packages/cli/dist/bin.js'))) throw new Error('packages/cli/dist is missing: run `npm run build` first')
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-scale-'))
  const results: ScaleResult[] = []
  const errors: Array<{ server: ServerKind; error: string }> = []
  const startedAt = new Date().toISOString()
  const out = values.json ?? join(ROOT, 'bench/results', `scale-${startedAt.replace(/[:.]/g, '-')}.json`)
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  // Written after every server, so a run cut short keeps what it measured.
  const save = (): void => writeFileSync(out, `${JSON.stringify({ argv: process.argv.slice(2), startedAt, results, errors }, null, 2)}\n`)
  try {
    const bundles = await bundleChildren(ROOT, dir)
    for (const [i, kind] of SERVERS.entries()) {
      try {
        const r = await runOne(kind, i, bundles, dir)
        results.push(r)
        process.stdout.write(`\n${table([r])}\n`)
      } catch (err) {
        errors.push({ server: kind, error: err instanceof Error ? err.message : String(err) })
        log(`${kind} failed: ${errors.at(-1)?.error}`)
      }
      save()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (results.length > 0) process.stdout.write(`\n${table(results)}\n`)
  process.stdout.write(`\nwrote ${out}\n`)
  if (errors.length > 0) throw new Error(`${errors.length} of ${SERVERS.length} servers failed`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
