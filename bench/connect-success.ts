/**
 * Connection success rate under injected resets: the seeds' headline figure ("99.9% connection
 * success under fault injection"), measured for holdfast.
 *
 * Two `holdfast serve` nodes, each behind a `holdfast chaos` proxy process that resets a share of
 * the new connections it accepts (`--drop-rate`: RST right after accept, so the client's handshake
 * fails with ECONNRESET) and, optionally, a share of the open ones per second (`--reset-rate`).
 * Worker processes (forked from this file) run `--attempts` client SDK instances in all, each
 * from its process's own source address 127.0.0.x, a fixed number at a time: a client gets the URL
 * list [proxy1, proxy2] (rotated), connects, and is closed as soon as it is connected. Counted:
 *
 * - every connection attempt (the SDK's `connecting` events) and how many succeeded: the raw
 *   attempt success rate, which the injected resets pull below 100%;
 * - every client: connected on its first attempt, connected after the SDK's retries (the product
 *   promise: 100%), or not connected within `--client-timeout`;
 * - handshake time from the first attempt to `connected`, p50/p99/max;
 * - what the proxies injected (refused and reset connections, from their control APIs).
 *
 *   node --conditions=source --import tsx bench/connect-success.ts [--attempts 100000]
 *        [--processes 4] [--concurrency 50] [--drop-rate 0.01] [--reset-rate 0] [--client-timeout 30]
 *        [--max-seconds 900] [--json FILE]
 *
 * Bounded: workers stop starting clients after --max-seconds and the run reports what it did.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { HoldfastClient } from '@holdfast/client'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SELF = fileURLToPath(import.meta.url)
const LOADER = ['--conditions=source', '--import', 'tsx']

interface WorkerSetup {
  type: 'setup'
  urls: string[]
  clients: number
  concurrency: number
  localAddress: string
  clientTimeoutMs: number
  /** Wall-clock ms after which no new client is started. */
  stopStartingAt: number
}

interface WorkerTotals {
  /** Clients started. */
  clients: number
  /** Clients connected on their first attempt. */
  firstTry: number
  /** Clients connected at all (after retries). */
  connected: number
  /** Clients not connected within the client timeout. */
  failed: number
  /** Connection attempts (`connecting` events); each connected client had exactly one that succeeded. */
  attempts: number
  /** ms from the first attempt to `connected`, per connected client. */
  handshakeMs: number[]
  /** Attempts per connected client, as a histogram: index = attempts. */
  attemptsHistogram: number[]
}

type FromWorker = { type: 'progress'; totals: Omit<WorkerTotals, 'handshakeMs' | 'attemptsHistogram'> } | { type: 'done'; totals: WorkerTotals } | { type: 'error'; message: string }

// ------------------------------------------------------------------------------------- worker

async function worker(setup: WorkerSetup): Promise<WorkerTotals> {
  const local = setup.localAddress
  // The SDK takes a WebSocket constructor; this one binds every socket to the process's address.
  class LocalWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress: local })
    }
  }
  const t: WorkerTotals = { clients: 0, firstTry: 0, connected: 0, failed: 0, attempts: 0, handshakeMs: [], attemptsHistogram: [] }
  const progress = setInterval(() => {
    const { handshakeMs: _h, attemptsHistogram: _a, ...rest } = t
    process.send?.({ type: 'progress', totals: rest } satisfies FromWorker)
  }, 1000)

  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const urls = i % 2 === 0 ? setup.urls : [...setup.urls].reverse()
      const client = new HoldfastClient(urls, { WebSocket: LocalWebSocket })
      let attempts = 0
      let first = 0
      client.on('error', () => {})
      client.on('connecting', () => {
        attempts++
        t.attempts++
        if (first === 0) first = performance.now()
      })
      const timer = setTimeout(() => {
        t.failed++
        client.close()
        resolve()
      }, setup.clientTimeoutMs)
      client.once('connected', () => {
        clearTimeout(timer)
        t.connected++
        if (attempts === 1) t.firstTry++
        t.handshakeMs.push(performance.now() - first)
        t.attemptsHistogram[attempts] = (t.attemptsHistogram[attempts] ?? 0) + 1
        client.close()
        resolve()
      })
      client.connect()
    })

  let next = 0
  await Promise.all(
    Array.from({ length: setup.concurrency }, async () => {
      while (next < setup.clients && Date.now() < setup.stopStartingAt) {
        const i = next++
        t.clients++
        await one(i)
      }
    }),
  )
  clearInterval(progress)
  return t
}

if (process.argv.includes('--worker')) {
  process.on('message', (m: WorkerSetup) => {
    worker(m).then(
      (totals) => process.send?.({ type: 'done', totals } satisfies FromWorker, () => process.exit(0)),
      (err: unknown) => process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies FromWorker, () => process.exit(1)),
    )
  })
  process.on('disconnect', () => process.exit(0))
} else {
  await main()
}

// ------------------------------------------------------------------------------------- main

interface Proc {
  child: ChildProcess
  line: RegExpExecArray
}

/** Run the CLI from source and wait for the stdout line matching `re`. */
function cli(args: string[], re: RegExp, ms = 30_000): Promise<Proc> {
  const child = spawn(process.execPath, [...LOADER, 'packages/cli/src/bin.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'development' } })
  let out = ''
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`holdfast ${args[0]}: no line matching ${re} in ${ms} ms: ${out} ${err}`))
    }, ms)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = re.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        // Keep draining, or a full pipe would block the process.
        child.stdout?.removeAllListeners('data').resume()
        resolve({ child, line: m })
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`holdfast ${args[0]} exited (${code}): ${err}`))
    })
  })
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      attempts: { type: 'string', default: '100000' },
      processes: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '50' },
      'drop-rate': { type: 'string', default: '0.01' },
      'reset-rate': { type: 'string', default: '0' },
      'client-timeout': { type: 'string', default: '30' },
      'max-seconds': { type: 'string', default: '900' },
      json: { type: 'string' },
    },
  })
  const clients = Number(values.attempts)
  const processes = Number(values.processes)
  const concurrency = Number(values.concurrency)
  const started = Date.now()
  const children: ChildProcess[] = []
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-connect-success-'))
  const cleanup = (): void => {
    for (const c of children) c.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', cleanup)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130))

  // Every client reaches the nodes through a proxy, from 127.0.0.1: the per-IP limits would
  // measure themselves, not the connection path.
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({ maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 } }))
  const nodes = await Promise.all(
    [0, 1].map(() => cli(['serve', '--port', '0', '--log-level', 'warn', '--config', config], /holdfast listening on http:\/\/127\.0\.0\.1:(\d+) /)),
  )
  children.push(...nodes.map((n) => n.child))
  const proxies = await Promise.all(
    nodes.map((n) =>
      cli(
        ['chaos', '--listen', '0', '--target', `127.0.0.1:${n.line[1]}`, '--control', '0', '--drop-rate', values['drop-rate'], '--reset-rate', values['reset-rate']],
        /holdfast chaos listening on 127\.0\.0\.1:(\d+) -> \S+ \(control (http:\/\/\S+)\)/,
      ),
    ),
  )
  children.push(...proxies.map((p) => p.child))
  const urls = proxies.map((p) => `ws://127.0.0.1:${p.line[1]}/ws`)
  console.log(`nodes ${nodes.map((n) => n.line[1]).join(', ')}; chaos proxies ${urls.join(', ')} (drop-rate ${values['drop-rate']}, reset-rate ${values['reset-rate']})`)

  const per = Math.ceil(clients / processes)
  const progress = new Map<number, Omit<WorkerTotals, 'handshakeMs' | 'attemptsHistogram'>>()
  const ticker = setInterval(() => {
    let done = 0
    let attempts = 0
    for (const t of progress.values()) {
      done += t.connected + t.failed
      attempts += t.attempts
    }
    process.stdout.write(`\r${done}/${clients} clients, ${attempts} attempts, ${Math.round((Date.now() - started) / 1000)} s   `)
  }, 1000)
  const results = await Promise.all(
    Array.from({ length: processes }, (_, p) => {
      const child = fork(SELF, ['--worker'], { execArgv: LOADER, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      children.push(child)
      return new Promise<WorkerTotals>((resolve, reject) => {
        child.on('message', (m: FromWorker) => {
          if (m.type === 'progress') progress.set(p, m.totals)
          else if (m.type === 'done') resolve(m.totals)
          else reject(new Error(`worker ${p}: ${m.message}`))
        })
        child.once('exit', (code) => reject(new Error(`worker ${p} exited (${code})`)))
        child.send({
          type: 'setup',
          urls: p % 2 === 0 ? urls : [...urls].reverse(),
          clients: Math.min(per, clients - p * per),
          concurrency,
          localAddress: `127.0.0.${2 + p}`,
          clientTimeoutMs: Number(values['client-timeout']) * 1000,
          stopStartingAt: started + Number(values['max-seconds']) * 1000,
        } satisfies WorkerSetup)
      })
    }),
  )
  clearInterval(ticker)
  process.stdout.write('\n')
  const seconds = (Date.now() - started) / 1000

  const injected = { refused: 0, resets: 0, totalConnections: 0 }
  for (const p of proxies) {
    const s = (await (await fetch(`${p.line[2]}/stats`)).json()) as typeof injected
    injected.refused += s.refused
    injected.resets += s.resets
    injected.totalConnections += s.totalConnections
  }
  const sum = (k: 'clients' | 'firstTry' | 'connected' | 'failed' | 'attempts'): number => results.reduce((n, r) => n + r[k], 0)
  const handshake = results.flatMap((r) => r.handshakeMs).sort((a, b) => a - b)
  const histogram: number[] = []
  for (const r of results) r.attemptsHistogram.forEach((n, i) => (histogram[i] = (histogram[i] ?? 0) + (n ?? 0)))
  const report = {
    date: new Date().toISOString().slice(0, 10),
    node: process.version,
    seconds: Math.round(seconds),
    dropRate: Number(values['drop-rate']),
    resetRate: Number(values['reset-rate']),
    clients: sum('clients'),
    attempts: sum('attempts'),
    rawAttemptSuccess: sum('connected') / sum('attempts'),
    firstTrySuccess: sum('firstTry') / sum('clients'),
    successAfterRetries: sum('connected') / sum('clients'),
    notConnected: sum('failed'),
    injected: { ...injected, share: (injected.refused + injected.resets) / injected.totalConnections },
    attemptsPerClient: Object.fromEntries(histogram.flatMap((n, i) => (n === undefined || n === 0 ? [] : [[i, n]]))),
    handshakeMs: { p50: Math.round(pct(handshake, 0.5) * 10) / 10, p99: Math.round(pct(handshake, 0.99) * 10) / 10, max: Math.round(pct(handshake, 1)) },
  }
  const percent = (x: number): string => `${(x * 100).toFixed(3)}%`
  console.log(
    [
      `${report.clients} clients, ${report.attempts} connection attempts in ${report.seconds} s (${Math.round(report.attempts / seconds)}/s)`,
      `injected: ${injected.refused} refused + ${injected.resets} reset of ${injected.totalConnections} proxied connections (${percent(report.injected.share)})`,
      `raw attempt success: ${percent(report.rawAttemptSuccess)}`,
      `clients connected on the first attempt: ${percent(report.firstTrySuccess)}`,
      `clients connected after the SDK's retries: ${percent(report.successAfterRetries)} (${report.notConnected} not connected within ${values['client-timeout']} s)`,
      `attempts per client: ${JSON.stringify(report.attemptsPerClient)}`,
      `handshake (first attempt to connected): p50 ${report.handshakeMs.p50} ms, p99 ${report.handshakeMs.p99} ms, max ${report.handshakeMs.max} ms`,
    ].join('\n'),
  )
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`)
  process.exit(report.notConnected === 0 ? 0 : 1)
}
