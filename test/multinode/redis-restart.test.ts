/**
 * Redis killed (kill -9) and restarted under a 3-node fleet, while a publisher keeps publishing:
 *
 * - without persistence the streams are gone, so the engine starts new epochs: every subscriber
 *   that resubscribes learns `recovered: false` (it must reload its state) — never a silent gap,
 *   and never an offset of the new stream taken for one of the old;
 * - with AOF (`appendfsync always`) nothing acknowledged is lost: same epoch, offsets continue,
 *   and every subscriber receives every publication exactly once, in order, whether or not it was
 *   disconnected on the way (a resubscribe, if any, says `recovered: true`).
 *
 * The nodes notice the outage by themselves (the engine reconnects, the hub resyncs its channels
 * after `onStateChange(true)`); what is asserted is what the application sees.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import type { RedisServer } from '../support/redis-server.js'
import { makeClient, REDIS_SERVER, requireBinary, startFleet, startRedis, until, type ServeNode } from './fleet.js'
import { AppLog, assertExactlyOnce, now, Publisher, range, type Ack } from '../chaos/history.js'

const CHANNEL = 'feed:orders'
const PUBLISH_EVERY_MS = 20
/** How long Redis stays down: the outage is what these tests are about. */
const OUTAGE_MS = 1000
/** The publisher's SDK retries the refused publishes; a short cap keeps its retries close to the recovery. */
const PUBLISHER = { minReconnectDelayMs: 100, maxReconnectDelayMs: 1000 }

interface Outage {
  nodes: ServeNode[]
  logs: AppLog[]
  acks: Ack[]
  /** Every node answered /readyz 503 while Redis was down. */
  notReady: boolean[]
  /** now() of the kill and of the restart. */
  killedAt: number
  /** When the killed redis-server was seen gone: what it answered before may still be on its way. */
  deadAt: number
  restartedAt: number
}

/** Subscribers on n1 and n2, a publisher on n3; kill Redis mid-stream, restart it, publish on, stop. */
async function redisOutage(t: TestContext, redis: RedisServer, isRecoveredEnough: (log: AppLog) => boolean): Promise<Outage> {
  const nodes = await startFleet(t, redis.url, 3)
  const [n1, n2, n3] = nodes
  assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined)
  const logs = [n1, n2].map((n) => {
    const c = makeClient(t, n.wsUrl)
    const log = new AppLog(c, 'subscriber', CHANNEL)
    c.connect()
    return log
  })
  await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length === 1, 10_000)))
  const pubClient = makeClient(t, n3.wsUrl, PUBLISHER)
  pubClient.connect()
  const publisher = new Publisher(pubClient, 'publisher')
  publisher.start([CHANNEL], PUBLISH_EVERY_MS)
  await Promise.all(logs.map((l) => l.untilSeq(25, 10_000)))

  const killedAt = now()
  await redis.kill()
  const deadAt = now()
  const notReady = [false, false, false]
  await until(
    'every node to report not ready',
    async () => {
      const codes = await Promise.all(nodes.map((n) => n.readyz()))
      codes.forEach((c, i) => (notReady[i] ||= c === 503))
      return notReady.every(Boolean)
    },
    3000,
  )
  await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (now() - killedAt))))
  await redis.restart()
  const restartedAt = now()
  await until('every node to be ready again', async () => (await Promise.all(nodes.map((n) => n.readyz()))).every((c) => c === 200), 10_000)

  await Promise.all(logs.map((l) => l.until('the subscriber to come through the outage', () => isRecoveredEnough(l), 15_000)))
  // Publish on after the recovery, so that the live feed is shown to work again.
  const target = publisher.issued + 25
  await Promise.all(logs.map((l) => l.untilSeq(target, 10_000)))
  const acks = await publisher.settle(15_000)
  const last = acks.at(-1)
  assert.ok(last !== undefined)
  await Promise.all(logs.map((l) => l.until('the last publication', () => l.pubs.some((p) => p.epoch === last.epoch && p.offset === last.offset), 10_000)))
  return { nodes, logs, acks, notReady, killedAt, deadAt, restartedAt }
}

const ms = (x: number): string => `${Math.round(x)} ms`

describe('multi-node: Redis restarted under the fleet', () => {
  it('without persistence: a new epoch, and every resubscribe says recovered:false — no silent gap', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t, { persistence: false })
    let oldEpoch = ''
    const o = await redisOutage(t, redis, (l) => {
      oldEpoch ||= l.subscribes[0]?.epoch ?? ''
      return l.subscribes.some((s) => s.epoch !== oldEpoch)
    })

    // The publisher: every publish acked once; offsets 1..a in the old epoch, then 1..b in a new one.
    const epochs = [...new Set(o.acks.map((a) => a.epoch))]
    assert.equal(epochs.length, 2, `acks in the old epoch, then in one new epoch (${epochs.join(', ')})`)
    const [e0, e1] = epochs as [string, string]
    assert.equal(e0, oldEpoch)
    const before = o.acks.filter((a) => a.epoch === e0)
    const after = o.acks.filter((a) => a.epoch === e1)
    assert.deepEqual(
      o.acks.map((a) => a.seq),
      range(o.acks.length),
      'every publish acked',
    )
    assert.deepEqual(
      before.map((a) => a.offset),
      range(before.length),
      'old epoch: offsets 1..a in publish order',
    )
    assert.deepEqual(
      after.map((a) => a.offset),
      range(after.length),
      'new epoch: offsets start again at 1, in publish order',
    )
    assert.ok(Math.max(...before.map((a) => a.seq)) < Math.min(...after.map((a) => a.seq)), 'the new epoch follows the old one')
    const seqAt = new Map(o.acks.map((a) => [`${a.epoch}/${a.offset}`, a.seq]))

    for (const [i, log] of o.logs.entries()) {
      const who = `subscriber on n${i + 1}`
      // The first resubscribe into the new epoch was told that history was lost.
      const k = log.subscribes.findIndex((s) => s.epoch !== e0)
      const lost = log.subscribes[k]
      assert.ok(lost !== undefined)
      assert.equal(lost.wasRecovering, true, `${who}: it tried to recover`)
      assert.equal(lost.recovered, false, `${who}: and was told it could not`)
      assert.equal(lost.epoch, e1)
      for (const s of log.subscribes.slice(k + 1)) assert.equal(s.recovered, true, `${who}: later resubscribes in the new epoch recover`)
      // Before the announcement: the old epoch, gapless from 1, in order (a tail the node did not
      // get before Redis died is covered by recovered:false). After it: the new epoch, gapless
      // from where the subscribe put it, to the end.
      const old = log.pubs.filter((p) => p.at <= lost.at)
      const fresh = log.pubs.filter((p) => p.at > lost.at)
      assert.ok(
        old.every((p) => p.epoch === e0),
        `${who}: nothing of the new epoch before recovered:false`,
      )
      assert.deepEqual(
        old.map((p) => p.offset),
        range(old.length),
        `${who}: old epoch exactly once, in order`,
      )
      assert.ok(
        fresh.every((p) => p.epoch === e1),
        `${who}: only the new epoch after it`,
      )
      assert.deepEqual(
        fresh.map((p) => p.offset),
        range(after.length).slice(lost.offset),
        `${who}: new epoch from offset ${lost.offset + 1}, exactly once, in order`,
      )
      // What arrived is what was published at that offset.
      for (const p of [...old, ...fresh]) {
        const seq = seqAt.get(`${p.epoch}/${p.offset}`)
        // An old-epoch publication stored just before the kill, whose ack was lost, was retried
        // into the new epoch: its old copy has no ack of its own.
        if (seq !== undefined) assert.equal(p.seq, seq, `${who}: the data at ${p.epoch}/${p.offset}`)
        else assert.ok(p.epoch === e0 && p.offset > before.length, `${who}: ${p.epoch}/${p.offset} was acked`)
      }
      t.diagnostic(`${who}: ${old.length} publications of the old epoch, recovered:false ${ms(lost.at - o.restartedAt)} after the restart, then ${fresh.length} of the new`)
    }
    assert.deepEqual(o.notReady, [true, true, true], '/readyz said 503 on every node during the outage')
  })

  it('with AOF (appendfsync always): the same epoch, and every subscriber gets every publication exactly once', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t, { persistence: true })
    // Nothing to wait for beyond the publications themselves: with nothing lost there may be no resubscribe at all.
    const o = await redisOutage(t, redis, () => true)
    for (const [i, log] of o.logs.entries()) {
      const who = `subscriber on n${i + 1}`
      assertExactlyOnce(log, o.acks, who)
      // Nothing was lost, so any resubscribe must have recovered.
      for (const s of log.subscribes.slice(1)) {
        assert.equal(s.wasRecovering, true)
        assert.equal(s.recovered, true, `${who}: a resubscribe after the restart recovered`)
      }
      // An ack that left Redis just before the kill can still be on its way through the node to the
      // publisher; past that (250 ms after the process was gone), none can come.
      const during = o.acks.filter((a) => a.at > o.deadAt + 250 && a.at < o.restartedAt).length
      assert.equal(during, 0, 'nothing can be acked while Redis is down')
      t.diagnostic(`${who}: ${log.pubs.length} publications, ${log.subscribes.length - 1} resubscribes (recovered:true), ${log.disconnects.length} disconnects`)
    }
    assert.deepEqual(o.notReady, [true, true, true], '/readyz said 503 on every node during the outage')
  })
})
