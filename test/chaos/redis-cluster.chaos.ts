/// <reference path="../../packages/server/src/engine/cluster-key-slot.d.ts" />
/**
 * Scenario — a Redis Cluster (three primaries, three replicas, sharded pub/sub) under two
 * `serve --engine redis` nodes, subscribers and publishers, and a fault inside the cluster:
 *
 * - a primary killed with SIGKILL: its replica takes over its slots. The channels it served
 *   continue in a new epoch (what the replica had not received is announced with
 *   `recovered: false`); nothing is lost silently, nothing duplicated, in order.
 * - a slot migration (`redis-cli --cluster reshard`) of a channel being published to: keys move
 *   whole, so the stream keeps its epoch and every subscriber gets every publication exactly once.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import { channelInSlot, cli, firstSlot, RedisCluster } from '../support/redis-topology.js'
import { REDIS_SERVER, requireBinary, result, round, until } from './harness.js'
import { assertClean, now, summary } from './history.js'
import { firstAckAfter, redisFailover, silentAnomalies } from './redis-failover.js'

async function cluster(t: TestContext): Promise<RedisCluster> {
  const c = await RedisCluster.start()
  t.after(() => c.close())
  return c
}

describe('chaos: Redis Cluster faults under load', () => {
  it('a primary killed: no silent loss, no duplicate; its channels continue in a new epoch', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const c = await cluster(t)
    const channels = ['cl:0', 'cl:1', 'cl:2', 'cl:3']
    const victimSlot = calculateSlot(channels[0] as string)
    let killed = 0
    const o = await redisFailover(t, {
      redisUrl: c.url,
      channels,
      subscribers: 12,
      durability: 'none',
      everyMs: 20,
      fault: async () => {
        const k = await c.killPrimaryOf(victimSlot)
        killed = k.killed
        return performance.timeOrigin + k.at
      },
    })
    t.diagnostic(summary(o.report))
    for (const e of o.report.examples) t.diagnostic(e)
    const onVictim = channels.filter((ch) => calculateSlot(ch) === victimSlot || false)
    result(t, 'redis-cluster-primary-kill', {
      subscribers: o.logs.length,
      published: o.acks.length,
      readyAfterKillMs: round(o.readyAt - o.faultAt),
      firstAckAfterKillMs: round(firstAckAfter(o.acks.filter((a) => onVictim.includes(a.channel)), o.faultAt, false)),
      toldRecoveredFalse: o.logs.filter((l) => l.subscribes.some((s) => s.at > o.faultAt && !s.recovered)).length,
      lost: o.report.lost,
      duplicated: o.report.duplicated,
      silentGaps: o.report.silentGaps,
    })
    assert.ok(killed > 0)
    assert.deepEqual(o.errors, [])
    assert.equal(silentAnomalies(o.report), 0, `${summary(o.report)}\n  ${o.report.examples.join('\n  ')}`)
  })

  it('a slot migration of a channel being published to: exactly once, in order, one epoch', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const c = await cluster(t)
    const source = (await c.nodes()).find((n) => n.primary) as Awaited<ReturnType<RedisCluster['nodes']>>[number]
    const slot = firstSlot(source)
    const hot = channelInSlot('hot:', slot)
    const channels = [hot, 'cold:1']
    let moved = { from: 0, to: 0 }
    const o = await redisFailover(t, {
      redisUrl: c.url,
      channels,
      subscribers: 10,
      durability: 'none',
      everyMs: 10,
      fault: async () => {
        const at = now()
        moved = await c.reshard(slot, 1)
        await until('the slot to be served by its new owner', async () => (await c.ownerOf(slot)).port === moved.to, 10_000)
        return at
      },
    })
    t.diagnostic(summary(o.report))
    const key = `hf:{${hot}}:pub`
    const subscribedOn = (await cli(moved.to, 'pubsub', 'shardchannels', key)).includes(key)
    result(t, 'redis-cluster-slot-migration', {
      subscribers: o.logs.length,
      published: o.acks.length,
      migratedFrom: moved.from,
      migratedTo: moved.to,
      resubscribes: o.logs.reduce((n, l) => n + l.subscribes.length - 1, 0),
      lost: o.report.lost,
      duplicated: o.report.duplicated,
      recoveredFalse: o.report.unrecovered,
    })
    assert.ok(subscribedOn, 'the nodes subscribe the channel on its new owner')
    assert.deepEqual(o.errors, [])
    assert.equal(new Set(o.acks.filter((a) => a.channel === hot).map((a) => a.epoch)).size, 1, 'one epoch: a migration loses nothing')
    assertClean(o.report)
  })
})
