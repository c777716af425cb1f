/**
 * Redis frozen with SIGSTOP for 5 s under a 3-node fleet: TCP stays up and nothing answers, the
 * nastiest way for a backend to fail. Nothing may hang: a publish gets the `engine_unavailable`
 * error reply within the engine's command timeout (2 s by default; once the breaker is open, at
 * once), every node's /readyz says 503, no publish is acknowledged while Redis cannot store it,
 * and after SIGCONT everything recovers by itself: /readyz 200, the SDK's queued publishes land
 * exactly once (a publish Redis ran only when it was thawed, after its caller was told it failed,
 * is deduplicated by its id on retry), and subscribers receive them in order.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { RawClient } from '../../packages/server/test/helpers.js'
import { makeClient, REDIS_SERVER, requireBinary, startFleet, startRedis, until } from './fleet.js'
import { AppLog, assertExactlyOnce, now, Publisher } from '../chaos/history.js'

const CHANNEL = 'feed:ticks'
const RAW_CHANNEL = 'feed:raw'
/** The outage is what this test is about. */
const PAUSE_MS = 5000
/** The engine's default command timeout, which bounds the first failure. */
const COMMAND_TIMEOUT_MS = 2000

const ms = (x: number): string => `${Math.round(x)} ms`

type RawReply = { error?: { code: number; message: string; temporary: boolean }; result?: { offset: number; epoch: string; duplicate?: boolean } }

describe('multi-node: Redis paused (SIGSTOP) for 5 s', () => {
  it('publishes fail fast with engine_unavailable, /readyz is 503; after SIGCONT queued publishes land exactly once', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const nodes = await startFleet(t, redis.url, 3)
    const [n1, n2] = nodes
    assert.ok(n1 !== undefined && n2 !== undefined)

    const subClient = makeClient(t, n2.wsUrl)
    const log = new AppLog(subClient, 'subscriber', CHANNEL)
    subClient.connect()
    await log.until('the first subscribe', () => log.subscribes.length === 1, 10_000)
    const pubClient = makeClient(t, n1.wsUrl, { minReconnectDelayMs: 100, maxReconnectDelayMs: 1000 })
    pubClient.connect()
    const publisher = new Publisher(pubClient, 'publisher')
    publisher.start([CHANNEL], 50)
    await log.untilSeq(10, 10_000)

    // The SDK retries temporary errors by design, so the error reply itself is observed on the wire.
    const raw = new RawClient(n1.wsUrl)
    t.after(() => raw.close())
    await raw.connect()
    const rawPublish = async (msgId: string): Promise<{ reply: RawReply; ms: number }> => {
      const start = now()
      const reply = (await raw.request({ type: 'publish', channel: RAW_CHANNEL, data: msgId, msgId }, COMMAND_TIMEOUT_MS + 3000)) as RawReply
      return { reply, ms: now() - start }
    }
    assert.equal((await rawPublish('before')).reply.result?.offset, 1)

    const pausedAt = now()
    redis.pause()
    t.after(() => redis.resume())

    // On the wire before Redis froze or not, the first publish fails within the command timeout...
    const first = await rawPublish('during-1')
    assert.equal(first.reply.error?.code, ErrorCodes.engine_unavailable.code, JSON.stringify(first.reply))
    assert.equal(first.reply.error?.temporary, true)
    assert.ok(first.ms < COMMAND_TIMEOUT_MS + 500, `the first publish failed after ${ms(first.ms)}`)
    // ...and the next one at once: the breaker is open, nothing waits on the frozen Redis.
    const second = await rawPublish('during-2')
    assert.equal(second.reply.error?.code, ErrorCodes.engine_unavailable.code, JSON.stringify(second.reply))
    assert.ok(second.ms < 300, `the second publish failed after ${ms(second.ms)}`)

    const notReadyAt: (number | undefined)[] = [undefined, undefined, undefined]
    await until(
      'every node to answer /readyz 503',
      async () => {
        const codes = await Promise.all(nodes.map((n) => n.readyz()))
        codes.forEach((c, i) => (notReadyAt[i] ??= c === 503 ? now() - pausedAt : undefined))
        return notReadyAt.every((x) => x !== undefined)
      },
      // An idle node notices at its next health PING plus the command timeout.
      PAUSE_MS - 500,
    )

    await new Promise((r) => setTimeout(r, Math.max(0, PAUSE_MS - (now() - pausedAt))))
    const resumedAt = now()
    redis.resume()
    const issuedDuringPause = publisher.issued

    let readyAt = 0
    await until('every node to answer /readyz 200 again', async () => (await Promise.all(nodes.map((n) => n.readyz()))).every((c) => c === 200), 5000, 10)
    readyAt = now() - resumedAt

    // Publish on after the recovery; then every publish, including those queued during the pause, is acked once.
    await log.untilSeq(publisher.issued + 20, 15_000)
    const acks = await publisher.settle(15_000)
    await log.untilSeq(acks.length, 10_000)
    assertExactlyOnce(log, acks)
    const ackedWhilePaused = acks.filter((a) => a.at > pausedAt + 100 && a.at < resumedAt)
    assert.deepEqual(ackedWhilePaused, [], 'no publish is acknowledged while Redis cannot store it')
    const queued = acks.filter((a) => a.at >= resumedAt && a.seq <= issuedDuringPause)
    assert.ok(queued.length >= 50, `publishes made during the pause landed after it (${queued.length})`)
    const drained = Math.max(...queued.map((a) => a.at)) - resumedAt

    // The raw client retries its two refused publishes with the same ids. "during-1" reached the
    // frozen Redis and ran when it thawed, although its caller was told it failed: the retry is a
    // duplicate of that run. "during-2" was refused by the open breaker and never reached Redis.
    const retry1 = await rawPublish('during-1')
    const retry2 = await rawPublish('during-2')
    assert.equal(retry1.reply.error, undefined, JSON.stringify(retry1.reply))
    assert.equal(retry2.reply.error, undefined, JSON.stringify(retry2.reply))
    const history = await raw.call<{ publications: { offset: number; data: unknown }[] }>({ type: 'history', channel: RAW_CHANNEL, limit: 10 })
    assert.deepEqual(
      history.publications.map((p) => p.data).sort(),
      ['before', 'during-1', 'during-2'],
      'each raw publish stored exactly once',
    )

    t.diagnostic(
      `SIGSTOP: first publish error after ${ms(first.ms)}, next ${second.ms.toFixed(1)} ms; /readyz 503 after ${notReadyAt.map((x) => ms(x ?? 0)).join(' / ')}; ` +
        `SIGCONT → all /readyz 200 in ${ms(readyAt)}; ${queued.length} queued publishes acked within ${ms(drained)} of SIGCONT; ` +
        `retry of during-1: duplicate=${String(retry1.reply.result?.duplicate === true)}; ${log.pubs.length} publications delivered exactly once`,
    )
  })
})
