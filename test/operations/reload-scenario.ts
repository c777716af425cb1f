/**
 * The load scenario of issue 5, shared by test/operations/*.test.ts (modest sizes) and
 * bench/rolling-reload.ts (larger): `holdfast serve --workers N` under a steady load of subscribed
 * clients and publishers in separate client processes; then a rolling reload (SIGHUP) or a kill -9
 * of one worker; then every subscriber is held to exactly-once delivery of every acknowledged
 * publication of its channel, and the reconnects are measured: success, retries, and the peak
 * number of handshakes in any 100 ms window.
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { OPEN_LIMITS, ServeCluster, until, type Cleanup } from './cluster.js'
import { keyOf, totals, type DeliveryReport } from './delivery.js'
import type { Acked, ChildMessage, ClientStats, LoadStart, ParentMessage, Progress, Report } from './load-client.js'

const LOAD_CLIENT = fileURLToPath(new URL('./load-client.ts', import.meta.url))
const now = (): number => performance.timeOrigin + performance.now()

export interface ScenarioOptions {
  /** Subscribed clients in all (split over the client processes). */
  clients: number
  /** Client processes. @default 2 */
  processes?: number
  /** Channels; subscriber i is on channel i % channels. @default 10 */
  channels?: number
  /** Publishing clients in all (split over the processes). @default 4 */
  publishers?: number
  /** Publications per second in all. @default 200 */
  rate?: number
  /** @default 2 */
  workers?: number
  /** The workers' drain window (`drainMs` in their config; 0: every client told at once). */
  drainMs: number
  /** What happens under load. */
  action: 'reload' | 'kill'
  /** Publishing before the action, in acknowledged publications per client process. @default 200 */
  warmup?: number
  /** Publishing after every client is back, likewise. @default 200 */
  tail?: number
  /** Progress lines go here. */
  log?: (line: string) => void
}

export interface ScenarioResult {
  action: 'reload' | 'kill'
  drainMs: number
  clients: number
  /** Publications acknowledged to their publishers. */
  publications: number
  /** Publish calls that were rejected (never expected). */
  failedPublishes: number
  delivery: DeliveryReport & { subscribers: number; imperfect: number }
  /** Subscribers still missing publications when the wait ended. */
  incomplete: number
  endedConnected: number
  endedSubscribed: number
  /** Clients that lost their connection during the action. */
  moved: number
  /** Of those, the ones connected again at the end. */
  movedBack: number
  /** Connection attempts that failed and were retried (a refused or dropped attempt). */
  retries: number
  /** Resubscribes with `recovered: false`. */
  unrecovered: number
  /** Reconnects that did not resume their session. */
  notResumed: number
  /** Handshakes (`connected` events) from the action on. */
  handshakes: number
  /** The most handshakes in any 100 ms window over that period. */
  peakPer100ms: number
  /** Handshakes per 100 ms bucket from the action on (bucket 0: its first 100 ms). */
  timeline: number[]
  /** Connections lost from the action on (the drain's closes, as the clients saw them). */
  closes: number
  /** The most closes in any 100 ms window: how well the server spread them. */
  closePeakPer100ms: number
  /** From the signal to the primary's "rolling reload finished" (reload) or the replacement ready (kill). */
  actionMs: number
  /** From the signal until every client was subscribed again. */
  allBackMs: number
  workersBefore: number[]
  workersAfter: number[]
}

/** The most timestamps within any window of `windowMs` (sorted two-pointer sweep). */
export function peakInWindow(times: readonly number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b)
  let best = 0
  let i = 0
  for (let j = 0; j < t.length; j++) {
    while ((t[j] as number) - (t[i] as number) >= windowMs) i++
    best = Math.max(best, j - i + 1)
  }
  return best
}

/** Counts per `size` ms bucket from 0 to the last value. */
export function buckets(offsets: readonly number[], size: number): number[] {
  const out: number[] = []
  for (const o of offsets) {
    const b = Math.floor(o / size)
    while (out.length <= b) out.push(0)
    out[b] = (out[b] as number) + 1
  }
  return out
}

class ClientProcess {
  readonly child: ChildProcess
  progress: Progress = { type: 'progress', acked: 0, connected: 0, subscribed: 0 }
  /** When the last progress report arrived. */
  progressAt = 0
  readonly #waiters = new Map<string, (m: ChildMessage) => void>()
  error: string | undefined

  constructor(cleanup: Cleanup) {
    // Not the test runner's flags (--test would make the child a test file): tsx and the source condition only.
    this.child = fork(LOAD_CLIENT, [], { execArgv: ['--conditions=source', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    cleanup.after(() => {
      if (this.child.exitCode === null) this.child.kill('SIGKILL')
    })
    this.child.on('message', (raw: unknown) => {
      const m = raw as ChildMessage
      if (m.type === 'progress') {
        this.progress = m
        this.progressAt = now()
      }
      else if (m.type === 'error') this.error = m.message
      const w = this.#waiters.get(m.type)
      if (w !== undefined) {
        this.#waiters.delete(m.type)
        w(m)
      }
    })
  }

  send(m: ParentMessage): void {
    this.child.send(m)
  }

  /** The next message of this type (rejects if the process fails first). */
  next<T extends ChildMessage['type']>(type: T, ms: number): Promise<Extract<ChildMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client process: no ${type} within ${ms} ms${this.error === undefined ? '' : `: ${this.error}`}`)), ms)
      const onExit = (code: number | null): void => reject(new Error(`client process exited (${code}) waiting for ${type}: ${this.error ?? ''}`))
      this.child.once('exit', onExit)
      this.#waiters.set(type, (m) => {
        clearTimeout(timer)
        this.child.off('exit', onExit)
        resolve(m as Extract<ChildMessage, { type: T }>)
      })
    })
  }
}

function split(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0)
}

export async function runScenario(cleanup: Cleanup, opts: ScenarioOptions): Promise<ScenarioResult> {
  let cluster: ServeCluster | undefined
  try {
    return await scenario(cleanup, opts, (c) => (cluster = c))
  } catch (err) {
    // What the primary and workers said last is what explains a stuck reload.
    const tail = cluster === undefined ? [] : cluster.logs().slice(-25).map((l) => JSON.stringify(l))
    const stderr = cluster?.proc.stderr().slice(-1500) ?? ''
    throw new Error(`${(err as Error).message}\n--- last log lines:\n${tail.join('\n')}\n--- stderr:\n${stderr}`, { cause: err })
  }
}

async function scenario(cleanup: Cleanup, opts: ScenarioOptions, started: (c: ServeCluster) => void): Promise<ScenarioResult> {
  const log = opts.log ?? (() => {})
  const processes = opts.processes ?? 2
  const channels = opts.channels ?? 10
  const publishers = opts.publishers ?? 4
  const rate = opts.rate ?? 200
  const workers = opts.workers ?? 2
  const warmup = opts.warmup ?? 200
  const tail = opts.tail ?? 200
  if (publishers % processes !== 0) throw new TypeError('publishers must split evenly over the client processes')

  const cluster = await ServeCluster.start(cleanup, { workers, config: { ...OPEN_LIMITS, drainMs: opts.drainMs }, args: ['--log-level', 'info'] })
  started(cluster)
  const workersBefore = await cluster.waitForWorkers(workers, 30_000)
  log(`serve --workers ${workers} (drainMs ${opts.drainMs}) at ${cluster.wsUrl}; workers ${workersBefore.join(', ')}`)

  const kids = Array.from({ length: processes }, () => new ClientProcess(cleanup))
  const perProcessPublishers = publishers / processes
  // Every publisher publishes once per tick: `publishers` per tick make `rate` per second.
  const everyMs = (1000 * publishers) / rate
  const subscribing = kids.map((k, i) => {
    const m: LoadStart = {
      type: 'start',
      url: cluster.wsUrl,
      name: `c${i}`,
      clients: split(opts.clients, processes, i),
      channels,
      channelPrefix: 'load-',
      publishers: perProcessPublishers,
      publishEveryMs: everyMs,
    }
    const subscribed = k.next('subscribed', 120_000)
    k.send(m)
    return subscribed
  })
  await Promise.all(subscribing)
  log(`${opts.clients} clients subscribed to ${channels} channels; publishing ${rate}/s from ${publishers} clients`)

  for (const k of kids) k.send({ type: 'publish' })
  const ackedNow = (): number => kids.reduce((n, k) => n + k.progress.acked, 0)
  await until(`${warmup * processes} publications before the action`, () => ackedNow() >= warmup * processes, 60_000)

  const mark = cluster.mark()
  const actionAt = now()
  if (opts.action === 'reload') {
    process.kill(cluster.pid, 'SIGHUP')
    await cluster.waitForLog(mark, /^rolling reload (finished|aborted)/, 180_000)
    if (cluster.linesSince(mark, /^rolling reload aborted/).length > 0) throw new Error('the rolling reload aborted')
  } else {
    const victim = workersBefore[0] as number
    process.kill(victim, 'SIGKILL')
    await cluster.waitForLog(mark, /^worker ready$/, 60_000)
  }
  const actionMs = now() - actionAt
  // Only reports taken well after the action count: a client whose socket the server has just
  // closed may not have noticed yet, and a report from that instant would still call it subscribed.
  const fresh = now() + 200
  await until(
    'every client back and subscribed',
    () => kids.every((k, i) => k.progressAt > fresh && k.progress.subscribed === split(opts.clients, processes, i)),
    120_000,
  )
  const allBackMs = now() - actionAt
  const workersAfter = cluster.workerPids()
  log(`${opts.action}: done after ${(actionMs / 1000).toFixed(1)} s, every client back after ${(allBackMs / 1000).toFixed(1)} s; workers ${workersAfter.join(', ')}`)
  const before = ackedNow()
  await until(`${tail * processes} publications after the action`, () => ackedNow() >= before + tail * processes, 60_000)

  // Stop, collect what was acknowledged, and let every subscriber check itself against it.
  const acks = await Promise.all(
    kids.map((k) => {
      const p = k.next('acked', 60_000)
      k.send({ type: 'stop' })
      return p
    }),
  )
  const byChannel: Record<string, string[]> = {}
  let publications = 0
  let failedPublishes = 0
  for (const a of acks as Acked[]) {
    failedPublishes += a.failed
    for (const [pub, chans] of Object.entries(a.acked)) {
      for (const [ch, seqs] of Object.entries(chans)) {
        const list = (byChannel[ch] ??= [])
        for (const seq of seqs) list.push(keyOf({ pub, seq }))
        publications += seqs.length
      }
    }
  }
  const reports = (await Promise.all(
    kids.map((k) => {
      const p = k.next('report', 90_000)
      k.send({ type: 'expect', byChannel, timeoutMs: 60_000 })
      return p
    }),
  )) as Report[]
  for (const k of kids) k.send({ type: 'exit' })

  const deliveries = reports.flatMap((r) => r.deliveries)
  const clients: ClientStats[] = reports.flatMap((r) => r.clients)
  // Every handshake from the action on: after it, nothing else makes clients reconnect.
  const times = clients.flatMap((c) => c.connectTimes.filter((t) => t >= actionAt))
  const closeTimes = clients.flatMap((c) => c.disconnectTimes.filter((t) => t >= actionAt))
  const moved = clients.filter((c) => c.connectTimes.some((t) => t >= actionAt) || !c.endedConnected)
  return {
    action: opts.action,
    drainMs: opts.drainMs,
    clients: clients.length,
    publications,
    failedPublishes,
    delivery: totals(deliveries),
    incomplete: reports.reduce((n, r) => n + r.incomplete, 0),
    endedConnected: clients.filter((c) => c.endedConnected).length,
    endedSubscribed: clients.filter((c) => c.endedSubscribed).length,
    moved: moved.length,
    movedBack: moved.filter((c) => c.endedConnected).length,
    retries: clients.reduce((n, c) => n + c.failedAttempts, 0),
    unrecovered: clients.reduce((n, c) => n + c.unrecovered, 0),
    notResumed: clients.reduce((n, c) => n + c.notResumed, 0),
    handshakes: times.length,
    peakPer100ms: peakInWindow(times, 100),
    timeline: buckets(times.map((t) => t - actionAt), 100),
    closes: closeTimes.length,
    closePeakPer100ms: peakInWindow(closeTimes, 100),
    actionMs,
    allBackMs,
    workersBefore,
    workersAfter,
  }
}

/** One line per figure, for test output and the bench. */
export function describeResult(r: ScenarioResult): string {
  const d = r.delivery
  return [
    `${r.action} (drainMs ${r.drainMs}), ${r.clients} clients: ${r.publications} publications acknowledged (${r.failedPublishes} rejected)`,
    `  deliveries: ${d.delivered} of ${d.expected} expected; lost ${d.lost}, duplicated ${d.duplicates}, out of order ${d.outOfOrder}, unexpected ${d.unexpected}; ${r.incomplete} subscribers incomplete`,
    `  connections: ${r.moved} clients moved, ${r.movedBack} back (${r.moved === 0 ? 100 : ((100 * r.movedBack) / r.moved).toFixed(2)}% success), ${r.retries} retried attempts; ${r.endedConnected}/${r.clients} connected at the end`,
    `  recovery: ${r.unrecovered} resubscribes with recovered:false; ${r.notResumed} reconnects without their session`,
    `  handshakes: ${r.handshakes} in ${(r.allBackMs / 1000).toFixed(1)} s, peak ${r.peakPer100ms} per 100 ms (closes: ${r.closes}, peak ${r.closePeakPer100ms} per 100 ms); action took ${(r.actionMs / 1000).toFixed(1)} s`,
  ].join('\n')
}

/**
 * The guarantees every scenario is held to: every publish acknowledged, every acknowledged
 * publication delivered once and in order to every subscriber of its channel, every client
 * connected and subscribed at the end (a client that lost its connection got one back: 100%), and
 * every resubscribe recovered. Retried attempts are reported, not failures.
 */
export function assertNothingLost(r: ScenarioResult, clients: number): void {
  const d = r.delivery
  assert.equal(r.failedPublishes, 0, 'every publish acknowledged')
  assert.ok(r.publications >= 800, `a steady load was published (${r.publications})`)
  assert.deepEqual(
    { lost: d.lost, duplicates: d.duplicates, outOfOrder: d.outOfOrder, unexpected: d.unexpected, incomplete: r.incomplete },
    { lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, incomplete: 0 },
    describeResult(r),
  )
  assert.equal(d.delivered, d.expected)
  assert.equal(r.endedConnected, clients, 'every client ends connected')
  assert.equal(r.endedSubscribed, clients)
  assert.equal(r.movedBack, r.moved, 'connection success rate 100%')
  assert.equal(r.unrecovered, 0, 'every resubscribe recovered')
}
