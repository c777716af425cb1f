/**
 * Scenario 3 — kill -9 of a node under load (Redis engine, three nodes, clients with a URL list).
 *
 * Thirty subscribers on three channels, all connected to the victim, and a publisher on the victim
 * beside one on a survivor (see failover.ts). The victim is killed with SIGKILL mid-stream: its
 * sockets are reset by the kernel, it saves nothing. Every subscriber must resubscribe on a
 * survivor with `recovered: true` (its position lives in the client, the history in Redis), the
 * victim's publisher must resend its unacked publishes elsewhere without storing any twice
 * (msgId dedupe in Redis), and the checker must find lost 0, duplicated 0.
 *
 * Client defaults on purpose (500 ms minimum backoff, full jitter): the failover times are what
 * an application gets.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { failover } from './failover.js'
import { latency, REDIS_SERVER, requireBinary, result, startRedis } from './harness.js'
import { assertClean, summary } from './history.js'

describe('chaos: kill -9 of a node', () => {
  it('every client of the killed node fails over, recovers, and the history has lost 0, duplicated 0', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const o = await failover(t, { redisUrl: redis.url, subscribers: 30, channels: 3, fault: (victim) => victim.kill('SIGKILL') })
    const detect = latency(o.detectMs)
    const resub = latency(o.resubscribedMs)
    t.diagnostic(summary(o.report))
    t.diagnostic(`kill -9 → disconnected ${JSON.stringify(detect)}, resubscribed with recovered:true ${JSON.stringify(resub)}`)
    result(t, 'node-kill', {
      subscribers: o.logs.length,
      disconnectedMs: { p50: detect.p50, max: detect.max },
      allResubscribedMs: resub.max,
      published: o.acks.length,
      lost: o.report.lost,
      duplicated: o.report.duplicated,
    })
    assertClean(o.report)
    assert.ok(detect.max < 1000, 'a killed process resets its sockets: clients notice at once')
    assert.ok(
      o.logs.every((l) => l.subscribes.filter((s) => s.wasRecovering).every((s) => s.recovered)),
      'every resubscribe recovered',
    )
  })
})
