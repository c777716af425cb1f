/**
 * A steady load of subscribed clients and publishers in separate client processes
 * (load-client.ts), against any WebSocket URL, and its verdict afterwards: every subscriber held to
 * exactly-once, in-order delivery of every acknowledged publication of its channel, and the
 * reconnects measured (success, retries, peak handshakes and closes in any 100 ms window). Used by
 * the rolling reload scenario (reload-scenario.ts) and the container rollout (test/deploy/).
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { until, type Cleanup } from './cluster.js'
import { keyOf, totals, type DeliveryReport } from './delivery.js'
import type { Acked, ChildMessage, ClientStats, LoadStart, ParentMessage, Progress, Report } from './load-client.js'

const LOAD_CLIENT = fileURLToPath(new URL('./load-client.ts', import.meta.url))
export const now = (): number => performance.timeOrigin + performance.now()

export interface LoadOptions {
  /** Where the clients connect (a node, a primary's port, a load balancer). */
  url: string
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
  /** Source addresses for the subscribers (127.0.0.x), spread over them in turn. @default the OS's choice */
  localAddresses?: string[]
  /** Client options for every client (a token, reconnect delays). */
  clientOptions?: LoadStart['clientOptions']
}

/** What the clients saw, from a moment (the action) on, and what they received. */
export interface LoadOutcome {
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

export class ClientProcess {
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

export function split(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0)
}

/** The running load: client processes subscribed and publishing. */
export class Load {
  readonly kids: ClientProcess[]
  readonly opts: LoadOptions

  private constructor(kids: ClientProcess[], opts: LoadOptions) {
    this.kids = kids
    this.opts = opts
  }

  /** Fork the client processes, subscribe every client, and start publishing. */
  static async start(cleanup: Cleanup, opts: LoadOptions): Promise<Load> {
    const processes = opts.processes ?? 2
    const publishers = opts.publishers ?? 4
    const rate = opts.rate ?? 200
    if (publishers % processes !== 0) throw new TypeError('publishers must split evenly over the client processes')
    const kids = Array.from({ length: processes }, () => new ClientProcess(cleanup))
    // Every publisher publishes once per tick: `publishers` per tick make `rate` per second.
    const everyMs = (1000 * publishers) / rate
    await Promise.all(
      kids.map((k, i) => {
        const m: LoadStart = {
          type: 'start',
          url: opts.url,
          name: `c${i}`,
          clients: split(opts.clients, processes, i),
          channels: opts.channels ?? 10,
          channelPrefix: 'load-',
          publishers: publishers / processes,
          publishEveryMs: everyMs,
          ...(opts.localAddresses === undefined ? {} : { localAddresses: opts.localAddresses }),
          ...(opts.clientOptions === undefined ? {} : { clientOptions: opts.clientOptions }),
        }
        const subscribed = k.next('subscribed', 120_000)
        k.send(m)
        return subscribed
      }),
    )
    for (const k of kids) k.send({ type: 'publish' })
    return new Load(kids, opts)
  }

  /** Publications acknowledged so far, over every process. */
  acked(): number {
    return this.kids.reduce((n, k) => n + k.progress.acked, 0)
  }

  /** Wait until `n` more publications per client process have been acknowledged. */
  async publishMore(n: number, what: string, ms = 60_000): Promise<void> {
    const target = this.acked() + n * this.kids.length
    await until(what, () => this.acked() >= target, ms)
  }

  /**
   * Wait until every client is subscribed again, by reports taken well after `since`: a client whose
   * socket the server has just closed may not have noticed yet, and an earlier report would still
   * call it subscribed.
   */
  async allBack(since: number, ms = 120_000): Promise<void> {
    const fresh = since + 200
    const processes = this.kids.length
    await until('every client back and subscribed', () => this.kids.every((k, i) => k.progressAt > fresh && k.progress.subscribed === split(this.opts.clients, processes, i)), ms)
  }

  /** Stop publishing, let every subscriber check itself against what was acknowledged, and sum up from `actionAt` on. */
  async finish(actionAt: number): Promise<LoadOutcome> {
    const acks = await Promise.all(
      this.kids.map((k) => {
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
      this.kids.map((k) => {
        const p = k.next('report', 90_000)
        k.send({ type: 'expect', byChannel, timeoutMs: 60_000 })
        return p
      }),
    )) as Report[]
    for (const k of this.kids) k.send({ type: 'exit' })

    const clients: ClientStats[] = reports.flatMap((r) => r.clients)
    // Every handshake from the action on: after it, nothing else makes clients reconnect.
    const times = clients.flatMap((c) => c.connectTimes.filter((t) => t >= actionAt))
    const closeTimes = clients.flatMap((c) => c.disconnectTimes.filter((t) => t >= actionAt))
    const moved = clients.filter((c) => c.connectTimes.some((t) => t >= actionAt) || !c.endedConnected)
    return {
      clients: clients.length,
      publications,
      failedPublishes,
      delivery: totals(reports.flatMap((r) => r.deliveries)),
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
    }
  }
}

/** One line per figure, under `title`; `allBackMs` and `actionMs` from the action on. */
export function describeOutcome(title: string, r: LoadOutcome & { allBackMs: number; actionMs: number }): string {
  const d = r.delivery
  return [
    `${title}, ${r.clients} clients: ${r.publications} publications acknowledged (${r.failedPublishes} rejected)`,
    `  deliveries: ${d.delivered} of ${d.expected} expected; lost ${d.lost}, duplicated ${d.duplicates}, out of order ${d.outOfOrder}, unexpected ${d.unexpected}; ${r.incomplete} subscribers incomplete`,
    `  connections: ${r.moved} clients moved, ${r.movedBack} back (${r.moved === 0 ? 100 : ((100 * r.movedBack) / r.moved).toFixed(2)}% success), ${r.retries} retried attempts; ${r.endedConnected}/${r.clients} connected at the end`,
    `  recovery: ${r.unrecovered} resubscribes with recovered:false; ${r.notResumed} reconnects without their session`,
    `  handshakes: ${r.handshakes} in ${(r.allBackMs / 1000).toFixed(1)} s, peak ${r.peakPer100ms} per 100 ms (closes: ${r.closes}, peak ${r.closePeakPer100ms} per 100 ms); action took ${(r.actionMs / 1000).toFixed(1)} s`,
  ].join('\n')
}

/** Nothing lost, nothing duplicated, every client back and every resubscribe recovered (`why` explains a failure). */
export function assertOutcome(r: LoadOutcome, clients: number, why: string): void {
  const d = r.delivery
  assert.equal(r.failedPublishes, 0, 'every publish acknowledged')
  assert.ok(r.publications >= 800, `a steady load was published (${r.publications})`)
  assert.deepEqual(
    { lost: d.lost, duplicates: d.duplicates, outOfOrder: d.outOfOrder, unexpected: d.unexpected, incomplete: r.incomplete },
    { lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, incomplete: 0 },
    why,
  )
  assert.equal(d.delivered, d.expected)
  assert.equal(r.endedConnected, clients, 'every client ends connected')
  assert.equal(r.endedSubscribed, clients)
  assert.equal(r.movedBack, r.moved, 'connection success rate 100%')
  assert.equal(r.unrecovered, 0, 'every resubscribe recovered')
}
