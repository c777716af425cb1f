/**
 * Scenario 1 — random connection resets for 60 s under a steady publish load.
 *
 * Two `serve --engine redis` nodes, each behind a chaos proxy that resets (RST both ways) every
 * connection with a fixed probability per second. Publishers and subscribers all connect through
 * the proxies with the URL list [proxy1, proxy2] (rotated per client), so a reset lands anywhere:
 * on a publish in flight (the SDK resends it with the same msgId, possibly to the other node —
 * the engine's dedupe must hold across nodes), on a subscriber mid-recovery, on a connect.
 * After the faults are healed and every publish is acked, the checker holds every subscriber's
 * history to the acks: lost 0, duplicated 0, in order, and every resubscribe recovered.
 *
 * Size: HOLDFAST_CHAOS_RESET_SECONDS (default 60), 4 publishers at 20/s each, 40 subscribers on
 * 4 channels.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEEP_HISTORY, makeClient, OPEN_LIMITS, REDIS_SERVER, requireBinary, result, rotate, startFleet, startProxy, startRedis, sleep } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, Publisher, summary, type Ack } from './history.js'

const SECONDS = Number(process.env['HOLDFAST_CHAOS_RESET_SECONDS'] ?? 60)
const PUBLISHERS = 4
const PUBLISH_EVERY_MS = 50
const SUBSCRIBERS = 40
const CHANNELS = ['resets:0', 'resets:1', 'resets:2', 'resets:3']
/** Per connection and second: each client is reset every ~7 s on average, ~8 times in a minute. */
const RESET_PROBABILITY = 0.15
/** Faster than the defaults (500 ms – 20 s), so a minute holds many reset–reconnect–recover cycles. */
const CLIENT = { minReconnectDelayMs: 100, maxReconnectDelayMs: 2000 }

describe('chaos: random connection resets', () => {
  it(`${SECONDS} s of random resets between clients and two nodes: lost 0, duplicated 0`, async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const nodes = await startFleet(t, redis.url, 2, { config: { ...OPEN_LIMITS, ...DEEP_HISTORY } })
    const proxies = await Promise.all(nodes.map((n) => startProxy(t, n.port)))
    const urls = proxies.map((p) => `ws://127.0.0.1:${p.port}/ws`)

    const logs = Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const c = makeClient(t, rotate(urls, i), CLIENT, { localAddress: `127.0.0.${2 + (i % 8)}` })
      const log = new AppLog(c, `s${i}`, CHANNELS[i % CHANNELS.length] as string)
      c.connect()
      return log
    })
    await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 15_000)))
    const publishers = Array.from({ length: PUBLISHERS }, (_, i) => {
      const c = makeClient(t, rotate(urls, i), CLIENT)
      c.connect()
      return new Publisher(c, `p${i}`)
    })
    for (const [i, p] of publishers.entries()) p.start(rotate(CHANNELS, i), PUBLISH_EVERY_MS)

    for (const p of proxies) p.setFaults({ resetProbability: RESET_PROBABILITY })
    await sleep(SECONDS * 1000)
    for (const p of proxies) p.heal()
    const resets = proxies.reduce((n, p) => n + p.stats().resets, 0)

    const acks: Ack[] = []
    for (const p of publishers) acks.push(...(await p.stop(30_000)))
    assert.deepEqual(
      publishers.flatMap((p) => p.errors),
      [],
      'every publish was acked: the SDK resends through resets',
    )
    const short = await drain(logs, acks, 30_000)
    const report = checkHistory(acks, logs)
    const disconnects = logs.reduce((n, l) => n + l.disconnects.length, 0)
    const resubscribes = logs.reduce((n, l) => n + l.subscribes.length - 1, 0)
    t.diagnostic(summary(report))
    result(t, 'resets', {
      seconds: SECONDS,
      resetProbabilityPerSecond: RESET_PROBABILITY,
      resets,
      subscriberDisconnects: disconnects,
      resubscribes,
      published: acks.length,
      deliveries: report.delivered,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assert.deepEqual(
      short.map((l) => l.client),
      [],
      'every subscriber caught up',
    )
    assertClean(report)
    assert.ok(resets >= SECONDS, `the proxies did reset connections (${resets})`)
    assert.ok(resubscribes >= SUBSCRIBERS, `subscribers went through resets and recoveries (${resubscribes})`)
  })
})
