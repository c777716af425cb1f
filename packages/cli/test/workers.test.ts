/**
 * `holdfast serve --workers 2` as real processes: one port, workers that share streams through the
 * primary's engine, a worker killed with -9 and replaced, rolling reloads (SIGHUP and `holdfast
 * reload`) with and without a broken config, and SIGTERM. One primary serves the whole file, each
 * test starting from the state the previous one left (that is what an operator's primary sees).
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { after, before, describe, test, type TestContext } from 'node:test'
import { WebSocket } from 'ws'
import type { WebSocketConstructor } from '@holdfast/client'
import { CloseCodes } from '@holdfast/protocol'
import { alive, OPEN_LIMITS, pidOfNode, ServeCluster, suiteCleanup, until, within, type LogLine } from '../../../test/operations/cluster.js'
import { ackedKeys, checkDeliveries, Publisher, Subscriber } from '../../../test/operations/delivery.js'
import { REDIS_SERVER, requireBinary, startRedis } from '../../../test/multinode/fleet.js'
import { cleanEnv, runCliToEnd } from './helpers.js'

const CONFIG = { ...OPEN_LIMITS, drainMs: 1000 }
/** Quick retries: these tests wait for reconnects, and the default backoff floor is 500 ms. */
const FAST = { minReconnectDelayMs: 50, maxReconnectDelayMs: 300, restartJitterMs: 200 }

/** A port nothing listens on: connections to it are refused at once. */
async function refusedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/**
 * A `ws` WebSocket whose connections can be held off: while the gate is shut, new sockets go to a
 * refused port (the client sees a failed attempt and retries). Lets a test publish while a client
 * is certainly away, so that what it gets afterwards can only come from recovery.
 */
function gatedWebSocket(blockedUrl: string): { gate: { open: boolean }; sockets: WebSocket[]; ctor: WebSocketConstructor } {
  const gate = { open: true }
  const sockets: WebSocket[] = []
  class Gated extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(gate.open ? url : blockedUrl, protocols)
      sockets.push(this)
    }
  }
  return { gate, sockets, ctor: Gated as unknown as WebSocketConstructor }
}

function track<T extends { close(): void }>(t: TestContext, x: T): T {
  t.after(() => x.close())
  return x
}

async function subscribed(subs: readonly Subscriber[], ms = 15_000): Promise<void> {
  await until(`${subs.length} subscriptions`, () => subs.every((s) => s.subscribed), ms)
}

/** Wait until every subscriber holds every acknowledged publication, then hold each to exactly-once. */
async function assertExactlyOnce(subs: readonly Subscriber[], pubs: readonly Publisher[]): Promise<void> {
  for (const p of pubs) assert.deepEqual(p.failed, [], `publisher ${p.name}: every publication acknowledged`)
  const expected = ackedKeys(pubs)
  assert.ok(expected.size > 0)
  await until(`${subs.length} subscribers to receive ${expected.size} publications`, () => subs.every((s) => s.received.length >= expected.size), 20_000).catch(() => {
    // The report below says what is missing.
  })
  subs.forEach((s, i) => {
    const r = checkDeliveries(s.received, s.offsets, expected)
    assert.deepEqual(
      { lost: r.lost, duplicates: r.duplicates, outOfOrder: r.outOfOrder, unexpected: r.unexpected },
      { lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 },
      `subscriber ${i} (node ${s.node}): ${JSON.stringify(r)}`,
    )
  })
}

/** Subscribers connected one after the other until both workers hold some (the primary deals connections round robin). */
async function spreadSubscribers(t: TestContext, cluster: ServeCluster, channel: string, n: number): Promise<Subscriber[]> {
  const subs: Subscriber[] = []
  for (let i = 0; i < n; i++) {
    const s = track(t, new Subscriber(cluster.wsUrl, channel, FAST)).connect()
    subs.push(s)
    await subscribed([s])
  }
  const workers = new Set(subs.map((s) => pidOfNode(s.node ?? '')))
  assert.equal(workers.size, 2, `subscribers on both workers (nodes: ${subs.map((s) => s.node).join(', ')})`)
  return subs
}

describe('holdfast serve --workers 2 (real processes)', () => {
  let cluster: ServeCluster
  const cleanup = suiteCleanup()
  before(async () => {
    cluster = await ServeCluster.start(cleanup, { workers: 2, config: CONFIG })
  })
  after(cleanup.run)

  test('one listening line and pid file; clients on both workers share a stream and recover on the other worker', async (t) => {
    const listening = cluster.proc.stdout().split('\n').filter((l) => l.startsWith('holdfast listening'))
    assert.equal(listening.length, 1, `exactly one listening line: ${JSON.stringify(listening)}`)
    assert.match(listening[0] as string, / engine=memory workers=2$/)
    assert.equal(readFileSync(cluster.pidFile, 'utf8').trim(), String(cluster.pid))
    const workers = await cluster.waitForWorkers(2, 10_000)
    // The primary warns about missing auth once for the fleet, not once per worker (a log line:
    // stderr is not a terminal here).
    assert.equal((cluster.proc.stdout() + cluster.proc.stderr()).match(/NO AUTHENTICATION/g)?.length, 1)

    const subs = await spreadSubscribers(t, cluster, 'share', 4)
    for (const s of subs) assert.ok(workers.includes(pidOfNode(s.node ?? '') ?? -1), `${s.node} is one of the workers ${workers.join(',')}`)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    for (let i = 0; i < 10; i++) await pub.publish('share')

    // A subscriber whose socket dies; while it is certainly away (its reconnects are refused)
    // five more are published; then it may come back, and round robin lands it on the other worker
    // sooner or later: what it missed must come from the stream the workers share.
    const { gate, sockets, ctor } = gatedWebSocket(`ws://127.0.0.1:${await refusedPort()}/ws`)
    const mover = track(t, new Subscriber(cluster.wsUrl, 'share', { ...FAST, WebSocket: ctor })).connect()
    await subscribed([mover])
    const firstWorker = pidOfNode(mover.node ?? '')
    const firstSession = mover.connects[0]?.session
    let rounds = 0
    while (pidOfNode(mover.node ?? '') === firstWorker) {
      assert.ok(++rounds <= 8, `the subscriber reconnected to worker ${firstWorker} ${rounds - 1} times in a row`)
      const before = mover.subscribes.length
      gate.open = false
      ;(sockets.at(-1) as WebSocket).terminate()
      await until('the subscriber to notice', () => mover.client.state !== 'connected', 5_000)
      for (let i = 0; i < 5; i++) await pub.publish('share')
      gate.open = true
      await until('the subscriber to resubscribe', () => mover.subscribes.length > before && mover.subscribed, 10_000)
    }
    const last = mover.subscribes.at(-1)
    assert.equal(last?.wasRecovering, true)
    assert.equal(last?.recovered, true, 'recovered on the other worker')
    // One primary, one node to the client: the session issued by one worker resumes on the other.
    assert.equal(mover.connects.at(-1)?.resumed, true, 'session resumed on the other worker')
    assert.equal(mover.connects.at(-1)?.session, firstSession)

    await pub.stop()
    // `mover` joined after the first ten: it is held to what was published after it subscribed.
    await assertExactlyOnce(subs, [pub])
    const afterJoin = new Set([...ackedKeys([pub])].filter((k) => Number(k.split(':')[1]) >= 10))
    await until('the mover to catch up', () => mover.received.length >= afterJoin.size, 10_000)
    const r = checkDeliveries(mover.received, mover.offsets, afterJoin)
    assert.deepEqual([r.lost, r.duplicates, r.outOfOrder, r.unexpected], [0, 0, 0, 0], JSON.stringify(r))
  })

  test('kill -9 of a worker: the primary logs the signal and starts a replacement; its clients recover exactly once', async (t) => {
    const subs = await spreadSubscribers(t, cluster, 'crash', 8)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    pub.start('crash', 20)
    await until('some publications', () => pub.acked.length >= 10, 10_000)
    const before = cluster.workerPids()
    // Kill the publisher's worker: its in-flight publishes must be resent and deduplicated too.
    const victim = pidOfNode(pub.node ?? '')
    assert.ok(victim !== undefined && before.includes(victim), `victim ${victim} among ${before.join(',')}`)
    const onVictim = subs.filter((s) => pidOfNode(s.node ?? '') === victim)
    assert.ok(onVictim.length > 0)
    const mark = cluster.mark()
    const killedAt = performance.now()
    process.kill(victim, 'SIGKILL')

    const died = await cluster.waitForLog(mark, /^worker died/, 10_000)
    assert.equal(died.pid, victim)
    assert.equal(died.signal, 'SIGKILL')
    assert.equal(died.level, 50, 'logged as an error')
    const now = await cluster.waitForWorkers(2, 30_000, [victim])
    const ready = await cluster.waitForLog(mark, /^worker ready$/, 30_000)
    assert.ok(now.includes(ready.pid as number), 'the replacement is a worker')
    assert.ok(alive(ready.pid as number))

    // Its clients reconnect (to the survivor or the replacement) and recover from the shared history.
    await until('the killed worker\'s clients to resubscribe', () => onVictim.every((s) => s.subscribed && s.subscribes.some((e) => e.at > killedAt)), 20_000)
    for (const s of onVictim) {
      const resub = s.subscribes.find((e) => e.at > killedAt)
      assert.equal(resub?.wasRecovering, true)
      assert.equal(resub?.recovered, true, `recovered (node ${s.node})`)
      assert.notEqual(pidOfNode(s.node ?? ''), victim)
    }
    // Publications keep flowing after the replacement joined.
    const acked = pub.acked.length
    await until('more publications', () => pub.acked.length >= acked + 10, 10_000)
    await pub.stop()
    await assertExactlyOnce(subs, [pub])
  })

  test('SIGHUP: every worker replaced one at a time, clients end connected, nothing lost or duplicated', async (t) => {
    const subs = await spreadSubscribers(t, cluster, 'reload', 8)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    pub.start('reload', 20)
    await until('some publications', () => pub.acked.length >= 10, 10_000)
    const before = await cluster.waitForWorkers(2, 5_000)
    const mark = cluster.mark()
    const hupAt = performance.now()
    process.kill(cluster.pid, 'SIGHUP')
    await cluster.waitForLog(mark, /^rolling reload finished$/, 60_000)
    const afterPids = await cluster.waitForWorkers(2, 5_000)
    for (const p of afterPids) assert.ok(!before.includes(p), `worker ${p} is new (before: ${before.join(',')})`)
    for (const p of before) assert.ok(!alive(p), `old worker ${p} exited`)

    // One at a time, the new one ready before the old one goes: ready, exited, ready, exited.
    const sequence = cluster
      .linesSince(mark, /^(worker ready|worker exited)$/)
      .map((l) => (l.msg === 'worker ready' ? 'ready' : 'exited'))
    assert.deepEqual(sequence, ['ready', 'exited', 'ready', 'exited'])
    assert.equal(cluster.linesSince(mark, /^worker died/).length, 0)
    for (const l of cluster.linesSince(mark, /^worker exited$/)) assert.equal(l.code, 0, 'a drained worker exits 0')

    await until('every client connected and subscribed', () => subs.every((s) => s.subscribed && s.client.state === 'connected'), 20_000)
    for (const s of subs) {
      assert.ok(afterPids.includes(pidOfNode(s.node ?? '') ?? -1), `${s.node} is a new worker`)
      const moves = s.connects.filter((c) => c.at > hupAt)
      assert.ok(moves.length > 0)
      // The drain tells clients "restart"; they come back with their session.
      for (const c of moves) assert.equal(c.resumed, true, 'session resumed after the reload')
    }
    await pub.stop()
    await assertExactlyOnce(subs, [pub])
  })

  test('a reload with a broken config aborts; the old workers keep serving and the logs say why', async (t) => {
    const before = await cluster.waitForWorkers(2, 5_000)
    cluster.writeConfig({ ...CONFIG, maxConnectionsPerIp: -1 })
    const mark = cluster.mark()
    const stderrMark = cluster.proc.stderr().length
    // `holdfast reload` waits for the outcome: exit 1 and the reason.
    const r = await runCliToEnd(['reload', '--pid-file', cluster.pidFile], cleanEnv(), 60_000)
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, /^holdfast: rolling reload aborted after \d+\.\d s: a new worker failed to start \(.*exited before it was ready.*\); the old workers keep serving\n$/)
    const aborted = await cluster.waitForLog(mark, /^rolling reload aborted/, 30_000)
    assert.match(String(aborted.err), /exited before it was ready \(code 2/)
    assert.match(cluster.proc.stderr().slice(stderrMark), /invalid configuration: .*"maxConnectionsPerIp" must be a positive integer, got -1/)
    // The failed worker is not a crash to replace: that would crash-loop on the same config.
    assert.equal(cluster.linesSince(mark, /^worker died/).length, 0, 'no respawn of the failed worker')
    assert.deepEqual(cluster.workerPids(), before, 'the same workers')

    // Still serving: probes, and a stream through both workers.
    assert.equal((await fetch(`${cluster.url}/readyz`)).status, 200)
    const subs = await spreadSubscribers(t, cluster, 'still', 4)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    for (let i = 0; i < 5; i++) await pub.publish('still')
    await pub.stop()
    await assertExactlyOnce(subs, [pub])
    assert.deepEqual(cluster.workerPids(), before)
    assert.equal(cluster.linesSince(mark, /^worker (died|ready)/).length, 0, 'nothing was started or replaced')
  })

  test('`holdfast reload --pid-file F` runs the same rolling reload (with the config fixed)', async (t) => {
    cluster.writeConfig(CONFIG)
    const before = await cluster.waitForWorkers(2, 5_000)
    const subs = await spreadSubscribers(t, cluster, 'cmd', 4)
    const mark = cluster.mark()
    const r = await runCliToEnd(['reload', '--pid-file', cluster.pidFile], cleanEnv(), 60_000)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`rolling reload requested from process ${cluster.pid} \\(2 workers\\)`))
    // The command returns when the reload is over, and says how it went.
    assert.match(r.stdout, /rolling reload finished: 2 workers replaced in \d+\.\d s\n$/)
    assert.equal(cluster.linesSince(mark, /^rolling reload finished$/).length, 1)
    const now = cluster.workerPids()
    // Exactly two: a failed worker of the aborted reload, respawned, would make a third.
    assert.equal(now.length, 2, `workers now: ${now.join(',')}`)
    for (const p of now) assert.ok(!before.includes(p))
    assert.equal(cluster.linesSince(mark, /^worker ready$/).length, 2)
    await until('clients back', () => subs.every((s) => s.subscribed && now.includes(pidOfNode(s.node ?? '') ?? -1)), 20_000)
  })

  test('SIGTERM: workers drain, every client is told "restart", exit 0, no worker left, pid file removed', async (t) => {
    const workers = await cluster.waitForWorkers(2, 5_000)
    const subs = await spreadSubscribers(t, cluster, 'term', 4)
    const codes: number[] = []
    // Stop each client at its first disconnect: there is nothing left to reconnect to.
    for (const s of subs) s.client.on('disconnected', (e) => {
      codes.push(e.reason.code)
      s.close()
    })
    process.kill(cluster.pid, 'SIGTERM')
    const exit = await within(30_000, 'the primary to exit', cluster.proc.exited)
    assert.deepEqual(exit, { code: 0, signal: null }, cluster.proc.stderr().slice(-2000))
    for (const p of workers) assert.ok(!alive(p), `worker ${p} is gone`)
    assert.equal(existsSync(cluster.pidFile), false)
    assert.deepEqual(codes, subs.map(() => CloseCodes.restart.code))
    // The primary's last word is `stopped` (its own lines carry role "primary"); the pipe may hand
    // over its last bytes after the exit, so the line is waited for, bounded.
    const primaryLines = (): LogLine[] => cluster.logs().filter((l) => l.role === 'primary')
    await until('the primary\'s "stopped" line', () => primaryLines().some((l) => l.msg === 'stopped'), 5_000)
    assert.equal(primaryLines().at(-1)?.msg, 'stopped', JSON.stringify(primaryLines().slice(-6)))
  })
})

describe('holdfast serve --workers 2 --engine redis (real processes)', () => {
  test('each worker talks to Redis: a stream shared across workers, kill -9 of one, its clients recover on the other', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const cluster = await ServeCluster.start(t, { workers: 2, config: CONFIG, args: ['--engine', 'redis', '--redis-url', redis.url] })
    assert.match(cluster.proc.stdout(), /engine=redis workers=2/)
    const subs = await spreadSubscribers(t, cluster, 'redis-share', 6)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    pub.start('redis-share', 20)
    await until('some publications', () => pub.acked.length >= 10, 10_000)

    const victim = pidOfNode(pub.node ?? '') as number
    const onVictim = subs.filter((s) => pidOfNode(s.node ?? '') === victim)
    const mark = cluster.mark()
    const killedAt = performance.now()
    process.kill(victim, 'SIGKILL')
    await cluster.waitForLog(mark, /^worker died/, 10_000, (l) => l.pid === victim)
    await cluster.waitForLog(mark, /^worker ready$/, 30_000)
    await until('the killed worker\'s clients to resubscribe', () => onVictim.every((s) => s.subscribed && s.subscribes.some((e) => e.at > killedAt)), 20_000)
    for (const s of onVictim) assert.equal(s.subscribes.find((e) => e.at > killedAt)?.recovered, true)
    // Without --session-secret the primary's shared one still lets sessions resume on the other worker.
    for (const s of onVictim) assert.equal(s.connects.find((c) => c.at > killedAt)?.resumed, true)
    const acked = pub.acked.length
    await until('more publications', () => pub.acked.length >= acked + 10, 10_000)
    await pub.stop()
    await assertExactlyOnce(subs, [pub])
    // The history is in Redis, not in the primary: the stream's keys are there.
    assert.ok((await redis.cli('--scan', '--pattern', '*redis-share*')).length > 0, 'stream keys in Redis')
  })
})

/**
 * uWebSockets.js has no binary for every Node version (none for Node 24's ABI in the npm mirror):
 * where it cannot load, these tests cannot run (CI runs them on Node 20, see .ci/run).
 */
async function uwsLoads(): Promise<boolean> {
  try {
    const { loadUws } = await import('@holdfast/server/internal')
    return !('error' in loadUws())
  } catch {
    return false
  }
}
const UWS_SKIP = (await uwsLoads()) ? false : `uWebSockets.js has no binary for Node ${process.version}`

describe('holdfast serve --workers 2 --transport uws (real processes)', { skip: UWS_SKIP }, () => {
  let cluster: ServeCluster
  const cleanup = suiteCleanup()
  before(async () => {
    cluster = await ServeCluster.start(cleanup, { workers: 2, config: CONFIG, args: ['--transport', 'uws'] })
  })
  after(cleanup.run)

  test('both workers take WebSockets on one port (SO_REUSEPORT); a SIGHUP reload replaces them with clients connected, nothing lost or duplicated', async (t) => {
    const listening = cluster.proc.stdout().split('\n').filter((l) => l.startsWith('holdfast listening'))
    assert.equal(listening.length, 1)
    assert.match(listening[0] as string, / engine=memory workers=2 transport=uws$/)
    const httpPort = new URL(cluster.url).port
    assert.notEqual(new URL(cluster.wsUrl).port, httpPort, 'WebSockets on a port of their own')
    // spreadSubscribers asserts both workers hold some: the kernel spread the connections.
    const subs = await spreadSubscribers(t, cluster, 'uws', 8)
    const pub = track(t, new Publisher(cluster.wsUrl, 'p', FAST)).connect()
    pub.start('uws', 20)
    await until('some publications', () => pub.acked.length >= 10, 10_000)
    const before = await cluster.waitForWorkers(2, 5_000)
    const mark = cluster.mark()
    process.kill(cluster.pid, 'SIGHUP')
    await cluster.waitForLog(mark, /^rolling reload finished$/, 60_000)
    const afterPids = await cluster.waitForWorkers(2, 5_000)
    for (const p of afterPids) assert.ok(!before.includes(p), `worker ${p} is new`)
    await until('every client on a new worker', () => subs.every((s) => s.subscribed && afterPids.includes(pidOfNode(s.node ?? '') ?? -1)), 30_000)
    const acked = pub.acked.length
    await until('more publications', () => pub.acked.length >= acked + 10, 10_000)
    await pub.stop()
    await assertExactlyOnce(subs, [pub])
  })
  test('--ws-port 0: the primary picks one free port and every worker listens on it', async (t) => {
    const c = await ServeCluster.start(t, { workers: 2, config: CONFIG, args: ['--transport', 'uws', '--ws-port', '0'] })
    assert.notEqual(new URL(c.wsUrl).port, '0')
    // Through the announced port only: both workers take connections there.
    await spreadSubscribers(t, c, 'ws-port-0', 8)
  })
})
