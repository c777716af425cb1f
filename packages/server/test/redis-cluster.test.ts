/// <reference path="../src/engine/cluster-key-slot.d.ts" />
/**
 * The Redis engine on a real Redis Cluster (three primaries, three replicas) started by this file
 * on free ports: the shared engine contract, sharded pub/sub (a channel's traffic stays on its
 * shard), two engines as two nodes, a primary failover inside the cluster, and a slot migration
 * (`redis-cli --cluster reshard`) of a channel being published to.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, describe, it, type TestContext } from 'node:test'
import calculateSlot from 'cluster-key-slot'
import type { PublishOutcome, StreamOptions, StreamPublication } from '../src/engine/engine.js'
import { RedisConfigError } from '../src/engine/redis-errors.js'
import { RedisEngine, type RedisEngineOptions } from '../src/engine/redis-engine.js'
import { engineContract } from './engine-contract.js'
import { fakeClock, isCode, NodeHandler, prefixes, sharedOnce, startNode, waitFor } from './redis-helpers.js'
import { RedisServer } from '../../../test/support/redis-server.js'
import { channelInSlot, cli, firstSlot, RedisCluster } from '../../../test/support/redis-topology.js'

const STREAM: StreamOptions = { historySize: 5000, historyTtlMs: 600_000, streamTtlMs: 3_600_000 }
const FAST: RedisEngineOptions = { commandTimeoutMs: 1000, healthCheckIntervalMs: 250, reconnectBaseMs: 50, reconnectMaxMs: 300, replicaWaitMs: 300 }

// One cluster for the contract and the cross-node tests; the failover and migration tests start their own.
const sharedCluster = sharedOnce(() => RedisCluster.start())
const uniquePrefix = prefixes('c')

async function ownCluster(t: TestContext): Promise<RedisCluster> {
  const cluster = await RedisCluster.start()
  t.after(() => cluster.close())
  return cluster
}


engineContract('RedisEngine (Cluster)', async () => {
  const cluster = await sharedCluster()
  const clock = fakeClock()
  return { engine: new RedisEngine({ url: cluster.url, prefix: uniquePrefix(), now: clock.now }), advance: clock.advance }
})

/** The publications of `channel` a handler received, as offsets. */
function offsets(pubs: readonly StreamPublication[]): number[] {
  return pubs.map((p) => p.offset)
}

/** Publish `{ i }` for i = 1.. every `everyMs` until stopped; keep the outcomes and the failures. */
function publishLoop(t: TestContext, engine: RedisEngine, channel: string, everyMs: number): { acks: PublishOutcome[]; failures: number; stop: () => Promise<void> } {
  const state = { acks: [] as PublishOutcome[], failures: 0, stopped: false }
  let i = 0
  const loop = (async () => {
    while (!state.stopped) {
      const n = ++i
      // A failed publish is retried with the same id, as the SDK does, until it is acknowledged.
      for (;;) {
        try {
          state.acks.push(await engine.publish(channel, { i: n }, { ...STREAM, idempotencyKey: `k${n}` }))
          break
        } catch {
          state.failures++
          await new Promise((r) => setTimeout(r, 50))
        }
      }
      await new Promise((r) => setTimeout(r, everyMs))
    }
  })()
  t.after(() => {
    state.stopped = true
  })
  return {
    get acks() {
      return state.acks
    },
    get failures() {
      return state.failures
    },
    stop: async () => {
      state.stopped = true
      await loop
    },
  }
}

describe('RedisEngine on a Redis Cluster', () => {
  it('sharded pub/sub: a channel is subscribed only on the primary that owns its slot, and delivered across nodes', async (t) => {
    const cluster = await sharedCluster()
    const prefix = uniquePrefix()
    const a = await startNode(t, cluster.url, { prefix })
    const b = await startNode(t, cluster.url, { prefix })
    assert.equal(a.engine.topology, 'cluster')
    const channels = Array.from({ length: 6 }, () => `room:${randomUUID()}`)
    for (const ch of channels) await a.engine.subscribe(ch)
    // 300 concurrent publishes from the other node, spread over the channels.
    const outcomes = await Promise.all(Array.from({ length: 300 }, (_, i) => b.engine.publish(channels[i % channels.length] as string, { i }, STREAM)))
    for (const ch of channels) {
      const n = outcomes.filter((_, i) => channels[i % channels.length] === ch).length
      await a.rec.until(`${ch}: ${n} publications`, () => a.rec.of(ch).length >= n)
      assert.deepEqual(
        offsets(a.rec.of(ch)),
        Array.from({ length: n }, (_, i) => i + 1),
        'every publication once, in offset order',
      )
    }
    // Where the subscriptions are: each channel's pub/sub channel on its slot's primary only.
    const nodes = await cluster.nodes()
    for (const ch of channels) {
      const key = `${prefix}:{${ch}}:pub`
      const owner = await cluster.ownerOf(calculateSlot(ch))
      for (const n of nodes) {
        const listed = (await cli(n.port, 'pubsub', 'shardchannels', key)).includes(key)
        assert.equal(listed, n.port === owner.port, `${key} subscribed on ${n.port}: ${listed} (owner ${owner.port})`)
        assert.deepEqual(await cli(n.port, 'pubsub', 'channels', `${prefix}:{*`), [], 'no classic pub/sub for channels')
      }
    }
    // Control messages, which every node needs, use classic pub/sub.
    await b.engine.publishControl({ type: 'message', data: 'hello', node: 'b' })
    await a.rec.until('the control message', () => a.rec.controls.some((m) => m.type === 'message'))
  })

  it('shardedPubSub: false uses classic PUBLISH (the cluster bus copies it to every node)', async (t) => {
    const cluster = await sharedCluster()
    const prefix = uniquePrefix()
    const a = await startNode(t, cluster.url, { prefix, shardedPubSub: false })
    const b = await startNode(t, cluster.url, { prefix, shardedPubSub: false })
    const ch = `classic:${randomUUID()}`
    await a.engine.subscribe(ch)
    for (let i = 0; i < 20; i++) await b.engine.publish(ch, { i }, STREAM)
    await a.rec.until('20 publications', () => a.rec.of(ch).length === 20)
    const key = `${prefix}:{${ch}}:pub`
    const subscribedOn = []
    for (const n of await cluster.nodes()) if ((await cli(n.port, 'pubsub', 'channels', key)).includes(key)) subscribedOn.push(n.port)
    assert.equal(subscribedOn.length, 1)
  })

  it('a primary killed: the node is not ready until a replica took over, then everything flows again; acknowledged publications are kept or announced', async (t) => {
    const cluster = await ownCluster(t)
    const { engine, rec } = await startNode(t, cluster.url, { prefix: 'kill', ...FAST })
    const pubNode = await startNode(t, cluster.url, { prefix: 'kill', ...FAST })
    const ch = `busy:${randomUUID()}`
    const slot = calculateSlot(ch)
    await engine.subscribe(ch)
    const load = publishLoop(t, pubNode.engine, ch, 5)
    await rec.until('live traffic', () => rec.of(ch).length >= 50)
    const at = performance.now()
    const { killed, promoted } = await cluster.killPrimaryOf(slot)
    const notReadyAt = await rec.untilState(false, at, 10_000)
    const readyAt = await rec.untilState(true, at, 30_000)
    t.diagnostic(`cluster failover ${killed} → ${promoted}: not ready after ${Math.round(notReadyAt - at)} ms, ready after ${Math.round(readyAt - at)} ms`)
    const resumedFrom = load.acks.length
    await waitFor('publications acknowledged after the failover', () => load.acks.length >= resumedFrom + 50, 20_000)
    await load.stop()
    const last = load.acks.at(-1) as PublishOutcome
    await rec.until('the last publication', () => rec.of(ch).some((p) => p.epoch === last.epoch && p.offset === last.offset), 10_000)
    // The feed: in order within each epoch, never an offset twice.
    const seen = new Set<string>()
    for (const p of rec.of(ch)) {
      const k = `${p.epoch}/${p.offset}`
      assert.ok(!seen.has(k), `${k} delivered twice`)
      seen.add(k)
    }
    // Every acknowledged publication of the final epoch is in history; an earlier epoch was
    // abandoned with a new one (the replica may have missed its last writes), never reused.
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: last.epoch, offset: 0 }, limit: STREAM.historySize })
    const stored = new Set(page.publications.map((p) => p.offset))
    for (const a of load.acks.filter((x) => x.epoch === last.epoch)) assert.ok(stored.has(a.offset), `acked ${a.epoch}/${a.offset} kept`)
    const epochs = [...new Set(load.acks.map((a) => a.epoch))]
    assert.ok(epochs.length <= 2, `at most one new epoch (${epochs.join(', ')})`)
    t.diagnostic(`publish failures (retried): ${load.failures}; epochs: ${epochs.length}`)
  })

  it("durability 'replicated': a primary killed loses no acknowledged publication; the stream keeps its epoch", async (t) => {
    const cluster = await ownCluster(t)
    // The replicas' confirmation is waited for 1.5 s (300 ms by default was once too short on a loaded machine).
    const { engine, rec } = await startNode(t, cluster.url, { prefix: 'rk', ...FAST, commandTimeoutMs: 3000, replicaWaitMs: 1500 })
    const ch = `durable:${randomUUID()}`
    await engine.subscribe(ch)
    const opts = { ...STREAM, durability: 'replicated' as const }
    const acked: PublishOutcome[] = []
    for (let i = 1; i <= 20; i++) acked.push(await engine.publish(ch, { i }, opts))
    await rec.until('20 live publications', () => rec.of(ch).length === 20)
    const at = performance.now()
    await cluster.killPrimaryOf(calculateSlot(ch))
    await rec.untilState(true, at, 30_000)
    const epoch = acked[0]?.epoch as string
    const page = await engine.history(ch, { stream: STREAM, since: { epoch, offset: 0 }, limit: 100 })
    assert.equal(page.continuous, true)
    assert.equal(page.epoch, epoch, 'promoted from the replica that acknowledged them: the same epoch')
    assert.deepEqual(offsets(page.publications as StreamPublication[]), Array.from({ length: 20 }, (_, i) => i + 1))
    // The promoted primary has no replica of its own: nothing more is acknowledged, nothing falsely.
    // (Refused because no replica confirms it, or, while the cluster settles, because the command
    // timed out: either way a temporary error, never an acknowledgement.)
    await assert.rejects(engine.publish(ch, { i: 21 }, opts), (err: unknown) => isCode('engine_unavailable')(err) && (err as { temporary: boolean }).temporary)
  })

  it('a slot migration (redis-cli --cluster reshard) of a channel under load: the subscription follows the slot, nothing is lost or doubled', async (t) => {
    const cluster = await ownCluster(t)
    const nodes = await cluster.nodes()
    const source = nodes.find((n) => n.primary) as (typeof nodes)[number]
    // reshard moves a primary's lowest slots first: a channel in that slot is the one to move.
    const slot = firstSlot(source)
    const ch = channelInSlot('hot:', slot)
    const { engine, rec } = await startNode(t, cluster.url, { prefix: 'mig', ...FAST })
    const pubNode = await startNode(t, cluster.url, { prefix: 'mig', ...FAST })
    await engine.subscribe(ch)
    const load = publishLoop(t, pubNode.engine, ch, 2)
    await rec.until('live traffic', () => rec.of(ch).length >= 50)
    const { from, to } = await cluster.reshard(slot, 1)
    assert.equal((await cluster.ownerOf(slot)).port, to, `slot ${slot} moved ${from} → ${to}`)
    const movedAt = load.acks.length
    await waitFor('publications acknowledged after the migration', () => load.acks.length >= movedAt + 100, 20_000)
    await load.stop()
    const key = `mig:{${ch}}:pub`
    await waitFor('the subscription on the new owner', async () => (await cli(to, 'pubsub', 'shardchannels', key)).includes(key), 10_000)
    assert.deepEqual(await cli(from, 'pubsub', 'shardchannels', key), [], 'and no longer on the old one')
    const last = load.acks.at(-1) as PublishOutcome
    await rec.until('the last publication', () => rec.of(ch).some((p) => p.offset === last.offset), 10_000)
    // One epoch (a migration loses nothing), every acknowledged offset 1..N exactly once in history.
    assert.equal(new Set(load.acks.map((a) => a.epoch)).size, 1)
    assert.deepEqual(
      load.acks.map((a) => a.offset),
      Array.from({ length: load.acks.length }, (_, i) => i + 1),
    )
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: last.epoch, offset: 0 }, limit: STREAM.historySize })
    assert.equal(page.continuous, true)
    assert.deepEqual(offsets(page.publications as StreamPublication[]), Array.from({ length: last.offset }, (_, i) => i + 1))
    // The live feed: in order, never twice. A gap while the subscription moved is allowed only
    // because the engine reported itself not ready meanwhile (the gateway then recovers it).
    const live = offsets(rec.of(ch))
    for (let i = 1; i < live.length; i++) assert.ok((live[i] as number) > (live[i - 1] as number), `in order at ${i}: ${live[i - 1]} → ${live[i]}`)
    const gaps = live.filter((o, i) => i > 0 && o !== (live[i - 1] as number) + 1).length
    if (gaps > 0) assert.ok(rec.states.some((s) => !s.ready), 'a gap only with a not-ready report')
    t.diagnostic(`migration: ${load.acks.length} acked, ${load.failures} retried, ${gaps} gaps in the live feed, not-ready reports: ${rec.states.filter((s) => !s.ready).length}`)
  })

  it('a server that is not a cluster node, given as a cluster, fails the start and names the problem', async (t) => {
    const single = await RedisServer.start()
    t.after(() => single.close())
    const engine = new RedisEngine({ url: `redis+cluster://${single.address}`, onError: () => {} })
    t.after(() => engine.close())
    await assert.rejects(engine.start(new NodeHandler()), (err: unknown) => {
      assert.ok(err instanceof RedisConfigError, String(err))
      assert.match((err as Error).message, new RegExp(`${single.address} is not a Redis Cluster node \\(cluster support is disabled\\)`))
      return true
    })
    const cluster = await sharedCluster()
    const node = cluster.servers[0] as RedisServer
    const asSingle = new RedisEngine({ url: `redis://${node.address}`, onError: () => {} })
    t.after(() => asSingle.close())
    await assert.rejects(asSingle.start(new NodeHandler()), /is a Redis Cluster node: use redis\+cluster:\/\//)
  })
})
