/**
 * Scenario 4 — Redis killed (kill -9) and restarted under two nodes, while two publishers keep
 * publishing to four channels and twenty subscribers read them.
 *
 * - With AOF and `appendfsync always`, nothing acknowledged can be lost: the checker must find
 *   lost 0, duplicated 0, and every resubscribe (if a node sent its clients to recovery) recovered.
 *   Publishes made while Redis is down fail fast on the node and are retried by the SDK with the
 *   same msgId; none may be acked during the outage.
 * - Without persistence the streams are gone, and the only honest answer is `recovered: false`:
 *   every subscriber must be told so (no silent gap), the new epoch must be delivered gap-free
 *   from where it resubscribed, and nothing may be delivered twice within an epoch.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import type { RedisServer } from '../support/redis-server.js'
import { DEEP_HISTORY, makeClient, OPEN_LIMITS, REDIS_SERVER, requireBinary, result, rotate, sleep, startFleet, startRedis, until } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, now, Publisher, summary, type Ack, type CheckReport } from './history.js'

const SUBSCRIBERS = 20
const CHANNELS = ['redis:0', 'redis:1', 'redis:2', 'redis:3']
/** How long Redis stays down: the outage is what this scenario is about. */
const OUTAGE_MS = 1500
/** A short backoff cap keeps the publishers' retries close to the recovery. */
const CLIENT = { minReconnectDelayMs: 100, maxReconnectDelayMs: 1000 }

interface Outage {
  report: CheckReport
  logs: AppLog[]
  acks: Ack[]
  killedAt: number
  restartedAt: number
}

async function redisOutage(t: TestContext, redis: RedisServer, settled: (l: AppLog) => boolean): Promise<Outage> {
  const nodes = await startFleet(t, redis.url, 2, { config: { ...OPEN_LIMITS, ...DEEP_HISTORY } })
  const urls = nodes.map((n) => n.wsUrl)
  const logs = Array.from({ length: SUBSCRIBERS }, (_, i) => {
    const c = makeClient(t, rotate(urls, i), CLIENT)
    const log = new AppLog(c, `s${i}`, CHANNELS[i % CHANNELS.length] as string)
    c.connect()
    return log
  })
  await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 15_000)))
  const publishers = urls.map((_, i) => {
    const p = new Publisher(makeClient(t, rotate(urls, i), CLIENT), `p${i}`)
    p.client.connect()
    p.start(rotate(CHANNELS, i), 25)
    return p
  })
  await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 10, 15_000)))

  const killedAt = now()
  await redis.kill()
  await until('every node to report not ready', async () => (await Promise.all(nodes.map((n) => n.readyz()))).every((c) => c === 503), 5000)
  await sleep(Math.max(0, OUTAGE_MS - (now() - killedAt)))
  await redis.restart()
  const restartedAt = now()
  await until('every node to be ready again', async () => (await Promise.all(nodes.map((n) => n.readyz()))).every((c) => c === 200), 15_000)
  await Promise.all(logs.map((l) => l.until('the subscriber to come through the outage', () => settled(l), 20_000)))
  // Publish on after the recovery, so that the live feed is shown to work again.
  await sleep(2000)
  const acks: Ack[] = []
  for (const p of publishers) acks.push(...(await p.stop(20_000)))
  assert.deepEqual(
    publishers.flatMap((p) => p.errors),
    [],
    'every publish was acked (the SDK retries through the outage)',
  )
  assert.deepEqual(
    acks.filter((a) => a.at > killedAt + 100 && a.at < restartedAt),
    [],
    'nothing is acked while Redis cannot store it',
  )
  await drain(logs, acks, 20_000)
  return { report: checkHistory(acks, logs), logs, acks, killedAt, restartedAt }
}

describe('chaos: Redis restarted under the fleet', () => {
  it('with AOF (appendfsync always): lost 0, duplicated 0, every resubscribe recovered', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t, { persistence: true })
    const o = await redisOutage(t, redis, () => true)
    t.diagnostic(summary(o.report))
    const resubscribes = o.logs.reduce((n, l) => n + l.subscribes.length - 1, 0)
    result(t, 'redis-restart-aof', {
      outageMs: OUTAGE_MS,
      subscribers: o.logs.length,
      resubscribes,
      published: o.acks.length,
      lost: o.report.lost,
      duplicated: o.report.duplicated,
      recoveredFalse: o.report.unrecovered,
    })
    // With AOF nothing is lost, so no resubscribe may be told recovered:false either.
    assertClean(o.report)
  })

  it('without persistence: every subscriber is told recovered:false — no silent gap — and nothing is duplicated', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t, { persistence: false })
    let firstEpoch = ''
    const o = await redisOutage(t, redis, (l) => {
      firstEpoch ||= l.subscribes[0]?.epoch ?? ''
      return l.subscribes.some((s) => s.epoch !== firstEpoch)
    })
    t.diagnostic(summary(o.report))
    const told = o.logs.filter((l) => l.subscribes.some((s) => s.at > o.killedAt && s.wasRecovering && !s.recovered))
    const toldInMs = Math.max(...told.map((l) => (l.subscribes.find((s) => s.at > o.killedAt && !s.recovered)?.at ?? Number.NaN) - o.restartedAt))
    result(t, 'redis-restart-no-persistence', {
      outageMs: OUTAGE_MS,
      subscribers: o.logs.length,
      toldRecoveredFalse: told.length,
      allToldWithinMsOfRestart: Math.round(toldInMs),
      published: o.acks.length,
      declaredLoss: o.report.declaredLoss,
      lost: o.report.lost,
      duplicated: o.report.duplicated,
      silentGaps: o.report.silentGaps,
    })
    assert.equal(told.length, o.logs.length, 'every subscriber was told recovered:false')
    for (const ch of CHANNELS) {
      const epochs = new Set(o.acks.filter((a) => a.channel === ch).map((a) => a.epoch))
      assert.equal(epochs.size, 2, `${ch}: acks in the old epoch, then in one new epoch`)
    }
    // Within each segment (before and after recovered:false): nothing lost, nothing twice, in order.
    const bad = o.report.lost + o.report.duplicated + o.report.outOfOrder + o.report.silentGaps + o.report.unacked + o.report.mismatched + o.report.ackAnomalies
    assert.equal(bad, 0, `history check: ${summary(o.report)}\n  ${o.report.examples.join('\n  ')}`)
  })
})
