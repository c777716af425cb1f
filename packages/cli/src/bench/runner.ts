import { availableParallelism, loadavg } from 'node:os'
import { mintToken } from '@holdfast/server/internal'
import { CliError } from '../cli-error.js'
import { cliVersion } from '../version.js'
import { startBenchServer, type BenchServer } from './bench-server.js'
import { addEncoded, newHistogram, percentiles } from './histogram.js'
import { readServerSample, type ServerSample } from './proc-stats.js'
import { Progress } from './progress.js'
import { Publisher } from './publisher.js'
import { Timeline, type Window } from './timeline.js'
import { protocolFor, RSS_NOISE_BYTES, SERVER_LABELS, type BenchConfig, type BenchReport, type ServerKind, type ServerStats, type ShootoutResult, type ShootoutStep, type WorkerResult } from './types.js'
import { WorkerPool } from './worker-pool.js'

export interface RunIO {
  /** Where the progress bar and phase lines go. */
  stderr: NodeJS.WritableStream
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)))

/** A holdfast server's default command rate is 100/s per connection: one publisher per 50/s stays well inside it. */
const EXTERNAL_PUBLISHES_PER_CONNECTION = 50

function merge(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
}

const MIN_CONNECTIONS_FOR_RSS = 100
const MEMORY_SETTLE_MS = 2000
/** Seconds without a delivery, every worker answering and the server idle, after which nothing more is coming. */
const SILENT_SAMPLES = 3
/** Below this a server is doing no more than timers and pings. */
const IDLE_SERVER_CPU_PERCENT = 5

const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits

/**
 * One bench run: start the server (unless `--url`), the workers and the publisher; ramp the
 * connections; publish for the duration (fanout) or step up the clients (shootout); drain; check
 * every connection's sequence; report. Bounded by `timeoutS`: past it every process the run
 * started is killed and the run fails.
 */
export async function runBench(cfg: BenchConfig, io: RunIO): Promise<BenchReport> {
  const run = new Run(cfg, io)
  const body = run.execute()
  // If the deadline wins, the body fails later as its processes are killed; that is expected.
  body.catch(() => {})
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CliError(`the run exceeded its hard timeout of ${cfg.timeoutS} s (--timeout) and was stopped`, { exitCode: 1 })),
      cfg.timeoutS * 1000,
    )
  })
  try {
    return await Promise.race([body, deadline])
  } finally {
    clearTimeout(timer)
    await run.cleanup()
  }
}

class Run {
  private server: BenchServer | undefined
  private pool: WorkerPool | undefined
  private publisher: Publisher | undefined
  private timeline: Timeline | undefined
  private readonly progress: Progress
  private readonly label: string
  /** What the progress bar shows as done in the current phase. */
  private progressValue: () => number = () => 0

  constructor(
    private readonly cfg: BenchConfig,
    io: RunIO,
  ) {
    this.label = cfg.url === undefined ? cfg.server : 'holdfast'
    this.progress = new Progress(io.stderr, cfg.quiet, this.label)
  }

  async cleanup(): Promise<void> {
    this.timeline?.halt()
    this.progress.stop()
    this.publisher?.close()
    this.publisher = undefined
    const pool = this.pool
    this.pool = undefined
    await pool?.close()
    const server = this.server
    this.server = undefined
    await server?.stop()
  }

  /**
   * Wait for the deliveries still in flight. Quiescent when every open connection has received its
   * channel's last publication (counted by the workers, every worker answering); or, for a server
   * that dropped some last publication, after SILENT_SAMPLES seconds in a row without a delivery
   * *while the server was idle*. Silence alone proves nothing: a saturated server can go many
   * seconds without writing a byte while it works through its backlog.
   */
  private async drain(tl: Timeline, pool: WorkerPool, publisher: Publisher): Promise<{ quiescent: boolean; seconds: number }> {
    const t = performance.now()
    const limit = t + this.cfg.drainS * 1000
    if (publisher.published === 0) return { quiescent: true, seconds: 0 }
    pool.drain(publisher.drainTargets())
    this.progress.note('publishing stopped; waiting for deliveries in flight')
    let silent = 0
    while (performance.now() < limit) {
      let timer: NodeJS.Timeout | undefined
      const out = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), limit - performance.now())))
      const p = await Promise.race([tl.next(), out])
      clearTimeout(timer)
      if (p === undefined) break
      if (p.allWorkersAnswered && p.connectionsBehind === 0) return { quiescent: true, seconds: (performance.now() - t) / 1000 }
      const idle = p.serverCpuPercent !== null && p.serverCpuPercent < IDLE_SERVER_CPU_PERCENT
      silent = p.allWorkersAnswered && p.deliveriesPerSecond === 0 && idle ? silent + 1 : 0
      if (silent >= SILENT_SAMPLES) return { quiescent: true, seconds: (performance.now() - t) / 1000 }
    }
    return { quiescent: false, seconds: (performance.now() - t) / 1000 }
  }

  async execute(): Promise<BenchReport> {
    const { cfg } = this
    const t0 = performance.now()
    const startedAt = new Date().toISOString()
    const warnings: string[] = []
    // Other processes' load skews every figure on a shared machine; say so in the report.
    const [load] = loadavg()
    const cores = availableParallelism()
    if (load !== undefined && load > cores * 0.5) {
      warnings.push(`the machine was already busy before the run (load average ${load.toFixed(1)} on ${cores} cores): other processes competed for CPU`)
    }
    let url: string
    let pids = cfg.serverPids
    if (cfg.url === undefined) {
      this.progress.note(`starting the ${SERVER_LABELS[cfg.server]} server`)
      this.server = await startBenchServer(cfg.server)
      url = this.server.url
      pids = [this.server.pid]
    } else url = cfg.url
    if (pids.length > 0 && readServerSample(pids) === undefined) {
      warnings.push(`cannot read /proc/${pids.join(', /proc/')}: server CPU and memory are not reported`)
      pids = []
    }
    const external = cfg.url !== undefined
    const protocol = external ? 'holdfast' : protocolFor(cfg.server)
    const token =
      cfg.token ?? (cfg.tokenSecret === undefined ? undefined : await mintToken({ secret: cfg.tokenSecret, sub: 'holdfast-bench', ttl: cfg.timeoutS + 3600 }))
    const channels = Array.from({ length: cfg.channels }, (_, i) => `bench:c${i}`)
    const connectTimeoutMs = cfg.connectTimeoutS * 1000
    this.pool = await WorkerPool.start(cfg.workers, { url, protocol, channels, sourceIps: cfg.sourceIps, token, connectTimeoutMs })
    const publishers = external ? Math.min(cfg.channels, Math.max(1, Math.ceil(cfg.rate / EXTERNAL_PUBLISHES_PER_CONNECTION))) : 1
    this.publisher = await Publisher.start({ url, protocol, channels, size: cfg.size, token, publishers, connectTimeoutMs })
    const pool = this.pool
    const publisher = this.publisher
    // V8 gives freed pages back to the OS some time after a GC: collect, let it settle, collect
    // again, so that two readings differ by what the clients hold and not by when pages returned.
    const gc =
      this.server === undefined
        ? async () => {}
        : async () => {
            const server = this.server as BenchServer
            await server.gc()
            // Too few connections for a per-connection figure: no need to wait for a precise one.
            if (cfg.connections < MIN_CONNECTIONS_FOR_RSS) return
            await sleep(MEMORY_SETTLE_MS)
            await server.gc()
          }
    const read = (): ServerSample | undefined => readServerSample(pids)

    await gc()
    const base = read()
    const tl = new Timeline(pool, pids, t0)
    this.timeline = tl
    tl.onPoint = (p) => this.progress.update(this.progressValue(), { open: p.connections, perSecond: p.deliveriesPerSecond, p99: p.latency?.p99 ?? null })
    tl.start()

    let afterRamp: ServerSample | undefined
    let rampCpu0: ServerSample | undefined
    let rampCpu1: ServerSample | undefined
    let rampSeconds: number | undefined
    let cpu0: ServerSample | undefined
    let pubT0 = 0
    let window: Window
    let shootout: ShootoutResult | null = null

    if (cfg.mode === 'fanout') {
      tl.phase = 'ramp'
      this.progress.phase('ramp', cfg.connections, 'connections')
      this.progressValue = () => (tl.last === undefined ? 0 : tl.last.open + tl.last.failed)
      rampCpu0 = read()
      const rampT0 = performance.now()
      const opened = await pool.open(cfg.connections, cfg.ramp)
      rampSeconds = (performance.now() - rampT0) / 1000
      rampCpu1 = read()
      this.progress.note(`${opened.connected} of ${cfg.connections} connections subscribed, ${opened.failed} failed`)
      await gc()
      afterRamp = read()
      tl.phase = 'publish'
      this.progress.phase('publish', cfg.durationS, 's')
      cpu0 = read()
      pubT0 = performance.now()
      this.progressValue = () => Math.min(cfg.durationS, (performance.now() - pubT0) / 1000)
      window = tl.open()
      publisher.start(cfg.rate)
      await sleep(cfg.durationS * 1000)
      publisher.stop()
    } else {
      tl.phase = 'shootout'
      cpu0 = read()
      pubT0 = performance.now()
      window = tl.open()
      publisher.start(cfg.rate)
      shootout = await this.shootout(tl, pool, pids.length > 0)
      publisher.stop()
    }
    tl.phase = 'drain'
    const drain = await this.drain(tl, pool, publisher)
    const cpu1 = read()
    if (afterRamp === undefined) {
      // Shootout: memory with every client connected, read once the broadcasts have drained.
      await gc()
      afterRamp = read()
    }
    const windowSeconds = (performance.now() - pubT0) / 1000
    await tl.stop()
    this.progress.stop()
    const { results, last } = await pool.finish(publisher.channelLogs(), drain.quiescent)
    const deliveredTotal = results.reduce((n, r) => n + r.delivered, 0)
    tl.addLate(last, deliveredTotal - tl.total.delivered)
    tl.close(window)

    return this.report({
      startedAt,
      url,
      pids,
      publishers,
      results,
      window,
      windowSeconds,
      drain,
      base,
      afterRamp,
      cpu0,
      cpu1,
      shootout,
      warnings,
      rampSeconds,
      rampCpuUs: rampCpu0 !== undefined && rampCpu1 !== undefined ? rampCpu1.cpuUs - rampCpu0.cpuUs : undefined,
    })
  }

  private async shootout(tl: Timeline, pool: WorkerPool, serverMeasured: boolean): Promise<ShootoutResult> {
    const { cfg } = this
    const steps: ShootoutStep[] = []
    let clients = 0
    let prevFailed = 0
    let reached = 0
    let stoppedBecause = `reached --connections ${cfg.connections} within the limit`
    while (clients < cfg.connections) {
      const add = Math.min(cfg.step, cfg.connections - clients)
      this.progress.phase(`step ${steps.length + 1} +${add}`, add, 'connections')
      const before = (tl.last?.open ?? 0) + (tl.last?.failed ?? 0)
      this.progressValue = () => (tl.last === undefined ? 0 : tl.last.open + tl.last.failed - before)
      const r = await pool.open(add, cfg.ramp)
      clients += add
      const failedNow = r.failed - prevFailed
      prevFailed = r.failed
      this.progress.phase(`measure ${r.connected} clients`, cfg.stepDurationS, 's')
      // Start the step's window at a sample boundary, so it holds only deliveries made with every
      // client of the step connected.
      await tl.next()
      const w = tl.open()
      const stepT0 = performance.now()
      this.progressValue = () => Math.min(cfg.stepDurationS, (performance.now() - stepT0) / 1000)
      for (let i = 0; i < cfg.stepDurationS; i++) await tl.next()
      tl.close(w)
      const latency = percentiles(w.latency)
      steps.push({
        clients: r.connected,
        connectFailures: failedNow,
        latency,
        deliveriesPerSecond: w.seconds > 0 ? Math.round(w.delivered / w.seconds) : 0,
        serverCpuPercent: serverMeasured && w.seconds > 0 ? Math.round(w.serverCpuUs / 1e4 / w.seconds) : null,
      })
      this.progress.note(
        `${r.connected} clients: broadcast latency p95 ${latency === null ? '-' : latency.p95} ms (limit ${cfg.p95LimitMs} ms)` +
          (failedNow > 0 ? `, ${failedNow} connections failed` : ''),
      )
      if (latency === null) {
        stoppedBecause = 'no broadcast was delivered during the last step'
        break
      }
      if (latency.p95 > cfg.p95LimitMs) {
        stoppedBecause = `broadcast latency p95 ${latency.p95} ms exceeded ${cfg.p95LimitMs} ms at ${r.connected} clients`
        break
      }
      reached = r.connected
      if (failedNow > add * 0.01) {
        stoppedBecause = `${failedNow} of the last ${add} connections failed (more than 1%)`
        break
      }
    }
    return { p95LimitMs: cfg.p95LimitMs, step: cfg.step, stepDurationS: cfg.stepDurationS, reached, stoppedBecause, steps }
  }

  private report(r: {
    startedAt: string
    url: string
    pids: number[]
    publishers: number
    results: WorkerResult[]
    window: Window
    windowSeconds: number
    drain: { quiescent: boolean; seconds: number }
    base: ServerSample | undefined
    afterRamp: ServerSample | undefined
    cpu0: ServerSample | undefined
    cpu1: ServerSample | undefined
    shootout: ShootoutResult | null
    warnings: string[]
    rampSeconds: number | undefined
    rampCpuUs: number | undefined
  }): BenchReport {
    const { cfg } = this
    const tl = this.timeline as Timeline
    const publisher = this.publisher as Publisher
    const sum = (f: (w: WorkerResult) => number): number => r.results.reduce((n, w) => n + f(w), 0)
    const handshake = newHistogram()
    const ready = newHistogram()
    const failures: Record<string, number> = {}
    const disconnected: Record<string, number> = {}
    for (const w of r.results) {
      addEncoded(handshake, w.handshake)
      addEncoded(ready, w.ready)
      merge(failures, w.failures)
      merge(disconnected, w.disconnected)
    }
    const attempted = sum((w) => w.attempted)
    const connected = sum((w) => w.connected)
    const delivered = sum((w) => w.delivered)
    const lost = sum((w) => w.lost)
    const inFlight = sum((w) => w.inFlight)
    const duplicated = sum((w) => w.duplicated)
    const warnings = [...r.warnings]

    let server: ServerStats | null = null
    const [pid] = r.pids
    if (pid !== undefined && r.base !== undefined && r.cpu0 !== undefined && r.cpu1 !== undefined && r.afterRamp !== undefined) {
      const { base, afterRamp, cpu0, cpu1 } = r
      const cpuUs = cpu1.cpuUs - cpu0.cpuUs
      const cpuSeconds = (us: number): number => round(us / 1e6, 3)
      const cpuPercent = (us: number): number => round(us / 1e4 / r.windowSeconds, 1)
      server = {
        pid,
        pids: r.pids,
        processes: r.pids.map((p, i) => {
          const us = (cpu1.each[i]?.cpuUs ?? 0) - (cpu0.each[i]?.cpuUs ?? 0)
          const after = afterRamp.each[i]?.rssBytes ?? 0
          return {
            pid: p,
            cpuSeconds: cpuSeconds(us),
            cpuPercent: cpuPercent(us),
            rssBaselineBytes: base.each[i]?.rssBytes ?? 0,
            rssAfterRampBytes: after,
            rssPeakBytes: Math.max(tl.rssPeakEach[i] ?? 0, after),
          }
        }),
        cpuSeconds: cpuSeconds(cpuUs),
        cpuPercent: cpuPercent(cpuUs),
        cpuMicrosPerDelivery: delivered > 0 ? round(cpuUs / delivered, 3) : null,
        cpuMicrosPerConnect: r.rampCpuUs !== undefined && connected > 0 ? round(r.rampCpuUs / connected, 1) : null,
        rssBaselineBytes: r.base.rssBytes,
        rssAfterRampBytes: r.afterRamp.rssBytes,
        rssPeakBytes: Math.max(tl.rssPeak, r.afterRamp.rssBytes),
        // Below a hundred connections the RSS delta is mostly noise (GC, allocator); do not divide it.
        rssPerConnectionBytes: connected >= MIN_CONNECTIONS_FOR_RSS ? Math.round((r.afterRamp.rssBytes - r.base.rssBytes) / connected) : null,
        gcBeforeReadings: this.server !== undefined,
      }
    }
    const clientCpuPercent = r.window.seconds > 0 ? round(r.window.clientCpuUs / 1e4 / r.window.seconds, 1) : 0
    const perProcess = clientCpuPercent / Math.max(1, r.results.length)
    if (perProcess > 85) {
      warnings.push(
        `the bench's client processes averaged ${Math.round(perProcess)}% of a core each while publishing: latencies include time ` +
          'the clients waited for their own CPU. Use more --workers (if cores allow) or fewer connections.',
      )
    }
    const cores = availableParallelism()
    if (server !== null && server.cpuPercent + clientCpuPercent > 90 * cores) {
      warnings.push(
        `server (${Math.round(server.cpuPercent)}%) and clients (${Math.round(clientCpuPercent)}%) together used more than 90% of this machine's ${cores} cores: ` +
          'the server competed with the load generator for CPU, so its latency and throughput are lower bounds.',
      )
    }
    if (!r.drain.quiescent && inFlight > 0) {
      warnings.push(
        `deliveries were still arriving when the drain ended (--drain ${cfg.drainS}s): ${inFlight} owed deliveries after each connection's last one are reported in flight, not lost`,
      )
    }
    const publishErrors = { ...publisher.errors }
    const refused = Object.values(publishErrors).reduce((a, b) => a + b, 0)
    if (refused > 0) warnings.push(`the server refused ${refused} publications (${JSON.stringify(publishErrors)}); they are owed to no one`)
    if (server !== null && server.rssPerConnectionBytes !== null && server.rssPerConnectionBytes < RSS_NOISE_BYTES) {
      warnings.push(
        `RSS grew by ${server.rssPerConnectionBytes} bytes per connection: less than the noise of the readings (pages the runtime returned or took meanwhile); read it as "too small to measure"`,
      )
    }
    const dropped = Object.values(disconnected).reduce((a, b) => a + b, 0)
    if (dropped > 0) {
      warnings.push(
        `the server closed ${dropped} connections during the run (${JSON.stringify(disconnected)}); what they did not receive after their last ` +
          'delivery is reported as cut off by disconnects, not as lost',
      )
    }
    if (attempted > 0 && connected < attempted) warnings.push(`${attempted - connected} of ${attempted} connections failed: ${JSON.stringify(failures)}`)
    const kind: ServerKind | 'external' = cfg.url === undefined ? cfg.server : 'external'
    return {
      tool: 'holdfast bench',
      version: cliVersion(),
      startedAt: r.startedAt,
      mode: cfg.mode,
      target: {
        kind,
        label: kind === 'external' ? 'holdfast (external)' : SERVER_LABELS[kind],
        url: r.url,
        pid: pid ?? null,
        startedByBench: this.server !== undefined,
      },
      scenario: {
        connections: cfg.connections,
        durationS: cfg.mode === 'fanout' ? cfg.durationS : round(r.windowSeconds - r.drain.seconds, 1),
        rate: cfg.rate,
        size: cfg.size,
        channels: cfg.channels,
        ramp: cfg.ramp,
        workers: r.results.length,
        sourceIps: cfg.sourceIps,
        publishers: r.publishers,
      },
      connect: {
        attempted,
        connected,
        failed: sum((w) => w.failed),
        successRate: attempted === 0 ? 0 : round(connected / attempted, 6),
        failures,
        disconnectedDuringRun: disconnected,
        handshakeMs: percentiles(handshake),
        subscribedMs: percentiles(ready),
        rampSeconds: r.rampSeconds === undefined ? null : round(r.rampSeconds, 2),
        perSecond: r.rampSeconds === undefined || r.rampSeconds <= 0 ? null : Math.round(connected / r.rampSeconds),
      },
      delivery: {
        published: publisher.published,
        publishErrors,
        expected: sum((w) => w.owed),
        delivered,
        lost,
        inFlightAtEnd: inFlight,
        cutOffByDisconnect: sum((w) => w.cutOff),
        duplicated,
        outOfOrder: sum((w) => w.outOfOrder),
        checkerOverflow: sum((w) => w.checkerOverflow),
        perSecond: r.windowSeconds > 0 ? Math.round(delivered / r.windowSeconds) : 0,
        latencyMs: percentiles(tl.total.latency),
        windowSeconds: round(r.windowSeconds, 2),
        drainSeconds: round(r.drain.seconds, 2),
        quiescent: r.drain.quiescent,
      },
      server,
      clients: { processes: r.results.length, cpuPercent: clientCpuPercent },
      shootout: r.shootout,
      timeline: tl.points,
      warnings,
    }
  }
}
