/**
 * The Redis engine against a real `redis-server` started by this file on a free port (never the
 * machine's own Redis): the shared engine contract, two engines as two nodes of one fleet, and
 * the outages the engine must survive — Redis restarted with and without persistence, frozen
 * with SIGSTOP, killed and restarted. Every wait is bounded; the only fixed wait is the length of
 * the freeze, which is what that test is about.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, describe, it, type TestContext } from 'node:test'
import fc from 'fast-check'
import { HoldfastError, type ClientInfo } from '@holdfast/protocol'
import type { ControlMessage, StreamOptions } from '../src/engine/engine.js'
import { reconnectDelay, RedisEngine, type RedisEngineOptions } from '../src/engine/redis-engine.js'
import { engineContract } from './engine-contract.js'
import { RawClient, startServer } from './helpers.js'
import { fakeClock, isCode, NodeHandler, prefixes, sharedOnce, startNode, waitFor } from './redis-helpers.js'
import { RedisServer } from '../../../test/support/redis-server.js'

const STREAM: StreamOptions = { historySize: 1000, historyTtlMs: 600_000, streamTtlMs: 3_600_000 }

// One server for the contract and the multi-node tests; outage tests start their own.
const sharedServer = sharedOnce(() => RedisServer.start())
/** A prefix per test isolates its keys and pub/sub channels on the shared server. */
const uniquePrefix = prefixes('t')

function channel(): string {
  return `chan:${randomUUID()}`
}


engineContract('RedisEngine', async () => {
  const server = await sharedServer()
  const clock = fakeClock()
  return { engine: new RedisEngine({ url: server.url, prefix: uniquePrefix(), now: clock.now }), advance: clock.advance }
})

// The default clock is the Redis server's (TIME in the scripts): the same suite, time travel skipped.
engineContract('RedisEngine (Redis clock)', async () => {
  const server = await sharedServer()
  return { engine: new RedisEngine({ url: server.url, prefix: uniquePrefix() }) }
})

/** How long `p` takes to settle, and whether it rejected with engine_unavailable. */
async function timedFailure(p: Promise<unknown>): Promise<{ ms: number; unavailable: boolean }> {
  const start = performance.now()
  try {
    await p
    return { ms: performance.now() - start, unavailable: false }
  } catch (err) {
    return { ms: performance.now() - start, unavailable: isCode('engine_unavailable')(err) }
  }
}

async function numsub(server: RedisServer, pubsubChannel: string): Promise<number> {
  const lines = await server.cli('PUBSUB', 'NUMSUB', pubsubChannel)
  return Number(lines[1])
}

const round = (ms: number): number => Math.round(ms)

describe('RedisEngine', () => {
  describe('options', () => {
    it('rejects bad options with a TypeError naming the option', () => {
      const cases: [RedisEngineOptions, string][] = [
        [{ commandTimeoutMs: 0 }, 'commandTimeoutMs'],
        [{ healthCheckIntervalMs: 1.5 }, 'healthCheckIntervalMs'],
        [{ prefix: '' }, 'prefix'],
        [{ prefix: 'a{b}' }, 'prefix'],
        [{ breaker: { errorThresholdPercentage: 0 } }, 'breaker.errorThresholdPercentage'],
        [{ breaker: { volumeThreshold: -1 } }, 'breaker.volumeThreshold'],
        [{ breaker: { resetTimeoutMs: -5 } }, 'breaker.resetTimeoutMs'],
        [{ reconnectBaseMs: 500, reconnectMaxMs: 100 }, 'reconnectMaxMs'],
        [{ startTimeoutMs: Number.NaN }, 'startTimeoutMs'],
        [{ idempotencyTtlMs: 0 }, 'idempotencyTtlMs'],
        [{ cluster: [] }, 'cluster'],
        [{ now: 5 as unknown as () => number }, 'now'],
        [{ onError: 'log' as unknown as (err: unknown) => void }, 'onError'],
      ]
      for (const [opts, name] of cases) {
        assert.throws(() => new RedisEngine(opts), (err: unknown) => err instanceof TypeError && err.message.includes(`"${name}"`), name)
      }
    })

    it('property: reconnect delays are full-jitter, capped, and never collapse to a constant', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 60_000 }), (attempt, base, extra) => {
          const max = base + extra
          const d = reconnectDelay(attempt, base, max)
          return Number.isInteger(d) && d >= 0 && d <= Math.min(max, base * 2 ** Math.min(attempt - 1, 30))
        }),
      )
      // At the cap, after a million attempts, the delays are still spread out.
      const many = Array.from({ length: 200 }, () => reconnectDelay(1_000_000, 100, 2000))
      assert.ok(new Set(many).size > 50)
      assert.ok(Math.max(...many) <= 2000)
    })

    it('refuses channel names with braces (they would move the hash tag)', async (t) => {
      const { engine } = await startNode(t, (await sharedServer()).url, { prefix: uniquePrefix() })
      await assert.rejects(engine.publish('a}b', 1, STREAM), isCode('bad_request'))
      await assert.rejects(engine.subscribe('{a'), isCode('bad_request'))
      await assert.rejects(engine.history('', { stream: STREAM, limit: 1 }), isCode('bad_request'))
    })

    it('calls before start fail with engine_unavailable', async () => {
      const engine = new RedisEngine({ url: (await sharedServer()).url, prefix: uniquePrefix() })
      await assert.rejects(engine.publish('a', 1, STREAM), isCode('engine_unavailable'))
      await assert.rejects(engine.history('a', { stream: STREAM, limit: 1 }), isCode('engine_unavailable'))
      await assert.rejects(engine.nodes(), isCode('engine_unavailable'))
    })

    it('refuses a TTL that is not a positive integer', async (t) => {
      const { engine } = await startNode(t, (await sharedServer()).url, { prefix: uniquePrefix() })
      const info: ClientInfo = { client: 'c', user: 'u' }
      for (const ttl of [0, -1, 1.5, Number.NaN]) {
        await assert.rejects(engine.addPresence('a', info, ttl), isCode('bad_request'), `presence ttl ${ttl}`)
        await assert.rejects(engine.claimIdempotent('k', ttl), isCode('bad_request'), `claim ttl ${ttl}`)
      }
      await assert.rejects(engine.occupancy('a', 'n', true, 0), isCode('bad_request'))
      await engine.addPresence('a', info, 1)
    })

    it("a clock (the `now` option) that returns no valid time fails the call instead of writing it to Redis", async (t) => {
      let time = Number.NaN
      const { engine } = await startNode(t, (await sharedServer()).url, { prefix: uniquePrefix(), now: () => time })
      await assert.rejects(engine.publish('a', 1, STREAM), isCode('internal'))
      time = -1
      await assert.rejects(engine.publish('a', 1, STREAM), isCode('internal'))
      time = 0
      assert.equal((await engine.publish('a', 1, STREAM)).offset, 1)
    })

    it('a script error is reported as internal and does not open the breaker', async (t) => {
      const server = await sharedServer()
      const prefix = uniquePrefix()
      const { engine } = await startNode(t, server.url, { prefix })
      const ch = channel()
      // A key of the wrong type makes the script fail: a bug or foreign data, not an outage.
      await server.cli('SET', `${prefix}:{${ch}}:meta`, 'not a hash')
      for (let i = 0; i < 20; i++) await assert.rejects(engine.publish(ch, i, STREAM), isCode('internal'))
      assert.equal(engine.breakerState(), 'closed')
      assert.equal(engine.isReady(), true)
    })
  })

  describe('data in Redis that does not decode (another version, a foreign writer)', () => {
    it('presence and registry entries that do not decode are skipped and reported', async (t) => {
      const server = await sharedServer()
      const prefix = uniquePrefix()
      const { engine, rec } = await startNode(t, server.url, { prefix })
      const ch = channel()
      const alice: ClientInfo = { client: 'c-alice', user: 'alice' }
      await engine.addPresence(ch, alice, 60_000)
      // MessagePack 7 (not a ClientInfo) and an empty value (not MessagePack at all).
      await server.cli('HSET', `${prefix}:{${ch}}:presence`, 'c-number', '\u0007', 'c-empty', '')
      const reported = (read: () => Promise<unknown>): Promise<number> => {
        const before = rec.errors.length
        return read().then(() => rec.errors.length - before)
      }
      assert.deepEqual(await engine.presence(ch), { 'c-alice': alice })
      assert.ok((await reported(() => engine.presence(ch))) >= 2, 'each entry reported')
      assert.deepEqual(await engine.presenceStats(ch), { clients: 1, users: 1 })
      const node = { id: 'n1', connections: 1, subscriptions: 2, channels: 3, startedAt: 4, updatedAt: 5 }
      await engine.registerNode(node, 60_000)
      await server.cli('HSET', `${prefix}:{nodes}:registry`, 'n-number', '\u0007', 'n-empty', '')
      assert.deepEqual(await engine.nodes(), [node])
      assert.ok((await reported(() => engine.nodes())) >= 2, 'each entry reported')
    })

    it('a control message that is not one is ignored, one that does not decode reported; the next one is delivered', async (t) => {
      const server = await sharedServer()
      const prefix = uniquePrefix()
      const { engine, rec } = await startNode(t, server.url, { prefix })
      await server.cli('PUBLISH', `${prefix}:control`, '\u0007')
      await server.cli('PUBLISH', `${prefix}:control`, '')
      const msg: ControlMessage = { type: 'takeover', session: 's', client: 'c', node: 'n' }
      await engine.publishControl(msg)
      await rec.until('the control message', () => rec.controls.length >= 1)
      assert.deepEqual(rec.controls, [msg])
      assert.equal(rec.errors.length, 1, 'the undecodable one reported')
    })
  })

  describe('two nodes on one Redis', () => {
    async function pair(t: TestContext): Promise<{ server: RedisServer; a: RedisEngine; b: RedisEngine; recA: NodeHandler; recB: NodeHandler; prefix: string }> {
      const server = await sharedServer()
      const prefix = uniquePrefix()
      const A = await startNode(t, server.url, { prefix })
      const B = await startNode(t, server.url, { prefix })
      return { server, a: A.engine, b: B.engine, recA: A.rec, recB: B.rec, prefix }
    }

    it('a publish on A reaches a subscriber on B with epoch, data (binary too) and info', async (t) => {
      const { a, b, recA, recB } = await pair(t)
      const ch = channel()
      await b.subscribe(ch)
      const info: ClientInfo = { client: 'c1', user: 'alice', info: { name: 'Alice' } }
      const data = { text: 'hi', bytes: new Uint8Array([0, 1, 2, 255]), n: [1.5, -2, null] }
      const out = await a.publish(ch, data, { ...STREAM, info })
      await recB.until('the publication on B', () => recB.of(ch).length === 1)
      assert.deepEqual(recB.of(ch), [{ offset: 1, epoch: out.epoch, data, info }])
      assert.deepEqual(recA.of(ch), [], 'A has no subscriber for the channel')
      const page = await b.history(ch, { stream: STREAM, limit: 10 })
      assert.deepEqual(page.publications, [{ offset: 1, data, info }])
    })

    it('1000 concurrent publishes split over A and B get unique, gapless offsets, fanned out in order', async (t) => {
      const { a, b, recB } = await pair(t)
      const ch = channel()
      await b.subscribe(ch)
      const n = 1000
      const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? a : b).publish(ch, { i }, STREAM)))
      const offsets = outcomes.map((o) => o.offset).sort((x, y) => x - y)
      assert.deepEqual(
        offsets,
        Array.from({ length: n }, (_, i) => i + 1),
      )
      assert.equal(new Set(outcomes.map((o) => o.epoch)).size, 1)
      await recB.until(`${n} publications on B`, () => recB.of(ch).length >= n)
      const live = recB.of(ch)
      assert.deepEqual(
        live.map((p) => p.offset),
        Array.from({ length: n }, (_, i) => i + 1),
      )
      const byOffset = new Map(outcomes.map((o, i) => [o.offset, { i }]))
      for (const p of live) assert.deepEqual(p.data, byOffset.get(p.offset))
    })

    it('a node receives only the channels it subscribed to (no all-to-all)', async (t) => {
      const { server, a, b, recA, recB, prefix } = await pair(t)
      const x = channel()
      const y = channel()
      const z = channel()
      await b.subscribe(x)
      await a.subscribe(z)
      assert.equal(await numsub(server, `${prefix}:{${x}}:pub`), 1, 'only B holds X')
      assert.equal(await numsub(server, `${prefix}:{${y}}:pub`), 0, 'nobody holds Y')
      assert.equal(await numsub(server, `${prefix}:{${z}}:pub`), 1, 'only A holds Z')
      // Every pub/sub channel of this deployment: the control channel, X and Z — nothing per node.
      const all = (await server.cli('PUBSUB', 'CHANNELS', `${prefix}:*`)).sort()
      assert.deepEqual(all, [`${prefix}:control`, `${prefix}:{${x}}:pub`, `${prefix}:{${z}}:pub`].sort())

      await a.publish(x, 'x1', STREAM)
      await a.publish(y, 'y1', STREAM)
      await b.publish(z, 'z1', STREAM)
      await recB.until('X on B', () => recB.of(x).length === 1)
      await recA.until('Z on A', () => recA.of(z).length === 1)
      assert.deepEqual(
        recB.pubs.map((p) => p.channel),
        [x],
      )
      assert.deepEqual(
        recA.pubs.map((p) => p.channel),
        [z],
      )

      await b.unsubscribe(x)
      assert.equal(await numsub(server, `${prefix}:{${x}}:pub`), 0, 'B left X in Redis, not only locally')
      await a.publish(x, 'x2', STREAM)
      await b.publish(z, 'z2', STREAM)
      // Z's second publication went out after X's: once A has it, X's would have reached B.
      await recA.until('second Z on A', () => recA.of(z).length === 2)
      assert.equal(recB.of(x).length, 1)
    })

    it('join, leave and control messages cross nodes; control reaches every node', async (t) => {
      const { a, b, recA, recB } = await pair(t)
      const ch = channel()
      await b.subscribe(ch)
      const alice: ClientInfo = { client: 'c1', user: 'alice' }
      await a.publishJoinLeave(ch, 'join', alice)
      await a.publishJoinLeave(ch, 'leave', alice)
      await recB.until('join and leave on B', () => recB.joinLeave.length === 2)
      assert.deepEqual(recB.joinLeave, [
        { channel: ch, kind: 'join', info: alice },
        { channel: ch, kind: 'leave', info: alice },
      ])
      await a.publishControl({ type: 'takeover', session: 's1', client: 'c1', node: 'node-a' })
      await recB.until('control on B', () => recB.controls.length === 1)
      await recA.until('control on A', () => recA.controls.length === 1)
      assert.deepEqual(recB.controls, [{ type: 'takeover', session: 's1', client: 'c1', node: 'node-a' }])
      assert.deepEqual(recA.joinLeave, [])
    })

    it('a publish key names one publication across nodes, even when raced', async (t) => {
      const { a, b } = await pair(t)
      const ch = channel()
      const first = await a.publish(ch, 'x', { ...STREAM, idempotencyKey: 'k1', idempotencyTtlMs: 60_000 })
      const again = await b.publish(ch, 'x', { ...STREAM, idempotencyKey: 'k1', idempotencyTtlMs: 60_000 })
      assert.deepEqual(again, { ...first, duplicate: true })

      const raced = channel()
      const keys = Array.from({ length: 50 }, (_, i) => `key-${i}`)
      const outs = await Promise.all(keys.flatMap((key) => [a, b].map((e) => e.publish(raced, key, { ...STREAM, idempotencyKey: key }))))
      for (let i = 0; i < keys.length; i++) {
        const [fromA, fromB] = [outs[2 * i], outs[2 * i + 1]]
        assert.ok(fromA !== undefined && fromB !== undefined)
        assert.equal(fromA.offset, fromB.offset)
        assert.equal(Number(fromA.duplicate) + Number(fromB.duplicate), 1, 'exactly one of the two stored it')
      }
      const page = await a.history(raced, { stream: STREAM, limit: 100 })
      assert.equal(page.offset, 50)
      assert.deepEqual(page.publications.map((p) => p.data).sort(), [...keys].sort())
    })

    it('RPC idempotency claims are shared across nodes', async (t) => {
      const { a, b } = await pair(t)
      const key = `rpc:${randomUUID()}`
      assert.deepEqual(await a.claimIdempotent(key, 60_000), { state: 'new' })
      assert.deepEqual(await b.claimIdempotent(key, 60_000), { state: 'pending' })
      const result = { answer: 42, blob: new Uint8Array([9, 8, 7]) }
      await a.completeIdempotent(key, result, 60_000)
      assert.deepEqual(await b.claimIdempotent(key, 60_000), { state: 'done', result })
      await b.releaseIdempotent(key)
      assert.deepEqual(await a.claimIdempotent(key, 60_000), { state: 'new' })
    })

    it("presence is shared, and a crashed node's clients disappear within presenceTtl", async (t) => {
      const { a, b } = await pair(t)
      const ch = channel()
      const ttl = 1000
      const alice: ClientInfo = { client: 'c1', user: 'alice' }
      const bob: ClientInfo = { client: 'c2', user: 'bob' }
      await a.addPresence(ch, alice, ttl)
      const lastRefresh = performance.now()
      await b.addPresence(ch, bob, ttl)
      assert.deepEqual(await a.presence(ch), { c1: alice, c2: bob })
      assert.deepEqual(await b.presenceStats(ch), { clients: 2, users: 2 })
      // A crashes: it never removes or refreshes alice. B refreshes bob as the gateway does (ttl/3).
      await a.close()
      const refresh = setInterval(() => void b.addPresence(ch, bob, ttl).catch(() => {}), ttl / 3)
      t.after(() => clearInterval(refresh))
      await waitFor('alice to expire', async () => !('c1' in (await b.presence(ch))), ttl + 1000)
      const gone = performance.now() - lastRefresh
      t.diagnostic(`crashed node's client gone ${round(gone)} ms after its last refresh (ttl ${ttl} ms)`)
      assert.ok(gone >= ttl - 50, `not before the ttl (${round(gone)} ms)`)
      assert.ok(gone <= ttl + 250, `within the ttl plus one poll (${round(gone)} ms)`)
      assert.deepEqual(await b.presence(ch), { c2: bob })
      assert.deepEqual(await b.presenceStats(ch), { clients: 1, users: 1 })
    })

    it('node registry: both nodes listed; an unrefreshed registration expires; unregister removes at once', async (t) => {
      const { a, b } = await pair(t)
      const info = (id: string): { id: string; connections: number; subscriptions: number; channels: number; startedAt: number; updatedAt: number } => ({
        id,
        connections: 3,
        subscriptions: 5,
        channels: 2,
        startedAt: 1000,
        updatedAt: Date.now(),
      })
      const na = info('node-a')
      const nb = info('node-b')
      await a.registerNode(na, 60_000)
      await b.registerNode(nb, 300)
      const listed = (await a.nodes()).sort((x, y) => x.id.localeCompare(y.id))
      assert.deepEqual(listed, [na, nb])
      await waitFor('node-b to expire', async () => (await a.nodes()).every((n) => n.id !== 'node-b'), 2000)
      assert.deepEqual(await b.nodes(), [na])
      await a.unregisterNode('node-a')
      assert.deepEqual(await b.nodes(), [])
    })
  })

  describe('two gateways on one Redis', () => {
    type SubResult = { epoch: string; offset: number; recovered: boolean; publications: { offset: number; data: unknown }[] }

    it('a client on one node gets publications from the other, sees its presence, and recovers there what it missed', async (t) => {
      const server = await sharedServer()
      const prefix = uniquePrefix()
      const channels = { default: { presence: true } }
      const nodes = await Promise.all(
        ['n1', 'n2'].map((nodeId) => startServer({ nodeId, engine: new RedisEngine({ url: server.url, prefix }), channels })),
      )
      t.after(async () => {
        for (const n of nodes) {
          await n.close()
          await n.gw.engine.close()
        }
      })
      const [n1, n2] = nodes
      assert.ok(n1 !== undefined && n2 !== undefined)
      const alice = new RawClient(n1.url)
      const bob = new RawClient(n2.url)
      t.after(() => {
        alice.close()
        bob.close()
      })
      await alice.connect()
      await bob.connect()
      const ch = `room-${randomUUID()}`
      const first = await alice.call<SubResult>({ type: 'subscribe', channel: ch })
      await bob.call({ type: 'subscribe', channel: ch })

      await bob.call({ type: 'publish', channel: ch, data: { from: 'bob' }, msgId: 'b1' })
      await alice.until(() => alice.pubs(ch).length === 1, 5000, 'bob’s publication on node 1')
      assert.deepEqual(alice.pubs(ch)[0]?.data, { from: 'bob' })
      const presence = await alice.call<{ clients: Record<string, unknown> }>({ type: 'presence', channel: ch })
      assert.equal(Object.keys(presence.clients).length, 2, 'both nodes’ clients are present')

      // Alice drops off node 1; node 2 publishes meanwhile; she comes back on node 2 and recovers.
      alice.close()
      for (let i = 2; i <= 4; i++) await n2.gw.publish(ch, i)
      const back = new RawClient(n2.url)
      t.after(() => back.close())
      await back.connect()
      const r = await back.call<SubResult>({ type: 'subscribe', channel: ch, recover: { offset: 1, epoch: first.epoch } })
      assert.equal(r.recovered, true)
      assert.deepEqual(
        r.publications.map((p) => [p.offset, p.data]),
        [
          [2, 2],
          [3, 3],
          [4, 4],
        ],
      )
      assert.deepEqual((await n1.gw.nodes()).map((n) => n.id).sort(), ['n1', 'n2'])
    })
  })

  describe('outages', () => {
    // Short timings so that each outage test takes a few seconds; the defaults are 2000/1000/1000.
    const FAST: RedisEngineOptions = {
      commandTimeoutMs: 1000,
      healthCheckIntervalMs: 250,
      breaker: { resetTimeoutMs: 500 },
      reconnectBaseMs: 50,
      reconnectMaxMs: 500,
    }

    async function outageSetup(
      t: TestContext,
      persistence: boolean,
    ): Promise<{ server: RedisServer; a: RedisEngine; b: RedisEngine; recA: NodeHandler; recB: NodeHandler; prefix: string }> {
      const server = await RedisServer.start({ persistence })
      t.after(() => server.close())
      const prefix = uniquePrefix()
      const A = await startNode(t, server.url, { ...FAST, prefix })
      const B = await startNode(t, server.url, { ...FAST, prefix })
      return { server, a: A.engine, b: B.engine, recA: A.rec, recB: B.rec, prefix }
    }

    it('Redis restarted without persistence: a new epoch, and the old position is not continuous', async (t) => {
      const { server, a, b, recA, recB } = await outageSetup(t, false)
      const ch = channel()
      await b.subscribe(ch)
      for (let i = 1; i <= 3; i++) await a.publish(ch, i, STREAM)
      const before = await a.history(ch, { stream: STREAM, limit: 0 })
      assert.equal(before.offset, 3)

      const killed = performance.now()
      await server.kill()
      await recA.untilState(false, killed, 2000)
      await server.restart()
      const restarted = performance.now()
      await Promise.all([recA.untilState(true, restarted, 5000), recB.untilState(true, restarted, 5000)])

      const after = await a.history(ch, { stream: STREAM, since: { offset: 3, epoch: before.epoch }, limit: 10 })
      assert.equal(after.continuous, false)
      assert.notEqual(after.epoch, before.epoch)
      assert.equal(after.offset, 0)
      assert.ok(recA.errors.some((e) => /another or a restarted server/.test(String(e))), 'the operator is told that the server changed')
      assert.deepEqual(after.publications, [])
      const next = await a.publish(ch, 'new', STREAM)
      assert.deepEqual(next, { offset: 1, epoch: after.epoch, duplicate: false })
      // B resubscribed by itself: the first publication of the new epoch reaches it.
      await recB.until('the new epoch on B', () => recB.of(ch).some((p) => p.epoch === after.epoch))
    })

    it('Redis restarted with AOF: the same epoch, offsets continue, history is kept', async (t) => {
      const { server, a, recA } = await outageSetup(t, true)
      const ch = channel()
      for (let i = 1; i <= 3; i++) await a.publish(ch, i, STREAM)
      const { epoch } = await a.history(ch, { stream: STREAM, limit: 0 })

      // kill -9, not a clean shutdown: appendfsync always has every acknowledged write on disk.
      const killed = performance.now()
      await server.kill()
      await recA.untilState(false, killed, 2000)
      await server.restart()
      await recA.untilState(true, performance.now(), 5000)

      const page = await a.history(ch, { stream: STREAM, since: { offset: 1, epoch }, limit: 10 })
      assert.equal(page.continuous, true)
      assert.equal(page.epoch, epoch)
      assert.deepEqual(page.publications, [
        { offset: 2, data: 2 },
        { offset: 3, data: 3 },
      ])
      assert.deepEqual(await a.publish(ch, 4, STREAM), { offset: 4, epoch, duplicate: false })
    })

    it('Redis frozen (SIGSTOP) for 3 s: calls fail fast, not ready, then recover by themselves', async (t) => {
      const { server, a, b, recA, recB } = await outageSetup(t, false)
      const ch = channel()
      await b.subscribe(ch)
      await a.publish(ch, 'before', STREAM)
      await recB.until('the first publication', () => recB.of(ch).length === 1)
      const timeout = FAST.commandTimeoutMs ?? 0

      const frozen = performance.now()
      server.pause()
      t.after(() => server.resume())
      // Calls already on the wire wait for at most the command timeout, never longer.
      const [pub, hist] = await Promise.all([timedFailure(a.publish(ch, 'frozen', STREAM)), timedFailure(a.history(ch, { stream: STREAM, limit: 10 }))])
      assert.ok(pub.unavailable && hist.unavailable, 'engine_unavailable')
      assert.ok(pub.ms <= timeout + 300, `publish failed after ${round(pub.ms)} ms`)
      assert.ok(hist.ms <= timeout + 300, `history failed after ${round(hist.ms)} ms`)

      // The health PING notices the stall: not ready, and the breaker is open.
      const bound = (FAST.healthCheckIntervalMs ?? 0) + timeout + 500
      const downA = await recA.untilState(false, frozen, bound)
      const downB = await recB.untilState(false, frozen, bound)
      assert.equal(a.isReady(), false)
      assert.equal(b.isReady(), false)
      assert.equal(a.breakerState(), 'open')
      // From now on a call does not even wait for the timeout.
      const fast = await timedFailure(a.publish(ch, 'fast', STREAM))
      assert.ok(fast.unavailable)
      assert.ok(fast.ms < 100, `an open breaker fails at once (${round(fast.ms)} ms)`)
      const sub = await timedFailure(b.subscribe(channel()))
      assert.ok(sub.unavailable && sub.ms < 100, `subscribe on a stalled subscriber fails at once (${round(sub.ms)} ms)`)

      // The outage itself is what this test is about: hold it for 3 s.
      await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (performance.now() - frozen))))
      const thawed = performance.now()
      server.resume()
      const upBound = (FAST.breaker?.resetTimeoutMs ?? 0) + (FAST.healthCheckIntervalMs ?? 0) + timeout + 1000
      const [upA, upB] = await Promise.all([recA.untilState(true, thawed, upBound), recB.untilState(true, thawed, upBound)])
      t.diagnostic(
        `SIGSTOP: first call failed after ${round(pub.ms)} ms (commandTimeout ${timeout}); not ready after ${round(downA - frozen)} / ${round(downB - frozen)} ms; ` +
          `open-breaker failure in ${fast.ms.toFixed(1)} ms; SIGCONT → ready in ${round(upA - thawed)} / ${round(upB - thawed)} ms`,
      )
      assert.equal(a.isReady(), true)
      const after = await a.publish(ch, 'after', STREAM)
      await recB.until('the publication after the freeze', () => recB.of(ch).some((p) => p.offset === after.offset))
    })

    it("a publish in flight holds its channel's next ones: when it fails they are refused unsent, and their retries are stored in order", async (t) => {
      const { server, a, recA } = await outageSetup(t, false)
      const ch = channel()
      const idem = (key: string): StreamOptions & { idempotencyKey: string; idempotencyTtlMs: number } => ({ ...STREAM, idempotencyKey: key, idempotencyTtlMs: 60_000 })
      await a.publish(ch, 'warm', STREAM)
      server.pause()
      t.after(() => server.resume())
      const outcomes = await Promise.allSettled(['a', 'b', 'c'].map((k) => a.publish(ch, k, idem(k))))
      const messages = outcomes.map((o) => (o.status === 'rejected' && o.reason instanceof HoldfastError ? `${o.reason.code}: ${o.reason.message}` : o.status))
      assert.ok(messages.every((m) => m.startsWith('engine_unavailable')), messages.join('; '))
      // b and c waited behind a: they never reached Redis, and say why they were refused.
      assert.doesNotMatch(messages[0] as string, /earlier publication/)
      assert.match(messages[1] as string, /an earlier publication to this channel failed/)
      assert.match(messages[2] as string, /an earlier publication to this channel failed/)

      const thawed = performance.now()
      server.resume()
      await recA.untilState(true, thawed, 5000)
      // a was on the wire when Redis froze and may have been stored by now; b and c were not sent.
      const page = await a.history(ch, { stream: STREAM, limit: 10 })
      assert.deepEqual(
        page.publications.map((p) => p.data).filter((d) => d !== 'warm' && d !== 'a'),
        [],
      )
      // d, sent before its publisher heard that a failed, arrives with Redis up again: it must not
      // land before a's retry (the channel's gate holds it back once, with the failed ones).
      await assert.rejects(a.publish(ch, 'd', idem('d')), (e: unknown) => isCode('engine_unavailable')(e) && /earlier publication/.test((e as Error).message))
      // The publisher retries in order; each lands after the one it was sent after.
      const retried = []
      for (const k of ['a', 'b', 'c', 'd']) retried.push(await a.publish(ch, k, idem(k)))
      const offsets = retried.map((r) => r.offset)
      assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y), JSON.stringify(retried))
      const all = await a.history(ch, { stream: STREAM, limit: 10 })
      assert.deepEqual(
        all.publications.map((p) => p.data),
        ['warm', 'a', 'b', 'c', 'd'],
      )
    })

    it('Redis killed and restarted on the same port: the engine reconnects and resubscribes by itself', async (t) => {
      const { server, a, b, recA, recB, prefix } = await outageSetup(t, false)
      // Enough channels to need several SUBSCRIBE slices on the way back.
      const channels = Array.from({ length: 1100 }, () => channel())
      await Promise.all(channels.map((ch) => b.subscribe(ch)))
      const ch = channels[channels.length - 1] ?? ''

      const killed = performance.now()
      await server.kill()
      const [downA, downB] = await Promise.all([recA.untilState(false, killed, 2000), recB.untilState(false, killed, 2000)])
      const fail = await timedFailure(a.publish(ch, 'down', STREAM))
      assert.ok(fail.unavailable)
      assert.ok(fail.ms < 100, `a dead connection fails at once (${round(fail.ms)} ms)`)
      assert.equal(a.isReady(), false)

      await server.restart()
      const restarted = performance.now()
      const [upA, upB] = await Promise.all([recA.untilState(true, restarted, 5000), recB.untilState(true, restarted, 5000)])
      t.diagnostic(
        `kill -9: not ready after ${round(downA - killed)} / ${round(downB - killed)} ms; failure on a dead connection in ${fail.ms.toFixed(1)} ms; ` +
          `restart → ready (1100 channels resubscribed) in ${round(upA - restarted)} / ${round(upB - restarted)} ms`,
      )
      for (const c of [channels[0] ?? '', ch]) assert.equal(await numsub(server, `${prefix}:{${c}}:pub`), 1, 'B holds its channels again')
      const out = await a.publish(ch, 'back', STREAM)
      await recB.until('the publication after the restart', () => recB.of(ch).some((p) => p.offset === out.offset))
    })

    it('start() while Redis is down resolves after startTimeoutMs; the engine becomes ready when Redis comes up', async (t) => {
      const server = await RedisServer.start()
      t.after(() => server.close())
      await server.stop()
      const rec = new NodeHandler()
      const engine = new RedisEngine({ url: server.url, ...FAST, startTimeoutMs: 300, prefix: uniquePrefix() })
      t.after(() => engine.close())
      const begun = performance.now()
      await engine.start(rec)
      const waited = performance.now() - begun
      assert.ok(waited >= 280 && waited < 1000, `start waited ${round(waited)} ms`)
      assert.equal(engine.isReady(), false)
      await assert.rejects(engine.publish(channel(), 1, STREAM), isCode('engine_unavailable'))
      await server.restart()
      await rec.untilState(true, begun, 5000)
      assert.equal((await engine.publish(channel(), 1, STREAM)).offset, 1)
    })

    it('close() does not hang on a frozen Redis', async (t) => {
      const server = await RedisServer.start()
      t.after(() => server.close())
      const rec = new NodeHandler()
      const engine = new RedisEngine({ url: server.url, ...FAST, prefix: uniquePrefix() })
      await engine.start(rec)
      server.pause()
      t.after(() => server.resume())
      const begun = performance.now()
      await engine.close()
      const took = performance.now() - begun
      assert.ok(took <= (FAST.commandTimeoutMs ?? 0) + 300, `close took ${round(took)} ms`)
      assert.equal(engine.isReady(), false)
      await assert.rejects(engine.publish(channel(), 1, STREAM), isCode('engine_unavailable'))
    })
  })
})
