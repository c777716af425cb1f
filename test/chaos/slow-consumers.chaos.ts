/**
 * Scenario 6 — slow consumers beside fast ones on the same channel.
 *
 * One node (memory engine, default send queue bound `maxQueueBytes` 1 MiB) and a publisher sending
 * 100 publications of 8 KiB a second to one channel. Twelve fast subscribers read it; their
 * delivery latency is measured first alone (the baseline), then while four slow subscribers on the
 * same channel stop reading their sockets (`ws.pause()`: the kernel buffers fill, then the node's
 * send queue for them). The node must close each slow one with `slow_consumer` (4003) and must not
 * let them slow the others down: the fast subscribers' p99 during the slow phase must stay within
 * a generous factor of the baseline. Resumed, the slow clients reconnect, recover what they
 * missed, and the checker finds nothing lost or duplicated for anyone.
 *
 * The node's close code is checked on the node (`disconnects_total{code="slow_consumer"}`): what
 * the slow client itself sees depends on when it reads again. The disconnect push and the close
 * frame sit behind its backlog, and the node terminates the socket one second after the close
 * (SLOW_CONSUMER_GRACE_MS) so as not to hold that backlog; a client that has not drained it by then
 * sees the connection end without a close frame (1006). Either way it reconnects and recovers.
 *
 * A second test covers a client that fell behind by far more than the send-queue bounds (the
 * node's burst bound is 4 × maxQueueBytes): its recovery reply is larger than either bound, and
 * must still be delivered (replies the client asked for do not count as a backlog), so that it
 * catches up in one reconnect instead of being closed as slow again on every one.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { WebSocket } from 'ws'
import { CloseCodes } from '@holdfast/protocol'
import { DEEP_HISTORY, latency, makeClient, metric, OPEN_LIMITS, result, round, sleep, startSingle, until } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, now, Publisher, summary, type Ack } from './history.js'

const CHANNEL = 'slow:feed'
const FAST = 12
const SLOW = 4
const PAD = 'x'.repeat(8 * 1024)
const PUBLISH_EVERY_MS = 10
const BASELINE_MS = 6000
/** The fast subscribers' p99 with slow ones may be this many times the baseline's, or this much above it, whichever is more. */
const FACTOR = 10
const FLOOR_MS = 300

describe('chaos: slow consumers beside fast ones', () => {
  it('slow readers are closed with 4003 and recover; fast ones keep their latency and lose nothing', async (t) => {
    const node = await startSingle(t, { ...OPEN_LIMITS, ...DEEP_HISTORY })

    const fast = Array.from({ length: FAST }, (_, i) => {
      const c = makeClient(t, node.wsUrl)
      const log = new AppLog(c, `fast${i}`, CHANNEL)
      c.connect()
      return log
    })
    await Promise.all(fast.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const pubClient = makeClient(t, node.wsUrl)
    pubClient.connect()
    const publisher = new Publisher(pubClient, 'p0')
    publisher.start([CHANNEL], PUBLISH_EVERY_MS, PAD)
    await Promise.all(fast.map((l) => l.until('live publications', () => l.pubs.length >= 50, 10_000)))

    const baseFrom = now()
    await sleep(BASELINE_MS)
    const baseTo = now()

    // The slow ones: subscribed like the others, then they stop reading.
    const sockets: WebSocket[] = []
    const slow = Array.from({ length: SLOW }, (_, i) => {
      const c = makeClient(t, node.wsUrl, { minReconnectDelayMs: 200, maxReconnectDelayMs: 1000 }, { onSocket: (ws) => void (sockets[i] = ws) })
      const log = new AppLog(c, `slow${i}`, CHANNEL)
      c.connect()
      return log
    })
    await Promise.all(slow.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const paused = sockets.slice(0, SLOW)
    const closes = (): Promise<number> => metric(node.url, 'holdfast_disconnects_total', 'code="slow_consumer"')
    const before = await closes()
    const slowFrom = now()
    for (const ws of paused) ws.pause()
    await until('the node to close every slow consumer', async () => (await closes()) - before >= SLOW, 60_000, 50)
    const closedAfterMs = now() - slowFrom
    // The node keeps writing to the fast ones meanwhile: the slow window ends a second later.
    await sleep(1000)
    const slowTo = now()
    assert.equal((await closes()) - before, SLOW, 'exactly the slow ones were closed (4003); no fast subscriber was')
    const resumedAt = now()
    for (const ws of paused) ws.resume()
    await Promise.all(
      slow.map((l) => l.until('a recovering resubscribe after the close', () => l.subscribes.some((s) => s.at > resumedAt && s.recovered), 30_000)),
    )
    for (const l of slow) {
      const code = l.disconnects[0]?.code
      assert.ok(code === CloseCodes.slow_consumer.code || code === CloseCodes.abnormal.code, `${l.client} saw 4003, or the end of a connection the node terminated after the grace (1006): ${code}`)
    }
    const recoveredInMs = Math.max(...slow.map((l) => (l.subscribes.find((s) => s.at > resumedAt && s.recovered)?.at ?? Number.NaN) - resumedAt))

    await sleep(1000)
    const acks: Ack[] = await publisher.stop(15_000)
    await drain([...fast, ...slow], acks, 30_000)
    const report = checkHistory(acks, [...fast, ...slow])
    t.diagnostic(summary(report))
    for (const l of fast) assert.deepEqual(l.disconnects, [], `${l.client} was never disconnected`)

    const window = (from: number, to: number): number[] => fast.flatMap((l) => l.pubs.filter((p) => p.at >= from && p.at <= to).map((p) => p.at - p.sentAt))
    const base = latency(window(baseFrom, baseTo))
    const withSlow = latency(window(slowFrom, slowTo))
    const limit = Math.max(FACTOR * base.p99, base.p99 + FLOOR_MS)
    t.diagnostic(`fast subscribers' latency: alone ${JSON.stringify(base)}, beside paused slow ones ${JSON.stringify(withSlow)} (limit p99 ${round(limit)} ms)`)
    result(t, 'slow-consumers', {
      fast: FAST,
      slow: SLOW,
      publishPerSecond: 1000 / PUBLISH_EVERY_MS,
      payloadBytes: PAD.length,
      slowClosedWithinMs: Math.round(closedAfterMs),
      slowSaw: slow.map((l) => l.disconnects[0]?.code),
      slowRecoveredAfterResumeMs: Math.round(recoveredInMs),
      fastP99Ms: { alone: base.p99, besideSlow: withSlow.p99, limit: round(limit) },
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assertClean(report)
    assert.ok(withSlow.n > 0 && base.n > 0)
    assert.ok(withSlow.p99 <= limit, `fast p99 beside slow consumers ${withSlow.p99} ms <= ${round(limit)} ms (alone ${base.p99} ms)`)
  })

  it('a client that fell behind by more than 4 × maxQueueBytes recovers in one reply and loses nothing', async (t) => {
    const node = await startSingle(t, { maxQueueBytes: 64 * 1024, ...OPEN_LIMITS, ...DEEP_HISTORY })
    const publisher = new Publisher(makeClient(t, node.wsUrl), 'p0')
    publisher.client.connect()
    let socket: WebSocket | undefined
    const c = makeClient(t, node.wsUrl, { minReconnectDelayMs: 200, maxReconnectDelayMs: 1000 }, { onSocket: (ws) => void (socket ??= ws) })
    const log = new AppLog(c, 'slow', CHANNEL)
    c.connect()
    await log.until('the first subscribe', () => log.subscribes.length > 0, 10_000)
    publisher.start([CHANNEL], PUBLISH_EVERY_MS, PAD)
    socket?.pause()
    await until('the slow consumer close', async () => (await metric(node.url, 'holdfast_disconnects_total', 'code="slow_consumer"')) >= 1, 60_000, 100)
    // Back after a while: by now it misses far more than 4 × 64 KiB (about 800 KB a second).
    await sleep(2000)
    const resumedAt = now()
    socket?.resume()
    await log.until('a recovering resubscribe', () => log.subscribes.some((s) => s.at > resumedAt && s.recovered), 10_000)
    const recovery = log.subscribes.find((s) => s.at > resumedAt && s.recovered)
    await sleep(1000)
    const acks: Ack[] = await publisher.stop(15_000)
    await drain([log], acks, 30_000)
    const report = checkHistory(acks, [log])
    t.diagnostic(summary(report))
    const closes = await metric(node.url, 'holdfast_disconnects_total', 'code="slow_consumer"')
    result(t, 'slow-consumer-far-behind', {
      maxQueueBytes: 64 * 1024,
      payloadBytes: PAD.length,
      recoveredAfterResumeMs: Math.round((recovery?.at ?? Number.NaN) - resumedAt),
      slowConsumerCloses: closes,
      reconnects: log.connects.length - 1,
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assertClean(report)
    assert.equal(closes, 1, 'closed as slow once, not again after it came back')
  })
})
