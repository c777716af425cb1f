import type { ChildProcess } from 'node:child_process'
import { forkSibling, killChild } from './child.js'
import { addEncoded, newHistogram, type Histogram } from './histogram.js'
import type { ChannelLog, DrainTarget, FromWorker, ToWorker, WorkerResult, WorkerSetup, WorkerTick } from './types.js'

/** What the workers said at the latest sample, summed; `latency` holds the deliveries since the previous one. */
export interface PoolSample {
  delivered: number
  open: number
  failed: number
  cpuUs: number
  latency: Histogram
  /** Every worker answered this sample in time; otherwise some figures are from its previous tick. */
  complete: boolean
  /** While draining: connections short of their channel's last publication, summed; null before. */
  behind: number | null
}

interface Slot {
  child: ChildProcess
  last: WorkerTick | undefined
  ticks: number
  waiters: Array<{ type: FromWorker['type']; resolve: (m: FromWorker) => void; reject: (e: Error) => void }>
}

const READY_TIMEOUT_MS = 30_000
/** A worker too busy to answer a sample within this is summed from its previous tick. */
const SAMPLE_WAIT_MS = 2_000

/**
 * The worker processes, seen from the main process. Global connection `i` belongs to worker
 * `i % workers`, its channel is `i % channels` and its source address `i % sourceIps` — the same
 * rule in every process, so a run's layout does not depend on timing.
 */
export class WorkerPool {
  private readonly slots: Slot[]
  private opened = 0
  private rounds = 0
  private acc = newHistogram()
  private failure: Error | undefined

  private constructor(n: number) {
    this.slots = Array.from({ length: n }, () => {
      const slot: Slot = { child: forkSibling('worker'), last: undefined, ticks: 0, waiters: [] }
      slot.child.on('message', (m: FromWorker) => this.onMessage(slot, m))
      slot.child.on('exit', (code, signal) => this.fail(new Error(`a bench worker exited (code ${code}, signal ${signal})`)))
      slot.child.on('error', (err) => this.fail(err))
      return slot
    })
  }

  static async start(n: number, setup: Omit<WorkerSetup, 'workerId' | 'workers'>): Promise<WorkerPool> {
    const pool = new WorkerPool(n)
    try {
      await Promise.all(
        pool.slots.map((slot, workerId) => {
          const ready = pool.wait(slot, 'ready', READY_TIMEOUT_MS)
          pool.post(slot, { type: 'setup', setup: { ...setup, workerId, workers: n } })
          return ready
        }),
      )
    } catch (err) {
      await pool.close()
      throw err
    }
    return pool
  }

  get size(): number {
    return this.slots.length
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'error') {
      this.fail(new Error(`bench worker: ${m.message}`))
      return
    }
    if (m.type === 'tick') {
      slot.last = m
      slot.ticks++
      addEncoded(this.acc, m.latency)
    }
    const i = slot.waiters.findIndex((w) => w.type === m.type)
    if (i !== -1) slot.waiters.splice(i, 1)[0]?.resolve(m)
  }

  private fail(err: Error): void {
    this.failure ??= err
    for (const slot of this.slots) {
      for (const w of slot.waiters.splice(0)) w.reject(err)
    }
  }

  private post(slot: Slot, msg: ToWorker): void {
    if (slot.child.connected) slot.child.send(msg)
  }

  private wait(slot: Slot, type: FromWorker['type'], ms: number | undefined): Promise<FromWorker> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    return new Promise<FromWorker>((resolve, reject) => {
      const w = { type, resolve, reject }
      slot.waiters.push(w)
      if (ms !== undefined) {
        setTimeout(() => {
          const i = slot.waiters.indexOf(w)
          if (i === -1) return
          slot.waiters.splice(i, 1)
          reject(new Error(`a bench worker did not answer "${type}" within ${ms} ms`))
        }, ms).unref()
      }
    })
  }

  /** Open `count` more connections at `perSecond` in all; resolves when each has subscribed or failed. */
  async open(count: number, perSecond: number): Promise<{ connected: number; failed: number }> {
    const n = this.slots.length
    const from = this.opened
    this.opened += count
    const waits: Array<Promise<FromWorker>> = []
    this.slots.forEach((slot, k) => {
      // Global indices from..from+count-1 that fall on worker k.
      const mine = Math.ceil((from + count - k) / n) - Math.ceil((from - k) / n)
      if (mine <= 0) return
      waits.push(this.wait(slot, 'opened', undefined))
      this.post(slot, { type: 'open', count: mine, perSecond: (perSecond * mine) / count })
    })
    await Promise.all(waits)
    const s = await this.sample()
    return { connected: s.open, failed: s.failed }
  }

  /** Ask every worker for its counters and latency since the previous sample. */
  async sample(): Promise<PoolSample> {
    const round = ++this.rounds
    const pending = this.slots.filter((slot) => slot.child.connected)
    for (const slot of pending) this.post(slot, { type: 'sample' })
    const answers = await Promise.all(
      pending.map((slot) =>
        slot.ticks >= round
          ? true
          : this.wait(slot, 'tick', SAMPLE_WAIT_MS).then(
              () => true,
              () => false,
            ),
      ),
    )
    const complete = answers.every(Boolean) && pending.length === this.slots.length
    if (this.failure !== undefined) throw this.failure
    // A late tick of an earlier round still counts: rounds and ticks are kept in step.
    for (const slot of this.slots) slot.ticks = Math.max(slot.ticks, round)
    const latency = this.acc
    this.acc = newHistogram()
    const out: PoolSample = { delivered: 0, open: 0, failed: 0, cpuUs: 0, latency, complete, behind: null }
    // Known only once every worker counts it (a tick from before the drain message says -1).
    if (this.slots.every((slot) => (slot.last?.behind ?? -1) >= 0)) out.behind = this.slots.reduce((n, slot) => n + (slot.last?.behind ?? 0), 0)
    for (const slot of this.slots) {
      out.delivered += slot.last?.delivered ?? 0
      out.open += slot.last?.open ?? 0
      out.failed += slot.last?.failed ?? 0
      out.cpuUs += slot.last?.cpuUs ?? 0
    }
    return out
  }

  /** Publishing stopped: let the workers count who has not caught up with `last`. */
  drain(last: DrainTarget[]): void {
    for (const slot of this.slots) this.post(slot, { type: 'drain', last })
  }

  /** Stop counting and check every connection against the publication logs. */
  async finish(logs: ChannelLog[], quiescent: boolean): Promise<{ results: WorkerResult[]; last: Histogram }> {
    const results = await Promise.all(
      this.slots.map((slot) => {
        const r = this.wait(slot, 'result', 120_000)
        this.post(slot, { type: 'finish', logs, quiescent })
        return r as Promise<WorkerResult>
      }),
    )
    // finish() sends one last tick before its result: deliveries since the final sample.
    const last = this.acc
    this.acc = newHistogram()
    return { results, last }
  }

  async close(): Promise<void> {
    for (const slot of this.slots) slot.child.removeAllListeners('exit')
    await Promise.all(this.slots.map((slot) => killChild(slot.child)))
  }
}
