/**
 * Scenario 5 — SIGSTOP of a node for longer than the heartbeat bounds, then SIGCONT.
 *
 * A frozen process is worse than a dead one: its sockets stay open and nothing answers, so only
 * heartbeats can tell. With pingInterval 1 s, pongTimeout 1 s and the clients'
 * maxServerPingDelay 1 s, every client of the frozen node must give up on it within
 * ping + maxServerPingDelay = 2 s, reconnect to a survivor (URL list), resume its session there
 * and recover. The frozen node's publisher resends its unacked publishes elsewhere; when the node
 * is thawed it may still run what it had read before it froze — the msgId dedupe in Redis makes
 * that a no-op. After SIGCONT the node must be ready again, and the history clean.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { failover } from './failover.js'
import { latency, REDIS_SERVER, requireBinary, result, sleep, startRedis, until } from './harness.js'
import { assertClean, summary } from './history.js'

const PING_MS = 1000
const PONG_MS = 1000
const MAX_SERVER_PING_DELAY_MS = 1000
/**
 * Well past both heartbeat bounds, and long enough for every client to be elsewhere before the
 * thaw: detection (2 s), then a backoff (0.5–1 s) to the next URL — the SDK rotates after a
 * heartbeat timeout — and, for a client whose next URL also fails, another. (Before the SDK
 * rotated on a heartbeat timeout, each client first spent a connect timeout, 2 s here, on the
 * frozen node.) The outage is what this scenario is about.
 */
const STOP_MS = 10_000
const SLACK_MS = 500

describe('chaos: SIGSTOP of a node', () => {
  it(`a node frozen for ${STOP_MS / 1000} s: its clients detect it, move to the survivors and recover; lost 0, duplicated 0`, async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const o = await failover(t, {
      redisUrl: redis.url,
      subscribers: 30,
      channels: 3,
      config: { pingIntervalMs: PING_MS, pongTimeoutMs: PONG_MS },
      // Attempts that land on the frozen node (its kernel still accepts) give up after 2 s.
      client: { maxServerPingDelayMs: MAX_SERVER_PING_DELAY_MS, connectTimeoutMs: 2000 },
      fault: async (victim) => {
        victim.signal('SIGSTOP')
        t.after(() => victim.signal('SIGCONT'))
        await sleep(STOP_MS)
        victim.signal('SIGCONT')
        // The thawed node recovers by itself.
        await until('the thawed node to answer /readyz 200', async () => (await victim.readyz().catch(() => 0)) === 200, 10_000, 100)
      },
    })
    const detect = latency(o.detectMs)
    const resub = latency(o.resubscribedMs)
    t.diagnostic(summary(o.report))
    t.diagnostic(`SIGSTOP → clients gave up ${JSON.stringify(detect)}, resubscribed on a survivor ${JSON.stringify(resub)}`)
    for (const l of o.logs) {
      const d = l.disconnects.find((x) => x.at > o.faultAt)
      assert.equal(d?.code, CloseCodes.heartbeat_timeout.code, `${l.client}: the client's watchdog found the frozen node (4005)`)
    }
    const bound = PING_MS + MAX_SERVER_PING_DELAY_MS
    assert.ok(detect.max <= bound + SLACK_MS, `every client gave up within ping + maxServerPingDelay = ${bound} ms (+${SLACK_MS}): max ${detect.max} ms`)
    assert.ok(resub.max < STOP_MS, 'every client was back (on a survivor) before the node was thawed')
    result(t, 'node-stop', {
      stoppedMs: STOP_MS,
      clientDetectMs: { p50: detect.p50, max: detect.max, bound },
      allResubscribedMs: resub.max,
      published: o.acks.length,
      lost: o.report.lost,
      duplicated: o.report.duplicated,
    })
    assertClean(o.report)
  })
})
