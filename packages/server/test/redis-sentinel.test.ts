/**
 * The Redis engine behind Sentinel: a real primary, a replica whose replication link passes
 * through a chaos proxy (so that it can really lag: the primary keeps acknowledging writes the
 * replica never receives), and three Sentinels, all started by this file on free ports. The
 * primary is killed with SIGKILL; the Sentinels promote the replica.
 *
 * - durability 'none': what the replica never got is lost, and the stream says so: it continues
 *   in a new epoch (its writer's replication id is not the new primary's), so that no client
 *   takes a reused offset for one it saw.
 * - durability 'replicated': a publication is acknowledged and fanned out only once the replica
 *   has it; with the link stalled a publish fails with a temporary error instead of a false ack;
 *   after the failover every acknowledged publication is there, in the same epoch.
 * - configuration the engine cannot work with fails the start, naming the problem.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it, type TestContext } from 'node:test'
import type { StreamOptions, StreamPublication } from '../src/engine/engine.js'
import { RedisConfigError } from '../src/engine/redis-errors.js'
import { RedisEngine } from '../src/engine/redis-engine.js'
import { isCode, NodeHandler, startNode, waitFor } from './redis-helpers.js'
import { SentinelSet, poll } from '../../../test/support/redis-topology.js'
import { freePort } from '../../../test/support/ports.js'

const STREAM: StreamOptions = { historySize: 1000, historyTtlMs: 600_000, streamTtlMs: 3_600_000 }
const REPLICATED = { ...STREAM, durability: 'replicated' as const }
/** Short timeouts, so that the failover is noticed quickly. */
const FAST = { commandTimeoutMs: 1000, healthCheckIntervalMs: 250, reconnectBaseMs: 50, reconnectMaxMs: 300, replicaWaitMs: 300 }

async function sentinels(t: TestContext): Promise<SentinelSet> {
  const set = await SentinelSet.start()
  t.after(() => set.close())
  return set
}

function offsets(pubs: readonly StreamPublication[]): number[] {
  return pubs.map((p) => p.offset)
}

async function failover(set: SentinelSet, rec: NodeHandler): Promise<{ killedAt: number; readyAt: number }> {
  const killedAt = await set.killPrimary()
  await rec.untilState(false, killedAt, 10_000)
  await set.awaitFailover()
  const readyAt = await rec.untilState(true, killedAt, 15_000)
  return { killedAt, readyAt }
}

describe('RedisEngine with Sentinel', () => {
  it("follows a failover; with durability 'none' the writes the lagging replica missed are announced by a new epoch", async (t) => {
    const set = await sentinels(t)
    const { engine, rec } = await startNode(t, set.url, { prefix: 'none', ...FAST })
    assert.equal(engine.topology, 'sentinel')
    const ch = `s:${randomUUID()}`
    await engine.subscribe(ch)
    for (let i = 1; i <= 5; i++) await engine.publish(ch, { i }, STREAM)
    await waitFor('the replica to catch up', async () => (await set.replicaLagBytes()) === 0)
    set.stallReplica()
    // Acknowledged by the primary, never seen by the replica.
    for (let i = 6; i <= 10; i++) assert.equal((await engine.publish(ch, { i }, STREAM)).offset, i)
    await rec.until('10 live publications', () => rec.of(ch).length === 10)
    assert.ok((await set.replicaLagBytes()) < 0, 'the replica lags')
    const seen = rec.of(ch).at(-1) as StreamPublication

    const { killedAt, readyAt } = await failover(set, rec)
    t.diagnostic(`sentinel failover: ready again ${Math.round(readyAt - killedAt)} ms after the kill`)

    // A subscriber that saw offset 10 must not be told that offsets 6.. continue where it was.
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: seen.epoch, offset: 10 }, limit: 100 })
    assert.equal(page.continuous, false)
    assert.notEqual(page.epoch, seen.epoch, 'a new epoch')
    assert.equal(page.offset, 5, 'the new primary has what was replicated')
    const next = await engine.publish(ch, { i: 'after' }, STREAM)
    assert.deepEqual(next, { offset: 6, epoch: page.epoch, duplicate: false })
    await rec.until('the publication after the failover', () => rec.of(ch).length === 11)
    assert.equal(rec.of(ch).at(-1)?.epoch, page.epoch, 'the live feed carries the new epoch: the gateway sends subscribers to recovery')
    assert.ok(
      rec.errors.some((e) => /now served by another or a restarted server/.test(String(e))),
      'the failover is logged',
    )
  })

  it("durability 'replicated': no acknowledgement without the replica; after the failover every acknowledged publication is there, same epoch", async (t) => {
    const set = await sentinels(t)
    // The replica's confirmation is waited for 1.5 s: on a loaded machine 300 ms (the default) was
    // once too short for a healthy replica, and the acknowledged publishes below must succeed.
    const { engine, rec } = await startNode(t, set.url, { prefix: 'repl', ...FAST, commandTimeoutMs: 3000, replicaWaitMs: 1500 })
    const ch = `r:${randomUUID()}`
    await engine.subscribe(ch)
    const acked = []
    for (let i = 1; i <= 5; i++) acked.push(await engine.publish(ch, { i }, REPLICATED))
    assert.deepEqual(
      acked.map((a) => a.offset),
      [1, 2, 3, 4, 5],
    )
    await rec.until('5 live publications', () => rec.of(ch).length === 5)
    const epoch = acked[0]?.epoch as string

    set.stallReplica()
    const started = performance.now()
    await assert.rejects(engine.publish(ch, { i: 'unconfirmed' }, { ...REPLICATED, idempotencyKey: 'k-unconfirmed' }), (err: unknown) => {
      assert.ok(isCode('engine_unavailable')(err), String(err))
      assert.match(String(err), /no replica confirmed the publication within 1500 ms/)
      return true
    })
    const took = performance.now() - started
    assert.ok(took >= 1450 && took < 3000, `failed after the wait (${Math.round(took)} ms)`)
    // Neither fanned out nor readable: nobody saw offset 6.
    const during = await engine.history(ch, { stream: STREAM, limit: 100 })
    assert.equal(during.offset, 5)
    assert.deepEqual(offsets(rec.of(ch)), [1, 2, 3, 4, 5])

    const { killedAt, readyAt } = await failover(set, rec)
    t.diagnostic(`sentinel failover (replicated): ready again ${Math.round(readyAt - killedAt)} ms after the kill`)
    const page = await engine.history(ch, { stream: STREAM, since: { epoch, offset: 0 }, limit: 100 })
    assert.equal(page.continuous, true, 'the same epoch: nothing acknowledged was lost')
    assert.equal(page.epoch, epoch)
    assert.deepEqual(
      page.publications.map((p) => p.data),
      [1, 2, 3, 4, 5].map((i) => ({ i })),
    )

    // The promoted primary has no replica until the old one is back: still no false acknowledgement.
    await assert.rejects(engine.publish(ch, { i: 'alone' }, REPLICATED), isCode('engine_unavailable'))
    await set.primary.restart()
    await poll('the old primary to rejoin as a replica', async () => (await set.primary.cli('role'))[0] === 'slave', 20_000, 100)
    const retry = await engine.publish(ch, { i: 'unconfirmed' }, { ...REPLICATED, idempotencyKey: 'k-unconfirmed' })
    assert.equal(retry.epoch, epoch)
    await rec.until('the retried publication', () => rec.of(ch).some((p) => (p.data as { i: unknown }).i === 'unconfirmed'))
    const live = rec.of(ch)
    assert.equal(new Set(offsets(live)).size, live.length, 'each offset once on the feed')
    assert.ok(
      live.every((p) => p.epoch === epoch),
      'one epoch throughout',
    )
  })

  it('configuration it cannot work with fails the start and names the problem', async (t) => {
    const set = await sentinels(t)
    const fails = async (url: string, re: RegExp): Promise<void> => {
      const engine = new RedisEngine({ url, startTimeoutMs: 1000, onError: () => {} })
      t.after(() => engine.close())
      await assert.rejects(engine.start(new NodeHandler()), (err: unknown) => {
        assert.ok(err instanceof RedisConfigError, String(err))
        assert.match((err as Error).message, re)
        return true
      })
    }
    const s = set.sentinels.map((x) => x.address).join(',')
    await fails(`redis+sentinel://${s}/no-such-master`, /know no master named "no-such-master"/)
    const nobody = [await freePort(), await freePort()].map((p) => `127.0.0.1:${p}`).join(',')
    await fails(`redis+sentinel://${nobody}/${SentinelSet.MASTER}`, /no Sentinel answered at 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+/)
    await fails(`redis+sentinel://${set.primary.address}/${SentinelSet.MASTER}`, /is not a Sentinel/)
    await fails(`redis://${set.sentinels[0]?.address}`, /is a Sentinel, not a Redis server: use redis\+sentinel:\/\//)
    // A bad URL is a TypeError at construction.
    assert.throws(() => new RedisEngine({ url: `redis+sentinel://${s}` }), /must end with the master name/)
  })

  it('Sentinels and primary gone later: the engine stays up, not ready, and says why; it recovers by itself', async (t) => {
    const set = await sentinels(t)
    const { engine, rec } = await startNode(t, set.url, { prefix: 'gone', ...FAST })
    const at = performance.now()
    await Promise.all(set.sentinels.map((s) => s.kill()))
    await set.primary.kill()
    await rec.untilState(false, at, 10_000)
    assert.equal(engine.isReady(), false)
    await waitFor('the reason in the log', () => rec.errors.some((e) => /not ready: /.test(String(e))), 5000)
    // Said again while it lasts, with what ioredis last reported.
    await waitFor('the Sentinels named in the log', () => rec.errors.some((e) => /still not ready: no connection to Redis \(last error: All sentinels are unreachable/.test(String(e))), 10_000)
    await assert.rejects(engine.publish('x', 1, STREAM), isCode('engine_unavailable'))
    // Back: the Sentinels still know the primary (it kept its port), and the engine finds it.
    await set.primary.restart()
    await Promise.all(set.sentinels.map((s) => s.restart()))
    await rec.untilState(true, at, 20_000)
    assert.equal((await engine.publish('x', 1, STREAM)).offset, 1)
  })
})
