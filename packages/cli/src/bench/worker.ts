/**
 * A bench worker process: opens its share of the connections (every `workers`-th global index),
 * spread over the source addresses, answers pings, times and checks every delivery, and reports to
 * the main process over IPC. Started by `holdfast bench` with child_process.fork; several of them
 * share the load because one process may hold 20,000 open files here, and one event loop is
 * quickly the bottleneck of a load generator.
 */
import { checkConnection, PreparedLog, recordDelivery } from './sequence.js'
import { Conn, ConnState, makeClientProtocol, type ClientProtocolImpl, type ConnSink } from './client-protocols.js'
import { encodeHistogram, newHistogram, recordMs } from './histogram.js'
import type { DrainTarget, FromWorker, ToWorker, WorkerResult, WorkerSetup } from './types.js'

function send(msg: FromWorker): void {
  process.send?.(msg)
}

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1
}

class Worker implements ConnSink {
  private readonly conns: Conn[] = []
  /** Connections neither subscribed nor failed yet: swept for the connect timeout. */
  private readonly pending = new Set<Conn>()
  private readonly latency = newHistogram()
  private readonly handshake = newHistogram()
  private readonly ready = newHistogram()
  private readonly failures: Record<string, number> = {}
  private readonly disconnected: Record<string, number> = {}
  private delivered = 0
  private subscribed_ = 0
  private open_ = 0
  private failed = 0
  private finished = false
  private batchLeft = 0
  private batchOpening = false
  private drainTargets: DrainTarget[] | undefined
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly setup: WorkerSetup,
    private readonly protocol: ClientProtocolImpl,
  ) {
    // One sweep for every connection instead of a timer each: at 10k connections a timer per
    // connection is itself measurable load on the generator.
    this.sweeper = setInterval(() => this.sweep(), 500)
  }

  deliver(c: Conn, seq: number, t: number, now: number): void {
    if (this.finished) return
    recordMs(this.latency, now - t)
    this.delivered++
    recordDelivery(c, seq, t)
  }

  handshaken(c: Conn): void {
    if (c.state !== ConnState.Connecting) return
    c.state = ConnState.Handshaken
    recordMs(this.handshake, performance.now() - c.startAt)
  }

  subscribed(c: Conn): void {
    if (c.state === ConnState.Subscribed || c.state === ConnState.Done) return
    if (c.state === ConnState.Connecting) this.handshaken(c)
    c.state = ConnState.Subscribed
    c.ackAt = performance.timeOrigin + performance.now()
    recordMs(this.ready, performance.now() - c.startAt)
    this.subscribed_++
    this.open_++
    this.settle(c)
  }

  ended(c: Conn, reason: string): void {
    if (c.state === ConnState.Done) return
    const was = c.state
    c.state = ConnState.Done
    if (was === ConnState.Subscribed) {
      this.open_--
      c.closeAt = performance.timeOrigin + performance.now()
      if (!this.finished) count(this.disconnected, reason)
      return
    }
    this.failed++
    count(this.failures, reason)
    c.sock?.close()
    this.settle(c)
  }

  private settle(c: Conn): void {
    if (!this.pending.delete(c)) return
    this.batchLeft--
    this.maybeOpened()
  }

  private maybeOpened(): void {
    if (!this.batchOpening && this.batchLeft === 0) send({ type: 'opened', connected: this.subscribed_, failed: this.failed })
  }

  private sweep(): void {
    const limit = performance.now() - this.setup.connectTimeoutMs
    for (const c of this.pending) {
      if (c.startAt < limit) {
        this.ended(c, 'timeout')
        const s = c.sock as { terminate?: () => void } | undefined
        s?.terminate?.()
      }
    }
  }

  /** Open `n` connections at `perSecond`, spread over time so the server sees a ramp, not a burst. */
  open(n: number, perSecond: number): void {
    this.batchLeft += n
    this.batchOpening = true
    const t0 = performance.now()
    let opened = 0
    const { workerId, workers, channels, sourceIps } = this.setup
    const tick = (): void => {
      const due = Math.min(n, Math.ceil(((performance.now() - t0) / 1000) * perSecond))
      while (opened < due) {
        const global = workerId + this.conns.length * workers
        const c = new Conn(global % channels.length, performance.now())
        this.conns.push(c)
        this.pending.add(c)
        opened++
        try {
          this.protocol.open(c, sourceIps[global % sourceIps.length] as string)
        } catch (err) {
          this.ended(c, `error ${(err as Error).message}`)
        }
      }
      if (opened < n) {
        setTimeout(tick, 5)
        return
      }
      this.batchOpening = false
      this.maybeOpened()
    }
    tick()
  }

  drain(targets: DrainTarget[]): void {
    this.drainTargets = targets
  }

  /** Open connections that have not received their channel's last publication yet. */
  private behind(): number {
    const targets = this.drainTargets
    if (targets === undefined) return -1
    let n = 0
    for (const c of this.conns) {
      if (c.state !== ConnState.Subscribed) continue
      const target = targets[c.ch]
      // Nothing published, or subscribed after the last publication: nothing to wait for.
      if (target === undefined || target.count === 0 || !(c.ackAt <= target.t)) continue
      if (c.next < target.count) n++
    }
    return n
  }

  tick(): void {
    const latency = encodeHistogram(this.latency)
    this.latency.reset()
    const cpu = process.cpuUsage()
    send({ type: 'tick', delivered: this.delivered, open: this.open_, failed: this.failed, latency, cpuUs: cpu.user + cpu.system, behind: this.behind() })
  }

  finish(logs: Float64Array[], quiescent: boolean): void {
    this.tick() // the deliveries since the last sample belong to the run
    this.finished = true
    clearInterval(this.sweeper)
    const prepared = logs.map((t) => new PreparedLog(t))
    let owed = 0
    let lost = 0
    let inFlight = 0
    let cutOff = 0
    let dups = 0
    let outOfOrder = 0
    let overflow = 0
    for (const c of this.conns) {
      dups += c.dups
      outOfOrder += c.outOfOrder
      if (c.overflow) overflow++
      const log = prepared[c.ch]
      if (log === undefined) continue
      const v = checkConnection(c, log, quiescent)
      owed += v.owed
      lost += v.lost
      inFlight += v.inFlight
      cutOff += v.cutOff
    }
    const cpu = process.cpuUsage()
    const result: WorkerResult = {
      type: 'result',
      attempted: this.conns.length,
      connected: this.subscribed_,
      failed: this.failed,
      failures: this.failures,
      disconnected: this.disconnected,
      delivered: this.delivered,
      owed,
      lost,
      inFlight,
      cutOff,
      duplicated: dups,
      outOfOrder,
      checkerOverflow: overflow,
      handshake: encodeHistogram(this.handshake),
      ready: encodeHistogram(this.ready),
      cpuUs: cpu.user + cpu.system,
    }
    send(result)
  }
}

let worker: Worker | undefined

process.on('message', (msg: ToWorker) => {
  try {
    if (msg.type === 'setup') {
      void makeClientProtocol(msg.setup, {
        deliver: (...a) => worker?.deliver(...a),
        handshaken: (c) => worker?.handshaken(c),
        subscribed: (c) => worker?.subscribed(c),
        ended: (c, r) => worker?.ended(c, r),
      }).then(
        (protocol) => {
          worker = new Worker(msg.setup, protocol)
          send({ type: 'ready' })
        },
        (err: unknown) => send({ type: 'error', message: (err as Error).message }),
      )
    } else if (worker === undefined) send({ type: 'error', message: `"${msg.type}" before setup` })
    else if (msg.type === 'open') worker.open(msg.count, msg.perSecond)
    else if (msg.type === 'sample') worker.tick()
    else if (msg.type === 'drain') worker.drain(msg.last)
    else if (msg.type === 'finish') worker.finish(msg.logs.map((l) => l.t), msg.quiescent)
  } catch (err) {
    send({ type: 'error', message: (err as Error).stack ?? String(err) })
  }
})

// The main process owns the run: when it goes (done, crashed, Ctrl-C), so do we and our sockets.
process.on('disconnect', () => process.exit(0))
