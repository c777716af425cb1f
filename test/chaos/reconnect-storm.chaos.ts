/**
 * Scenario 7 — a reconnect storm: N clients on one node, which dies (kill -9).
 *
 * Three `serve --engine redis` nodes. The clients run in four processes (20,000 open files per
 * process here), each from its own source address 127.0.0.1x, all connected to n1 with the URL
 * list [n1, n2, n3] or [n1, n3, n2], subscribed to 100 channels that a publisher on the survivors
 * keeps publishing to. n1 is killed; every client must reconnect to a survivor, resume its session
 * there and resubscribe with `recovered: true`. Measured: the time from the kill until the last
 * client is resubscribed and recovered, the spread, and the attempts it took. Then every client's
 * history is checked (in its own process) against the acks: lost 0, duplicated 0.
 *
 * Client defaults on purpose (500 ms minimum backoff, 20 s cap, full jitter): the storm is what
 * an application's clients would make.
 *
 * Size: HOLDFAST_CHAOS_STORM_CLIENTS, 2,000 by default so that `npm run test:chaos` stays within
 * its budget on a shared 2-core machine; the full-size run is 10,000 (docs/reliability.md):
 *   HOLDFAST_CHAOS_STORM_CLIENTS=10000 node --import tsx test/chaos/run.ts test/chaos/reconnect-storm.chaos.ts
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, it, type TestContext } from 'node:test'
import { DEEP_HISTORY, latency, makeClient, OPEN_LIMITS, REDIS_SERVER, requireBinary, result, round, sleep, startFleet, startRedis, until } from './harness.js'
import { assertClean, checkAcks, emptyReport, mergeReports, now, Publisher, summary, type Ack } from './history.js'
import type { StormCommand, StormMessage, StormProgress, StormReport } from './storm-client.js'

const CLIENTS = Number(process.env['HOLDFAST_CHAOS_STORM_CLIENTS'] ?? 2000)
const PROCESSES = 4
const CHANNELS = 100
const PUBLISH_EVERY_MS = 10

class Worker {
  readonly child: ChildProcess
  last: StormProgress = { type: 'progress', connected: 0, subscribed: 0, victims: -1, resubscribed: 0 }
  readonly #waiters: Array<{ type: StormMessage['type']; resolve: (m: StormMessage) => void }> = []
  #failure: Error | undefined

  constructor(t: TestContext) {
    this.child = fork(fileURLToPath(new URL('./storm-client.ts', import.meta.url)), [], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    t.after(() => void this.child.kill('SIGKILL'))
    this.child.on('message', (m: StormMessage) => {
      if (m.type === 'progress') this.last = m
      if (m.type === 'error') this.#failure = new Error(`storm client process: ${m.message}`)
      const i = this.#waiters.findIndex((w) => w.type === m.type)
      if (i !== -1) this.#waiters.splice(i, 1)[0]?.resolve(m)
    })
    this.child.on('exit', (code, signal) => {
      this.#failure ??= new Error(`a storm client process exited (code ${code}, signal ${signal})`)
    })
  }

  send(m: StormCommand): void {
    this.child.send(m)
  }

  /** The next message of this type; rejects after `ms`, or when the process reported an error. */
  next<T extends StormMessage['type']>(type: T, ms: number): Promise<Extract<StormMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(this.#failure ?? new Error(`no ${type} from a storm client process within ${ms} ms`)), ms)
      const poll = setInterval(() => {
        if (this.#failure === undefined) return
        clearTimeout(timer)
        clearInterval(poll)
        reject(this.#failure)
      }, 100)
      this.#waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer)
          clearInterval(poll)
          resolve(m as Extract<StormMessage, { type: T }>)
        },
      })
    })
  }
}

describe('chaos: reconnect storm', () => {
  it(`${CLIENTS} clients of a node killed with kill -9 reconnect to the survivors and recover; lost 0, duplicated 0`, async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const nodes = await startFleet(t, redis.url, 3, { config: { ...OPEN_LIMITS, ...DEEP_HISTORY } })
    const [n1, n2, n3] = nodes
    assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined)

    const workers = Array.from({ length: PROCESSES }, () => new Worker(t))
    const per = Math.ceil(CLIENTS / PROCESSES)
    const connectFrom = now()
    for (const [p, w] of workers.entries()) {
      w.send({
        type: 'start',
        urls: [
          [n1.wsUrl, n2.wsUrl, n3.wsUrl],
          [n1.wsUrl, n3.wsUrl, n2.wsUrl],
        ],
        count: Math.min(per, CLIENTS - p * per),
        localAddress: `127.0.0.${11 + p}`,
        channels: CHANNELS,
        channelPrefix: 'storm:',
        firstIndex: p * per,
        inFlight: 50,
        clientOptions: {},
      })
    }
    await Promise.all(workers.map((w) => w.next('ready', 150_000)))
    const connectedInMs = now() - connectFrom
    t.diagnostic(`${CLIENTS} clients connected and subscribed on n1 in ${Math.round(connectedInMs)} ms`)

    // The survivors are swamped for the length of the storm, the publisher's node included: its
    // publishes wait in the SDK's queue meanwhile, and must not time out (30 s by default) or
    // overflow it (1,000), so that every publish ends acked and the history stays exact.
    const publisher = new Publisher(makeClient(t, [n2.wsUrl, n3.wsUrl], { commandTimeoutMs: 300_000, maxQueuedCommands: 100_000, maxQueuedBytes: 64 << 20 }), 'p0')
    publisher.client.connect()
    publisher.start(
      Array.from({ length: CHANNELS }, (_, i) => `storm:${i}`),
      PUBLISH_EVERY_MS,
    )
    await sleep(2000)

    const killedAt = now()
    for (const w of workers) w.send({ type: 'mark', at: killedAt, node: n1.id })
    await n1.kill('SIGKILL')
    const sum = (k: 'connected' | 'victims' | 'resubscribed'): number => workers.reduce((n, w) => n + w.last[k], 0)
    await until('every client process to count the clients of the killed node', () => workers.every((w) => w.last.victims >= 0), 5000)
    const victims = sum('victims')
    // A busy node may time out some first connects (they then start on a survivor); the storm must still be most of them.
    assert.ok(victims >= 0.8 * CLIENTS, `most clients were on the killed node (${victims} of ${CLIENTS})`)
    const ticker = setInterval(() => t.diagnostic(`+${Math.round(now() - killedAt)} ms: ${sum('connected')} connected, ${sum('resubscribed')} of ${victims} resubscribed`), 5000)
    t.after(() => clearInterval(ticker))
    await until(`all ${victims} clients of the killed node to resubscribe on a survivor`, () => sum('resubscribed') >= victims, 150_000, 100)
    clearInterval(ticker)

    // Publish on, so that recovery had to merge with the live feed everywhere.
    await sleep(2000)
    const acks: Ack[] = await publisher.stop(30_000)
    assert.deepEqual(publisher.errors.slice(0, 5), [], 'every publish was acked')
    const reports = await Promise.all(
      workers.map((w) => {
        const r = w.next('report', 90_000)
        w.send({ type: 'check', acks, timeoutMs: 60_000 })
        return r
      }),
    )
    const report = checkAcks(acks, emptyReport())
    for (const r of reports) mergeReports(report, r.report)
    const resub = latency(reports.flatMap((r: StormReport) => r.resubscribedMs))
    const attempts = reports.flatMap((r) => r.attempts)
    const notResumed = reports.reduce((n, r) => n + r.notResumed, 0)
    const short = reports.reduce((n, r) => n + r.short, 0)
    t.diagnostic(summary(report))
    t.diagnostic(`resubscribed after the kill: ${JSON.stringify(resub)}; attempts per client: mean ${round(attempts.reduce((a, b) => a + b, 0) / attempts.length, 2)}, max ${Math.max(...attempts)}`)
    result(t, 'reconnect-storm', {
      clients: CLIENTS,
      onKilledNode: victims,
      processes: PROCESSES,
      initialConnectMs: Math.round(connectedInMs),
      allResubscribedMs: resub.max,
      resubscribedP50Ms: resub.p50,
      resubscribedP99Ms: resub.p99,
      meanAttempts: round(attempts.reduce((a, b) => a + b, 0) / attempts.length, 2),
      published: acks.length,
      deliveriesChecked: report.delivered,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assert.equal(short, 0, 'every client caught up with the newest publication')
    assert.equal(resub.n, victims)
    assert.ok(!Number.isNaN(resub.max), 'every client of the killed node resubscribed')
    assert.equal(notResumed, 0, 'every client resumed its session on a survivor')
    assertClean(report)
    for (const w of workers) w.send({ type: 'exit' })
  })
})
