/**
 * Max connections with `holdfast serve --workers 2` (issue #8): 36,000 concurrent connections on
 * this machine (20,000 open files per process), each receiving one broadcast per second, with the
 * delivery latency and the memory and CPU of every server process.
 *
 * It starts a real `holdfast serve --workers 2` (the CLI, from source) with its admission limits
 * lifted for the run through a config file (per-IP connection cap and connect rate, node cap),
 * finds the primary's worker processes, and runs `holdfast bench --url ... --server-pid
 * PRIMARY,W1,W2` against it: client processes each holding well under 20,000 sockets, from source
 * addresses 127.0.0.2-5 (about 9,000 connections per address, far from its 28,000 ephemeral
 * ports), every connection subscribed to one channel, one publication per second stamped with its
 * send time. Besides the bench's report it samples each server process's open files, and counts
 * the warnings and errors the server logged.
 *
 *   flock /tmp/holdfast-bench.lock node --conditions=source --import tsx bench/max-connections.ts
 *        [--connections 36000] [--client-processes 4] [--source-ips 127.0.0.2-5] [--ramp 500]
 *        [--duration 60] [--server-workers 2] [--engine memory|redis] [--json FILE]
 *
 * With `--engine redis` a redis-server is started on a free port for the run. Bounded: the bench
 * has a hard timeout derived from the scenario (ramp at half speed + duration + drain + 2 min);
 * every process started here is killed when the script ends, however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { BenchReport } from 'holdfast/bench'
import { RedisServer } from '@holdfast/testkit/support/redis-server'
import { countServerLog, track, type ServerLog } from './scale/processes.js'
import { childrenOf } from './scale/system.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = ['--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts']

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '36000' },
    'client-processes': { type: 'string', default: '4' },
    'source-ips': { type: 'string', default: '127.0.0.2-5' },
    ramp: { type: 'string', default: '500' },
    duration: { type: 'string', default: '60' },
    'server-workers': { type: 'string', default: '2' },
    engine: { type: 'string', default: 'memory' },
    json: { type: 'string' },
  },
  strict: true,
})

function positive(name: keyof typeof values): number {
  const n = Number(values[name])
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${String(values[name])}`)
  return n
}

const CONNECTIONS = positive('connections')
const CLIENT_PROCESSES = positive('client-processes')
const RAMP = positive('ramp')
const DURATION_S = positive('duration')
const SERVER_WORKERS = positive('server-workers')
const ENGINE = values.engine
if (ENGINE !== 'memory' && ENGINE !== 'redis') throw new Error(`--engine must be memory or redis, got ${ENGINE}`)
/** Ramp at half the asked rate, the publishing, the drain, start-up and the checks. */
const TIMEOUT_S = Math.ceil((2 * CONNECTIONS) / RAMP + DURATION_S + 120)
/** Open files are sampled this often during the run (a directory listing of up to ~18,000 entries). */
const FD_SAMPLE_MS = 5000

const log = (line: string): void => void process.stderr.write(`[max-connections] ${line}\n`)

/** The processes whose parent is `pid` and that run node (the cluster workers; not tsx's esbuild service). */
const nodeChildren = (pid: number): number[] => childrenOf(pid, (cmdline) => cmdline.includes('bin.ts'))

function openFiles(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

interface Server {
  proc: ChildProcess
  url: string
  /** Warnings (level 40) and errors (50+) in the server's JSON log, and the first few of them. */
  logged: ServerLog
}

function startServer(configFile: string, redisUrl: string | undefined): Promise<Server> {
  const args = [...CLI, 'serve', '--port', '0', '--workers', String(SERVER_WORKERS), '--config', configFile, '--log-level', 'warn', '--drain-ms', '0']
  if (redisUrl !== undefined) args.push('--engine', 'redis', '--redis-url', redisUrl, '--session-secret', 'max-connections-session-secret-0123456789')
  // HOLDFAST_* from the caller's shell must not change the run behind its back.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOLDFAST_')))
  const proc = track(spawn(process.execPath, args, { cwd: ROOT, env: { ...env, NODE_ENV: 'development' }, stdio: ['ignore', 'pipe', 'pipe'] }))
  const logged: ServerLog = { warn: 0, error: 0, samples: [] }
  const onLog = countServerLog(logged)
  proc.stderr?.on('data', onLog)
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`the server did not start within 60 s: ${out}`)), 60_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      onLog(d)
      const m = /holdfast listening on \S+ \((ws:\/\/\S+)\)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ proc, url: m[1] as string, logged })
      }
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the server exited (code ${code}) before listening: ${out}`))
    })
  })
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGTERM')
  const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(killer)
}

function runBench(url: string, pids: number[], jsonFile: string): Promise<number | null> {
  const args = [...CLI, 'bench', '--url', url, '--server-pid', pids.join(','), '--connections', String(CONNECTIONS), '--workers', String(CLIENT_PROCESSES)]
  args.push('--source-ips', values['source-ips'] as string, '--rate', '1', '--channels', '1', '--duration', String(DURATION_S), '--ramp', String(RAMP))
  // A handshake queued behind thousands of others on a 2-core machine can take many seconds.
  args.push('--connect-timeout', '60', '--timeout', String(TIMEOUT_S), '--json', jsonFile)
  const proc = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] }))
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)))
}

const mib = (b: number): string => (b / 1048576).toFixed(1)
const int = (n: number): string => Math.round(n).toLocaleString('en-US')

function table(r: BenchReport, roles: string[], maxFds: number[], serverLog: Server['logged']): string {
  const c = r.connect
  const d = r.delivery
  const sv = r.server
  const rows: Array<[string, string]> = [
    ['connections subscribed', `${int(c.connected)} / ${int(c.attempted)}`],
    ['connect failures', Object.keys(c.failures).length === 0 ? 'none' : Object.entries(c.failures).map(([k, n]) => `${int(n)} × ${k}`).join(', ')],
    ['closed by the server after subscribing', Object.keys(c.disconnectedDuringRun).length === 0 ? 'none' : JSON.stringify(c.disconnectedDuringRun)],
    ['time to connect all', `${c.rampSeconds ?? '-'} s (${int(c.perSecond ?? 0)}/s; asked ${RAMP}/s)`],
    ['handshake p50 / p99 / max', c.handshakeMs === null ? '-' : `${c.handshakeMs.p50} / ${c.handshakeMs.p99} / ${c.handshakeMs.max} ms`],
    ['broadcasts published', int(d.published)],
    ['deliveries', `${int(d.delivered)} of ${int(d.expected)} owed`],
    ['lost / duplicated / out of order', `${int(d.lost)} / ${int(d.duplicated)} / ${int(d.outOfOrder)}${d.inFlightAtEnd > 0 ? ` (in flight at the end ${int(d.inFlightAtEnd)})` : ''}`],
    ['delivery latency p50 / p99 / max', d.latencyMs === null ? '-' : `${d.latencyMs.p50} / ${d.latencyMs.p99} / ${d.latencyMs.max} ms`],
  ]
  if (sv !== null) {
    rows.push(['server CPU while publishing (all processes)', `${sv.cpuPercent}% of a core`])
    rows.push(['server CPU per connect (ramp)', sv.cpuMicrosPerConnect === null ? '-' : `${sv.cpuMicrosPerConnect} µs`])
    rows.push(['server RSS, all processes', `${mib(sv.rssBaselineBytes)} MiB idle → ${mib(sv.rssAfterRampBytes)} MiB connected (peak ${mib(sv.rssPeakBytes)} MiB)`])
    rows.push(['RSS per connection', sv.rssPerConnectionBytes === null ? '-' : `${(sv.rssPerConnectionBytes / 1024).toFixed(2)} KiB`])
    sv.processes.forEach((p, i) => {
      rows.push([
        `${roles[i] ?? 'process'} (pid ${p.pid})`,
        `RSS ${mib(p.rssBaselineBytes)} → ${mib(p.rssAfterRampBytes)} MiB (peak ${mib(p.rssPeakBytes)}); CPU ${p.cpuPercent}%; open files ≤ ${int(maxFds[i] ?? 0)}`,
      ])
    })
  }
  rows.push(['client processes CPU while publishing', `${r.clients.cpuPercent}% (${r.clients.processes} processes)`])
  rows.push(['server log', `${serverLog.warn} warnings, ${serverLog.error} errors`])
  return ['| figure | value |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n')
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-maxconn-'))
  let redis: RedisServer | undefined
  let server: Server | undefined
  try {
    // Per worker process: every connection could land on one worker, and the whole ramp comes
    // from a handful of source addresses, so the per-IP caps (1,000 connections, 100/s by
    // default) would refuse all but a few thousand.
    const config = {
      maxConnections: CONNECTIONS + 1000,
      maxConnectionsPerIp: CONNECTIONS + 1000,
      connectRatePerIp: { perSecond: RAMP * 4, burst: RAMP * 4 },
    }
    const configFile = join(dir, 'limits.json')
    writeFileSync(configFile, JSON.stringify(config))
    if (ENGINE === 'redis') {
      redis = await RedisServer.start()
      log(`redis-server on ${redis.url}`)
    }
    server = await startServer(configFile, redis?.url)
    const primary = server.proc.pid as number
    const workers = nodeChildren(primary)
    if (workers.length !== SERVER_WORKERS) throw new Error(`expected ${SERVER_WORKERS} worker processes under pid ${primary}, found ${workers.length}`)
    const pids = [primary, ...workers]
    const roles = ['primary', ...workers.map((_, i) => `worker ${i + 1}`)]
    log(`holdfast serve --workers ${SERVER_WORKERS} (engine ${ENGINE}) at ${server.url}: primary ${primary}, workers ${workers.join(', ')}; limits ${JSON.stringify(config)}`)

    const maxFds = pids.map(() => 0)
    const fdTimer = setInterval(() => {
      pids.forEach((pid, i) => (maxFds[i] = Math.max(maxFds[i] ?? 0, openFiles(pid) ?? 0)))
    }, FD_SAMPLE_MS)
    const jsonFile = join(dir, 'bench.json')
    const code = await runBench(server.url, pids, jsonFile)
    clearInterval(fdTimer)
    const alive = pids.map((pid) => openFiles(pid) !== undefined)
    if (code !== 0) throw new Error(`holdfast bench exited with code ${code}`)
    const report = JSON.parse(readFileSync(jsonFile, 'utf8')) as BenchReport
    const out = table(report, roles, maxFds, server.logged)
    process.stdout.write(`\n${out}\n`)
    if (!alive.every(Boolean)) log(`server processes gone by the end: ${pids.filter((_, i) => !alive[i]).join(', ')}`)
    for (const s of server.logged.samples) log(`server said: ${s}`)
    if (values.json !== undefined) {
      writeFileSync(values.json, `${JSON.stringify({ engine: ENGINE, serverWorkers: SERVER_WORKERS, limits: config, roles, maxOpenFiles: maxFds, serverLog: server.logged, report }, null, 2)}\n`)
    }
  } finally {
    if (server !== undefined) await stop(server.proc)
    await redis?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  },
)
