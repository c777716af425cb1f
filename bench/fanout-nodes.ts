/**
 * Cross-node fan-out over Redis: one channel, S subscribers, publications at a steady rate; the
 * same load spread over N `holdfast serve --engine redis` nodes, and on 1 node, in the same run
 * (same machine, same Redis, same client processes), so the two rows compare.
 *
 *   node --conditions=source --import tsx bench/fanout-nodes.ts [--subscribers 9000] [--nodes 3]
 *        [--procs 3] [--rate 10] [--duration 10] [--warmup 5] [--scenarios 3,1] [--json FILE]
 *
 * `--scenarios` lists the node counts to run, in order (default: --nodes, then 1); reversing the
 * order between runs shows how much a shared machine's changing load moved the comparison.
 *
 * For each scenario: a fresh set of nodes on one redis-server (started here on a free port), the
 * subscribers spread evenly over the nodes from `--procs` client processes (bench/fanout-worker.ts,
 * raw protocol, one source address 127.0.0.x each), and a publisher (raw protocol, on node 1)
 * that stamps each publication with its wall-clock send time. Reported: deliveries per second,
 * publish-to-delivery latency (p50/p95/p99/max over every delivery), the time until a publication
 * reached all subscribers (p50/p99), refused publications, undelivered and duplicated deliveries,
 * and CPU seconds used by the nodes, Redis and the clients during the measured window. Every phase
 * is bounded in time, and Ctrl-C leaves no process behind.
 */
import { spawn, fork, execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { RedisServer } from '@holdfast/testkit/support/redis-server'
import { wallNow, type FromWorker, type ToWorker } from './fanout-worker.js'

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '9000' },
    nodes: { type: 'string', default: '3' },
    procs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    scenarios: { type: 'string' },
    json: { type: 'string' },
  },
})
const SUBSCRIBERS = positive('subscribers')
const NODES = positive('nodes')
const PROCS = positive('procs')
const RATE = positive('rate')
const DURATION_S = positive('duration')
const WARMUP_S = Number(values.warmup)
const SCENARIOS = (values.scenarios ?? `${NODES},1`).split(',').map((x) => {
  const n = Number(x)
  if (!Number.isSafeInteger(n) || n <= 0) {
    process.stderr.write(`--scenarios must list positive node counts, got "${values.scenarios ?? ''}"\n`)
    process.exit(2)
  }
  return n
})
/** Every phase has a bound; the whole run too. */
const CONNECT_TIMEOUT_MS = 120_000
/** How long deliveries may trail the last publication before the rest counts as undelivered. */
const DRAIN_TIMEOUT_MS = 60_000
const RUN_TIMEOUT_MS = 15 * 60_000

const root = new URL('..', import.meta.url).pathname
const workerFile = new URL('./fanout-worker.ts', import.meta.url).pathname

function positive(name: keyof typeof values): number {
  const n = Number(values[name])
  if (!Number.isSafeInteger(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive integer\n`)
    process.exit(2)
  }
  return n
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Clock ticks per second of /proc/<pid>/stat (100 on Linux unless configured otherwise). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU seconds (user + system) a process has used so far; NaN where /proc is not available. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

// ------------------------------------------------------------------ processes

/** Every child process, so that Ctrl-C or the run timeout leaves no node or client behind. */
const children = new Set<ChildProcess>()
function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
function killChildren(): void {
  for (const child of children) child.kill('SIGKILL')
}
process.once('exit', killChildren)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`)
    // exit() runs the 'exit' handlers: the children here and the redis-server of RedisServer.
    process.exit(130)
  })
}

interface Node {
  proc: ChildProcess
  url: string
}

function startNode(redisUrl: string, configFile: string, id: string): Promise<Node> {
  const args = ['--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts', 'serve', '--port', '0', '--engine', 'redis', '--redis-url', redisUrl]
  args.push('--session-secret', 'bench-session-secret-0123456789abcdef', '--log-level', 'warn', '--drain-ms', '0', '--config', configFile)
  const proc = track(
    spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'development', HOLDFAST_CONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${out}`)), 60_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /holdfast listening on \S+ \((ws:\/\/\S+)\)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ proc, url: m[1] as string })
      }
    })
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`node ${id} exited ${code}: ${out}`))
    })
  })
}

async function stopNode(node: Node): Promise<void> {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return
  const exited = new Promise((r) => node.proc.once('exit', r))
  node.proc.kill('SIGTERM')
  const killer = setTimeout(() => node.proc.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(killer)
}

class Worker {
  readonly proc: ChildProcess
  readonly #waiting = new Map<string, (m: FromWorker) => void>()

  constructor() {
    this.proc = track(fork(workerFile, [], { execArgv: ['--conditions=source', '--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    this.proc.on('message', (m: FromWorker) => {
      const w = this.#waiting.get(m.type)
      this.#waiting.delete(m.type)
      w?.(m)
    })
  }

  /** Send `msg` and wait (at most `ms`) for the reply of type `reply`. */
  ask<T extends FromWorker['type']>(msg: ToWorker, reply: T, ms: number): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client process: no "${reply}" within ${ms} ms`)), ms)
      this.#waiting.set(reply, (m) => {
        clearTimeout(timer)
        resolve(m as Extract<FromWorker, { type: T }>)
      })
      this.proc.send(msg)
    })
  }

  tell(msg: ToWorker): void {
    this.proc.send(msg)
  }
}

/** The publisher: raw protocol on one node, `{ seq, t }` at a steady rate, acks counted. */
class Publisher {
  readonly #ws: WebSocket
  #id = 1
  acked = 0
  errors: string[] = []
  /** Measured publications the node refused (e.g. engine_unavailable when Redis answers too slowly). */
  readonly refused = new Set<number>()
  /** wire id → measured seq. */
  readonly #seqOf = new Map<number, number>()

  private constructor(ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (line.length === 0) continue
        const msg = JSON.parse(line) as { id?: number; error?: { message?: string }; type?: string }
        if (msg.type === 'ping') ws.send('{"type":"pong"}')
        else if (msg.error !== undefined) {
          this.errors.push(msg.error.message ?? 'error')
          const seq = msg.id === undefined ? undefined : this.#seqOf.get(msg.id)
          if (seq !== undefined) this.refused.add(seq)
        } else if (msg.id !== undefined && msg.id > 1) this.acked++
      }
    })
  }

  static async open(url: string): Promise<Publisher> {
    const ws = new WebSocket(url, ['holdfast.v1.json'], { perMessageDeflate: false })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const p = new Publisher(ws)
    ws.send(JSON.stringify({ id: p.#id++, type: 'connect', version: 1 }))
    return p
  }

  /**
   * Publish `count` publications at `rate` per second on a drift-free schedule; returns the send
   * time of each (index = seq). `seq` 0 marks warm-up publications, which the clients only count.
   */
  async run(channel: string, count: number, rate: number, measured: boolean): Promise<Float64Array> {
    const sentAt = new Float64Array(count + 1)
    const start = performance.now()
    for (let i = 1; i <= count; i++) {
      const due = start + ((i - 1) * 1000) / rate
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      const t = wallNow()
      sentAt[i] = t
      const id = this.#id++
      if (measured) this.#seqOf.set(id, i)
      this.#ws.send(JSON.stringify({ id, type: 'publish', channel, data: { seq: measured ? i : 0, t }, msgId: `${channel}-${measured ? 'm' : 'w'}-${i}` }))
    }
    return sentAt
  }

  close(): void {
    this.#ws.terminate()
  }
}

// ------------------------------------------------------------------ one scenario

interface Result {
  scenario: string
  nodes: number
  subscribers: number
  connected: number
  connectSeconds: number
  publications: number
  expected: number
  delivered: number
  /** Deliveries of accepted publications missing when the drain ended (late under overload, or lost: see `closed`). */
  undelivered: number
  /** Measured publications the node refused (not stored, so delivered to nobody). */
  refused: number
  /** Subscribers whose connection closed while measuring. */
  closed: number
  duplicated: number
  deliveriesPerSecond: number
  latencyMs: { p50: number; p95: number; p99: number; max: number }
  /** Publish until the last subscriber had it, per publication. */
  completeMs: { p50: number; p99: number; max: number }
  cpuSeconds: { nodes: number; redis: number; clients: number }
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number
}

async function redisPid(redis: RedisServer): Promise<number | undefined> {
  const line = (await redis.cli('INFO', 'server')).find((l) => l.startsWith('process_id:'))
  return line === undefined ? undefined : Number(line.slice('process_id:'.length))
}

async function scenario(redis: RedisServer, configFile: string, nodeCount: number, workers: Worker[]): Promise<Result> {
  const name = `${nodeCount} node${nodeCount > 1 ? 's' : ''} × ${Math.round(SUBSCRIBERS / nodeCount)}`
  const channel = `bench:fanout:${nodeCount}x${Date.now()}`
  log(`[${name}] starting ${nodeCount} node(s)`)
  const nodes = await Promise.all(Array.from({ length: nodeCount }, (_, i) => startNode(redis.url, configFile, `n${i + 1}`)))
  try {
    const urls = nodes.map((n) => n.url)
    // Each client process spreads its share over every node, so each node holds SUBSCRIBERS / nodeCount.
    const shares = workers.map((_, w) => Math.floor(SUBSCRIBERS / workers.length) + (w < SUBSCRIBERS % workers.length ? 1 : 0))
    const connectStart = performance.now()
    const replies = await Promise.all(
      workers.map((w, i) =>
        w.ask(
          // Rotate the node order per process, so that the remainders do not all land on node 1.
          { type: 'connect', urls: [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)], count: shares[i] ?? 0, localAddress: `127.0.0.${i + 2}`, channel, concurrency: 50 },
          'connected',
          CONNECT_TIMEOUT_MS,
        ),
      ),
    )
    const connected = replies.reduce((a, r) => a + r.connected, 0)
    const connectSeconds = (performance.now() - connectStart) / 1000
    const failed = replies.find((r) => r.failed > 0)
    log(`[${name}] ${connected}/${SUBSCRIBERS} subscribed in ${connectSeconds.toFixed(1)} s${failed === undefined ? '' : `; ${failed.failed} failed: ${failed.firstError}`}`)

    const publisher = await Publisher.open(urls[0] as string)
    try {
      // Warm up at the measured rate (JIT, buffers, Redis connections), then wait until every
      // warm-up publication has reached every subscriber: the measurement starts with an empty
      // pipeline, not behind a backlog left by a cold first scenario.
      if (WARMUP_S > 0) {
        const warm = Math.round(WARMUP_S * RATE)
        await publisher.run(channel, warm, RATE, false)
        const deadline = performance.now() + DRAIN_TIMEOUT_MS
        for (;;) {
          const got = (await Promise.all(workers.map((w) => w.ask({ type: 'status' }, 'status', 5000)))).reduce((a, st) => a + st.warmUp, 0)
          if (got >= warm * connected) break
          if (performance.now() > deadline) {
            log(`[${name}] warm-up not fully delivered after ${DRAIN_TIMEOUT_MS / 1000} s (${got}/${warm * connected}); measuring anyway`)
            break
          }
          await sleep(100)
        }
      }
      const count = Math.round(DURATION_S * RATE)
      for (const w of workers) w.tell({ type: 'measure', channel, publications: count })
      // Make sure every process has reset before the first measured publication.
      await Promise.all(workers.map((w) => w.ask({ type: 'status' }, 'status', 5000)))
      const pids = { nodes: nodes.map((n) => n.proc.pid), redis: await redisPid(redis), clients: workers.map((w) => w.proc.pid) }
      const sum = (xs: (number | undefined)[]): number => xs.reduce<number>((a, p) => a + cpuSeconds(p), 0)
      const cpu0 = { nodes: sum(pids.nodes), redis: cpuSeconds(pids.redis), clients: sum(pids.clients) }
      log(`[${name}] publishing ${count} publications at ${RATE}/s to ${connected} subscribers`)
      const sentAt = await publisher.run(channel, count, RATE, true)
      // Publications still unanswered cannot be told apart from refused ones yet: wait for the replies.
      const replyDeadline = performance.now() + DRAIN_TIMEOUT_MS
      while (publisher.acked + publisher.refused.size < count && performance.now() < replyDeadline) await sleep(50)
      const expected = (count - publisher.refused.size) * connected
      // Done when every accepted publication could have reached everyone and nothing has arrived
      // for 2 s (a refused publication may arrive too, see below), or at the deadline.
      const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS
      let seen = -1
      let quietSince = performance.now()
      for (;;) {
        const delivered = (await Promise.all(workers.map((w) => w.ask({ type: 'status' }, 'status', 5000)))).reduce((a, s) => a + s.delivered, 0)
        if (delivered !== seen) {
          seen = delivered
          quietSince = performance.now()
        }
        if (delivered >= count * connected || (delivered >= expected && performance.now() - quietSince > 2000) || performance.now() > drainDeadline) break
        await sleep(100)
      }
      const cpu1 = { nodes: sum(pids.nodes), redis: cpuSeconds(pids.redis), clients: sum(pids.clients) }
      const reports = await Promise.all(workers.map((w) => w.ask({ type: 'report' }, 'report', 30_000)))

      const total = reports.reduce((a, r) => a + r.latencies.length, 0)
      const all = new Float64Array(total)
      let at = 0
      for (const r of reports) {
        all.set(r.latencies, at)
        at += r.latencies.length
      }
      all.sort()
      const complete = new Float64Array(count)
      let lastDelivery = 0
      for (let seq = 1; seq <= count; seq++) {
        const last = Math.max(...reports.map((r) => r.lastDeliveryAt[seq] ?? 0))
        lastDelivery = Math.max(lastDelivery, last)
        if (publisher.refused.has(seq)) complete[seq - 1] = Number.NaN
        else complete[seq - 1] = last > 0 ? last - (sentAt[seq] ?? 0) : Number.POSITIVE_INFINITY
      }
      complete.sort()
      // Refused publications (NaN, sorted last) reached nobody by design: leave them out.
      const reached = complete.subarray(0, count - publisher.refused.size)
      const delivered = reports.reduce((a, r) => a + r.delivered, 0)
      const duplicated = reports.reduce((a, r) => a + r.duplicates, 0)
      // Per publication: an accepted one should reach every subscriber. A refused one may still
      // reach them: a publish that timed out on a stalled engine may have run in Redis after all.
      let undelivered = 0
      for (let seq = 1; seq <= count; seq++) {
        if (publisher.refused.has(seq)) continue
        const got = reports.reduce((a, r) => a + (r.deliveries[seq] ?? 0), 0)
        undelivered += Math.max(0, connected - got)
      }
      const closed = reports.reduce((a, r) => a + r.closed, 0)
      const windowS = (lastDelivery - (sentAt[1] ?? 0)) / 1000
      return {
        scenario: name,
        nodes: nodeCount,
        subscribers: SUBSCRIBERS,
        connected,
        connectSeconds,
        publications: count,
        expected,
        delivered,
        undelivered,
        refused: publisher.refused.size,
        closed,
        duplicated,
        deliveriesPerSecond: delivered / windowS,
        latencyMs: { p50: percentile(all, 0.5), p95: percentile(all, 0.95), p99: percentile(all, 0.99), max: all[all.length - 1] ?? Number.NaN },
        completeMs: { p50: percentile(reached, 0.5), p99: percentile(reached, 0.99), max: reached[reached.length - 1] ?? Number.NaN },
        cpuSeconds: { nodes: cpu1.nodes - cpu0.nodes, redis: cpu1.redis - cpu0.redis, clients: cpu1.clients - cpu0.clients },
      }
    } finally {
      publisher.close()
      await Promise.all(workers.map((w) => w.ask({ type: 'close' }, 'closed', 30_000)))
    }
  } finally {
    await Promise.all(nodes.map(stopNode))
  }
}

// ------------------------------------------------------------------ report

function log(line: string): void {
  process.stderr.write(`${line}\n`)
}

const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '—')
const thousands = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—')

function table(results: Result[]): string {
  const head =
    '| scenario | subscribed | publications (refused) | deliveries/s | latency p50 / p95 / p99 / max (ms) | all subscribers reached p50 / p99 (ms) | undelivered | closed | dup | CPU s: nodes / Redis / clients | node CPU µs per delivery |'
  const sep = '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${thousands(r.connected)} | ${r.publications} at ${RATE}/s (${r.refused}) | ${thousands(r.deliveriesPerSecond)} | ` +
      `${fmt(r.latencyMs.p50)} / ${fmt(r.latencyMs.p95)} / ${fmt(r.latencyMs.p99)} / ${fmt(r.latencyMs.max)} | ` +
      `${fmt(r.completeMs.p50)} / ${fmt(r.completeMs.p99)} | ${r.undelivered} | ${r.closed} | ${r.duplicated} | ` +
      `${fmt(r.cpuSeconds.nodes)} / ${fmt(r.cpuSeconds.redis)} / ${fmt(r.cpuSeconds.clients)} | ${fmt((r.cpuSeconds.nodes * 1e6) / r.delivered)} |`,
  )
  return [head, sep, ...rows].join('\n')
}

async function main(): Promise<void> {
  const overall = setTimeout(() => {
    log(`bench did not finish within ${RUN_TIMEOUT_MS / 60_000} min; giving up`)
    process.exit(1)
  }, RUN_TIMEOUT_MS)
  overall.unref()
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-fanout-'))
  const configFile = join(dir, 'node.json')
  // The subscribers come from 127.0.0.2–4 only, and the publisher exceeds a client's usual rate.
  writeFileSync(
    configFile,
    JSON.stringify({
      maxConnectionsPerIp: 1_000_000,
      connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
      commandRate: { perSecond: 100_000, burst: 100_000 },
    }),
  )
  const redis = await RedisServer.start()
  const workers = Array.from({ length: PROCS }, () => new Worker())
  try {
    log(`redis-server on ${redis.url}; ${PROCS} client processes; ${SUBSCRIBERS} subscribers; ${RATE} publications/s for ${DURATION_S} s (+${WARMUP_S} s warm-up)`)
    const results: Result[] = []
    for (const n of SCENARIOS) results.push(await scenario(redis, configFile, n, workers))
    // A shared machine changes the numbers: say how busy it was.
    const load = loadavg().map((l) => l.toFixed(1)).join(' ')
    process.stdout.write(`\n${cpus().length} CPUs, load average at the end ${load} (1/5/15 min; the bench itself adds about ${NODES + PROCS + 1})\n${table(results)}\n`)
    const multi = results.find((r) => r.nodes > 1)
    const single = results.find((r) => r.nodes === 1)
    if (multi !== undefined && single !== undefined) {
      process.stdout.write(
        `\n${multi.scenario} vs ${single.scenario}: deliveries/s ×${fmt(multi.deliveriesPerSecond / single.deliveriesPerSecond, 2)}, ` +
          `p50 ×${fmt(multi.latencyMs.p50 / single.latencyMs.p50, 2)}, p99 ×${fmt(multi.latencyMs.p99 / single.latencyMs.p99, 2)}\n`,
      )
    }
    if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, loadavg: loadavg(), rate: RATE, durationS: DURATION_S, results }, null, 2))
  } finally {
    for (const w of workers) w.proc.kill()
    await redis.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err))
    process.exit(1)
  },
)
