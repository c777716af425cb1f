import { newHistogram, percentiles, type Histogram } from './histogram.js'
import { readServerSample, type ServerSample } from './proc-stats.js'
import type { TimelinePoint } from './types.js'
import type { PoolSample, WorkerPool } from './worker-pool.js'

export const SAMPLE_INTERVAL_MS = 1000

/** Deliveries, latency and CPU summed over an interval of the run (a whole run, or a shootout step). */
export class Window {
  readonly latency: Histogram = newHistogram()
  delivered = 0
  serverCpuUs = 0
  clientCpuUs = 0
  seconds = 0
}

/**
 * Samples the workers and the server once a second: a point for the charts, the progress bar's
 * figures, and the sums of every open Window. The workers are only ever sampled from here, so
 * each delivery's latency lands in exactly one point.
 */
export class Timeline {
  readonly points: TimelinePoint[] = []
  readonly total = new Window()
  phase = 'start'
  last: PoolSample | undefined
  /** Highest RSS sampled, summed over the server's processes. */
  rssPeak = 0
  /** Highest RSS sampled of each server process, in the order of its pids. */
  rssPeakEach: number[] = []
  private readonly windows = new Set<Window>()
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private prevAt: number
  private prevDelivered = 0
  private prevServer: ServerSample | undefined
  private prevClientCpu = 0
  private sampling: Promise<void> | undefined
  private readonly listeners = new Set<(p: TimelinePoint) => void>()
  /** Called with every point (the progress bar). */
  onPoint: ((p: TimelinePoint) => void) | undefined

  constructor(
    private readonly pool: WorkerPool,
    /** The server's processes; empty: not measured. */
    private readonly serverPids: readonly number[],
    private readonly t0: number,
  ) {
    this.prevAt = performance.now()
    this.prevServer = readServerSample(serverPids)
  }

  start(): void {
    const loop = (): void => {
      // A sample in flight when stop() ran must not schedule the next one.
      if (this.stopped) return
      this.timer = setTimeout(() => {
        this.sampling = this.sample().then(loop, () => {})
      }, SAMPLE_INTERVAL_MS)
    }
    loop()
  }

  /** Stop sampling, taking a last sample so the final interval is not lost. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    await this.sampling
    await this.sample()
  }

  /** Stop without a last sample (the run failed). */
  halt(): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  open(): Window {
    const w = new Window()
    this.windows.add(w)
    return w
  }

  close(w: Window): Window {
    this.windows.delete(w)
    return w
  }

  /** The next point (for waits such as the drain). */
  next(): Promise<TimelinePoint> {
    return new Promise((resolve) => {
      const fn = (p: TimelinePoint): void => {
        this.listeners.delete(fn)
        resolve(p)
      }
      this.listeners.add(fn)
    })
  }

  /** Fold in deliveries reported after the last sample (the workers' final tick). */
  addLate(h: Histogram, delivered: number): void {
    for (const w of [this.total, ...this.windows]) {
      w.latency.add(h)
      w.delivered += delivered
    }
  }

  private async sample(): Promise<void> {
    const s = await this.pool.sample()
    const now = performance.now()
    const dt = (now - this.prevAt) / 1000
    this.prevAt = now
    const delivered = s.delivered - this.prevDelivered
    this.prevDelivered = s.delivered
    const clientCpu = s.cpuUs - this.prevClientCpu
    this.prevClientCpu = s.cpuUs
    const server = readServerSample(this.serverPids)
    let serverCpu: number | null = null
    if (server !== undefined && this.prevServer !== undefined) serverCpu = server.cpuUs - this.prevServer.cpuUs
    if (server !== undefined) {
      this.prevServer = server
      this.rssPeak = Math.max(this.rssPeak, server.rssBytes)
      this.rssPeakEach = server.each.map((p, i) => Math.max(this.rssPeakEach[i] ?? 0, p.rssBytes))
    }
    for (const w of [this.total, ...this.windows]) {
      w.latency.add(s.latency)
      w.delivered += delivered
      w.serverCpuUs += serverCpu ?? 0
      w.clientCpuUs += clientCpu
      w.seconds += dt
    }
    this.last = s
    const point: TimelinePoint = {
      t: Math.round((now - this.t0) / 100) / 10,
      phase: this.phase,
      connections: s.open,
      deliveriesPerSecond: dt > 0 ? Math.round(delivered / dt) : 0,
      latency: percentiles(s.latency),
      serverCpuPercent: serverCpu === null || dt <= 0 ? null : Math.round(serverCpu / 1e4 / dt),
      serverRssBytes: server?.rssBytes ?? null,
      clientCpuPercent: dt > 0 ? Math.round(clientCpu / 1e4 / dt) : 0,
      allWorkersAnswered: s.complete,
      connectionsBehind: s.behind,
    }
    this.points.push(point)
    this.onPoint?.(point)
    for (const fn of [...this.listeners]) fn(point)
  }
}
