/**
 * The load scenario of issue 5, shared by test/operations/*.test.ts (modest sizes) and
 * bench/rolling-reload.ts (larger): `holdfast serve --workers N` under a steady load of subscribed
 * clients and publishers in separate client processes; then a rolling reload (SIGHUP) or a kill -9
 * of one worker; then every subscriber is held to exactly-once delivery of every acknowledged
 * publication of its channel, and the reconnects are measured: success, retries, and the peak
 * number of handshakes in any 100 ms window.
 */
import { OPEN_LIMITS, ServeCluster, type Cleanup } from './cluster.js'
import { assertOutcome, describeOutcome, Load, now, type LoadOutcome } from './load.js'

export { buckets, peakInWindow } from './load.js'

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

export interface ScenarioResult extends LoadOutcome {
  action: 'reload' | 'kill'
  drainMs: number
  /** From the signal to the primary's "rolling reload finished" (reload) or the replacement ready (kill). */
  actionMs: number
  /** From the signal until every client was subscribed again. */
  allBackMs: number
  workersBefore: number[]
  workersAfter: number[]
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

  const load = await Load.start(cleanup, { url: cluster.wsUrl, clients: opts.clients, processes, channels, publishers, rate })
  log(`${opts.clients} clients subscribed to ${channels} channels; publishing ${rate}/s from ${publishers} clients`)
  await load.publishMore(warmup, `${warmup * processes} publications before the action`)

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
  await load.allBack(now())
  const allBackMs = now() - actionAt
  const workersAfter = cluster.workerPids()
  log(`${opts.action}: done after ${(actionMs / 1000).toFixed(1)} s, every client back after ${(allBackMs / 1000).toFixed(1)} s; workers ${workersAfter.join(', ')}`)
  await load.publishMore(tail, `${tail * processes} publications after the action`)
  const outcome = await load.finish(actionAt)
  return { ...outcome, action: opts.action, drainMs: opts.drainMs, actionMs, allBackMs, workersBefore, workersAfter }
}

/** One line per figure, for test output and the bench. */
export function describeResult(r: ScenarioResult): string {
  return describeOutcome(`${r.action} (drainMs ${r.drainMs})`, r)
}

/**
 * The guarantees every scenario is held to: every publish acknowledged, every acknowledged
 * publication delivered once and in order to every subscriber of its channel, every client
 * connected and subscribed at the end (a client that lost its connection got one back: 100%), and
 * every resubscribe recovered. Retried attempts are reported, not failures.
 */
export function assertNothingLost(r: ScenarioResult, clients: number): void {
  assertOutcome(r, clients, describeResult(r))
}
