/**
 * When a Redis stream's continuity is not certain, its epoch changes — including every way the
 * stream can go *back* (offsets below what someone saw, in the same epoch): a restart from an
 * AOF that may lag, a replica promoted behind a failover endpoint, a client that saw an offset
 * beyond the top, the live feed delivering an offset again with other content. And reads never
 * create anything in Redis: a channel that was never published to leaves no key.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, describe, it, type TestContext } from 'node:test'
import type { StreamOptions } from '../src/engine/engine.js'
import type { RedisEngine } from '../src/engine/redis-engine.js'
import { isCode, NodeHandler, prefixes, sharedOnce, startNode, waitFor } from './redis-helpers.js'
import { RedisServer } from '../../../test/support/redis-server.js'
import { cli, FailoverEndpoint, poll } from '../../../test/support/redis-topology.js'

const STREAM: StreamOptions = { historySize: 100, historyTtlMs: 600_000, streamTtlMs: 3_600_000 }
const FAST = { commandTimeoutMs: 1000, healthCheckIntervalMs: 250, reconnectBaseMs: 50, reconnectMaxMs: 300, replicaWaitMs: 300 }

const sharedServer = sharedOnce(() => RedisServer.start())
const prefix = prefixes('e')

async function keys(server: RedisServer, pattern: string): Promise<string[]> {
  return (await server.cli('--scan', '--pattern', pattern)).sort()
}

async function server(t: TestContext, args: string[] = [], persistence = false): Promise<RedisServer> {
  const s = await RedisServer.start({ persistence, args })
  t.after(() => s.close())
  return s
}

describe('RedisEngine: reads create nothing', () => {
  it('history, subscribe and unsubscribe of a channel never published to leave no key; the first publish keeps the epoch they reported', async (t) => {
    const redis = await sharedServer()
    const p = prefix()
    const { engine } = await startNode(t, redis.url, { prefix: p })
    const ch = `quiet:${randomUUID()}`
    const first = await engine.history(ch, { stream: STREAM, limit: 10 })
    assert.deepEqual({ offset: first.offset, continuous: first.continuous, publications: first.publications }, { offset: 0, continuous: true, publications: [] })
    const again = await engine.history(ch, { stream: STREAM, since: { epoch: first.epoch, offset: 0 }, limit: 10 })
    assert.equal(again.epoch, first.epoch)
    assert.equal(again.continuous, true)
    // Offset 0 lies in every epoch; a position beyond it cannot exist: not continuous, and still nothing written.
    assert.equal((await engine.history(ch, { stream: STREAM, since: { epoch: 'other', offset: 0 }, limit: 10 })).continuous, true)
    assert.equal((await engine.history(ch, { stream: STREAM, since: { epoch: first.epoch, offset: 3 }, limit: 10 })).continuous, false)
    await engine.subscribe(ch)
    await engine.unsubscribe(ch)
    for (let i = 0; i < 200; i++) await engine.history(`quiet:${i}`, { stream: STREAM, limit: 0 })
    assert.deepEqual(await keys(redis, `${p}:*`), [], 'no key for reads')
    const pub = await engine.publish(ch, 'x', STREAM)
    assert.deepEqual(pub, { offset: 1, epoch: first.epoch, duplicate: false })
    assert.deepEqual(await keys(redis, `${p}:*`), [`${p}:{${ch}}:meta`, `${p}:{${ch}}:stream`])
  })

  it('removeHistory leaves a tombstone in a new epoch that lives at most until the end of the stream period', async (t) => {
    const redis = await sharedServer()
    const p = prefix()
    const { engine } = await startNode(t, redis.url, { prefix: p })
    const ch = `gone:${randomUUID()}`
    const a = await engine.publish(ch, 'a', STREAM)
    await engine.removeHistory(ch)
    const meta = `${p}:{${ch}}:meta`
    assert.deepEqual(await keys(redis, `${p}:*`), [meta])
    const ttl = Number((await redis.cli('pttl', meta))[0])
    assert.ok(ttl > 0 && ttl <= STREAM.streamTtlMs, `tombstone ttl ${ttl}`)
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: a.epoch, offset: 1 }, limit: 10 })
    assert.equal(page.continuous, false)
    assert.notEqual(page.epoch, a.epoch)
    assert.deepEqual(await engine.publish(ch, 'b', STREAM), { offset: 1, epoch: page.epoch, duplicate: false })
    // A channel never published to: removeHistory writes nothing.
    await engine.removeHistory(`never:${randomUUID()}`)
    assert.equal((await keys(redis, `${p}:{never:*`)).length, 0)
  })
})

describe('RedisEngine: a stream that went back moves to a new epoch', () => {
  it('a position beyond the top in the current epoch (someone saw offsets that are gone) moves the stream, at most once per cooldown', async (t) => {
    const redis = await sharedServer()
    const { engine } = await startNode(t, redis.url, { prefix: prefix() })
    const ch = `back:${randomUUID()}`
    for (let i = 1; i <= 3; i++) await engine.publish(ch, i, STREAM)
    const { epoch } = await engine.history(ch, { stream: STREAM, limit: 0 })
    const claim = await engine.history(ch, { stream: STREAM, since: { epoch, offset: 7 }, limit: 10 })
    assert.equal(claim.continuous, false)
    assert.notEqual(claim.epoch, epoch, 'a new epoch: everyone who saw offsets 4..7 learns it')
    assert.equal(claim.offset, 3)
    // The next publication continues the offsets in the new epoch.
    assert.deepEqual(await engine.publish(ch, 4, STREAM), { offset: 4, epoch: claim.epoch, duplicate: false })
    // A second claim right after does not move it again (a client could repeat it at will).
    const second = await engine.history(ch, { stream: STREAM, since: { epoch: claim.epoch, offset: 9 }, limit: 10 })
    assert.equal(second.continuous, false)
    assert.equal(second.epoch, claim.epoch)
  })

  /** A node subscribed to a channel of five publications, and where to inject what its feed brings. */
  async function fed(t: TestContext): Promise<{ engine: RedisEngine; rec: NodeHandler; redis: RedisServer; ch: string; pubKey: string; epoch: string }> {
    const redis = await sharedServer()
    const p = prefix()
    const { engine, rec } = await startNode(t, redis.url, { prefix: p })
    const ch = `feed:${randomUUID()}`
    await engine.subscribe(ch)
    for (let i = 1; i <= 5; i++) await engine.publish(ch, { i }, STREAM)
    await rec.until('5 publications', () => rec.of(ch).length === 5)
    return { engine, rec, redis, ch, pubKey: `${p}:{${ch}}:pub`, epoch: rec.of(ch)[0]?.epoch as string }
  }

  it('the live feed delivering an offset again with other content moves the stream and delivers in the new epoch', async (t) => {
    const { engine, rec, redis, ch, pubKey, epoch } = await fed(t)
    // What a lossy failover the scripts could not see would produce: offset 3 of this epoch again,
    // with other content (the message layout of the publish script; data is MessagePack 0x07).
    await redis.cli('publish', pubKey, `p3:${epoch}:0:\u0007`)
    await rec.until('the repeat, in a new epoch', () => rec.of(ch).length === 6)
    const repeat = rec.of(ch)[5]
    assert.equal(repeat?.offset, 3)
    assert.notEqual(repeat?.epoch, epoch)
    const page = await engine.history(ch, { stream: STREAM, limit: 0 })
    assert.equal(page.epoch, repeat?.epoch, 'the stream moved to that epoch')
    assert.ok(rec.errors.some((e) => /went back/.test(String(e))))
    // A repeat with the same epoch after the move is an ordinary new-epoch publication.
    assert.equal((await engine.publish(ch, { i: 6 }, STREAM)).epoch, page.epoch)
  })

  it('publications the feed brings while the stream is being moved are held, then delivered after the repeat, in the new epoch and in order', async (t) => {
    const { engine, rec, redis, ch, pubKey, epoch } = await fed(t)
    // The stream lost its last publication: offset 5 of this epoch comes again, then 6, back to
    // back, so 6 arrives while the engine is still moving the stream (data 7 and 8 in MessagePack).
    const script = "redis.call('publish', KEYS[1], ARGV[1]) redis.call('publish', KEYS[1], ARGV[2]) return 0"
    await redis.cli('eval', script, '1', pubKey, `p5:${epoch}:0:\u0007`, `p6:${epoch}:0:\u0008`)
    await rec.until('both', () => rec.of(ch).length === 7)
    const [five, six] = rec.of(ch).slice(5)
    assert.deepEqual([five?.offset, five?.data, six?.offset, six?.data], [5, 7, 6, 8])
    assert.notEqual(five?.epoch, epoch)
    assert.equal(six?.epoch, five?.epoch, 'one move, both in its epoch')
    assert.equal((await engine.history(ch, { stream: STREAM, limit: 0 })).epoch, five?.epoch)
    assert.equal(rec.errors.filter((e) => /went back/.test(String(e))).length, 1)
  })

  it('when Redis cannot be told that the stream went back, subscribers still go to recovery, and the next history read moves the stream first', async (t) => {
    const { engine, rec, redis, ch, pubKey, epoch } = await fed(t)
    // The stream's hash is replaced by a value of another type for a moment: moving it fails.
    const meta = pubKey.replace(/:pub$/, ':meta')
    await redis.cli('rename', meta, `${meta}:aside`)
    await redis.cli('set', meta, 'not a hash')
    await redis.cli('publish', pubKey, `p5:${epoch}:0:\u0007`)
    await rec.until('the repeat', () => rec.of(ch).length === 6)
    assert.notEqual(rec.of(ch)[5]?.epoch, epoch, 'delivered in an epoch that sends subscribers to recovery')
    await redis.cli('del', meta)
    await redis.cli('rename', `${meta}:aside`, meta)
    const page = await engine.history(ch, { stream: STREAM, since: { epoch, offset: 5 }, limit: 10 })
    assert.equal(page.continuous, false, 'offset 5 of the old epoch was used twice')
    assert.notEqual(page.epoch, epoch)
    assert.equal((await engine.publish(ch, { i: 6 }, STREAM)).epoch, page.epoch)
  })

  it('a restart from an AOF without appendfsync always (writes may be lost) moves the streams; with always it does not', async (t) => {
    const everysec = await server(t, ['--appendfsync', 'everysec'], true)
    const { engine, rec } = await startNode(t, everysec.url, { prefix: 'aof', ...FAST })
    const ch = `aof:${randomUUID()}`
    for (let i = 1; i <= 3; i++) await engine.publish(ch, i, STREAM)
    const before = await engine.history(ch, { stream: STREAM, limit: 0 })
    // A graceful stop writes everything, so no loss here: the point is that the engine cannot know.
    const at = performance.now()
    await everysec.stop()
    await everysec.restart()
    await rec.untilState(true, at, 10_000)
    const after = await engine.history(ch, { stream: STREAM, since: { epoch: before.epoch, offset: 3 }, limit: 10 })
    assert.equal(after.offset, 3, 'the data survived')
    assert.equal(after.continuous, false, 'but continuity is not certain')
    assert.notEqual(after.epoch, before.epoch)

    // With appendfsync always, every acknowledged write is on disk: the stream continues.
    const always = await server(t, ['--appendfsync', 'always'], true)
    const sure = await startNode(t, always.url, { prefix: 'aof', ...FAST })
    for (let i = 1; i <= 3; i++) await sure.engine.publish(ch, i, STREAM)
    const kept = await sure.engine.history(ch, { stream: STREAM, limit: 0 })
    const at2 = performance.now()
    await always.stop()
    await always.restart()
    await sure.rec.untilState(true, at2, 10_000)
    const continued = await sure.engine.history(ch, { stream: STREAM, since: { epoch: kept.epoch, offset: 3 }, limit: 10 })
    assert.deepEqual({ continuous: continued.continuous, epoch: continued.epoch, offset: continued.offset }, { continuous: true, epoch: kept.epoch, offset: 3 })
  })

  it("a failover endpoint (an address moved to the promoted replica): durability 'none' moves the stream; nothing is mistaken for what was seen", async (t) => {
    const primary = await server(t, ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'])
    const replica = await server(t, ['--replicaof', '127.0.0.1', String(primary.port)])
    await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
    const endpoint = await FailoverEndpoint.start(primary.port)
    t.after(() => endpoint.close())
    const { engine, rec } = await startNode(t, endpoint.url, { prefix: 'ep', ...FAST })
    const ch = `ep:${randomUUID()}`
    await engine.subscribe(ch)
    const acked = []
    for (let i = 1; i <= 5; i++) acked.push(await engine.publish(ch, { i }, STREAM))
    await waitFor('the replica to have them', async () => (await replica.cli('xlen', `ep:{${ch}}:stream`))[0] === '5')
    // The replica stops following, then the primary takes more writes and dies.
    await replica.cli('replicaof', 'no', 'one')
    for (let i = 6; i <= 8; i++) acked.push(await engine.publish(ch, { i }, STREAM))
    await rec.until('8 live publications', () => rec.of(ch).length === 8)
    const at = performance.now()
    await primary.kill()
    await rec.untilState(false, at, 10_000)
    await endpoint.switchTo(replica.port)
    await rec.untilState(true, at, 10_000)
    const next = await engine.publish(ch, { i: 'after' }, STREAM)
    assert.equal(next.offset, 6, 'the promoted replica reuses offset 6')
    assert.notEqual(next.epoch, acked[0]?.epoch, 'in a new epoch, so nobody takes it for the lost 6')
    await rec.until('the publication after the switch', () => rec.of(ch).length === 9)
    assert.equal(rec.of(ch)[8]?.epoch, next.epoch)
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: acked[0]?.epoch as string, offset: 8 }, limit: 10 })
    assert.equal(page.continuous, false)
  })

  it("a failover endpoint with durability 'replicated': every acknowledged publication is on the promoted replica, same epoch", async (t) => {
    const primary = await server(t, ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'])
    const replica = await server(t, ['--replicaof', '127.0.0.1', String(primary.port)])
    await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
    const endpoint = await FailoverEndpoint.start(primary.port)
    t.after(() => endpoint.close())
    // A replica on a busy machine can take more than FAST's 300 ms to confirm (CI runs saw 800 ms
    // pass by); the wait stays below the command timeout.
    const { engine, rec } = await startNode(t, endpoint.url, { prefix: 'epr', ...FAST, commandTimeoutMs: 4000, replicaWaitMs: 2500 })
    const ch = `epr:${randomUUID()}`
    const opts = { ...STREAM, durability: 'replicated' as const }
    const acked = []
    for (let i = 1; i <= 5; i++) acked.push(await engine.publish(ch, { i }, opts))
    // The replica stops following: nothing more can be acknowledged, and nothing is.
    await replica.cli('replicaof', 'no', 'one')
    await assert.rejects(engine.publish(ch, { i: 6 }, opts), isCode('engine_unavailable'))
    const at = performance.now()
    await primary.kill()
    await rec.untilState(false, at, 10_000)
    await endpoint.switchTo(replica.port)
    await rec.untilState(true, at, 10_000)
    const page = await engine.history(ch, { stream: STREAM, since: { epoch: acked[0]?.epoch as string, offset: 0 }, limit: 10 })
    assert.equal(page.continuous, true)
    assert.equal(page.epoch, acked[0]?.epoch, 'the same epoch: nothing acknowledged was lost')
    assert.deepEqual(page.publications.map((p) => p.data), [1, 2, 3, 4, 5].map((i) => ({ i })))
  })

  /** A primary with a replica in sync, and a node on the primary (with replica waits a busy machine allows). */
  async function replicatedNode(t: TestContext): Promise<{ primary: RedisServer; replica: RedisServer; p: string; engine: RedisEngine; rec: NodeHandler }> {
    const primary = await server(t, ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'])
    const replica = await server(t, ['--replicaof', '127.0.0.1', String(primary.port)])
    await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
    const p = prefix()
    return { primary, replica, p, ...(await startNode(t, primary.url, { prefix: p, ...FAST, commandTimeoutMs: 4000, replicaWaitMs: 2500 })) }
  }

  it("publishes with and without durability 'replicated', raced on one channel, are all fanned out, in offset order", async (t) => {
    const { primary, p, engine, rec } = await replicatedNode(t)
    const ch = `mixed:${randomUUID()}`
    await engine.subscribe(ch)
    const kinds = ['none', 'none', 'replicated', 'none', 'replicated', 'replicated', 'none'] as const
    const acked = await Promise.all(kinds.map((durability, i) => engine.publish(ch, { i }, { ...STREAM, durability })))
    assert.deepEqual(acked.map((a) => a.offset).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7])
    await rec.until('every publication', () => rec.of(ch).length >= kinds.length)
    assert.deepEqual(rec.of(ch).map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7])
    assert.deepEqual(rec.of(ch).map((p) => p.data), [0, 1, 2, 3, 4, 5, 6].map((i) => ({ i })), 'in the order they were sent')
    // A replicated publish that Redis refuses (foreign data under the channel's key) fails, even
    // though the replica acknowledges the connection's writes.
    const broken = `broken:${randomUUID()}`
    await primary.cli('SET', `${p}:{${broken}}:meta`, 'not a hash')
    await assert.rejects(engine.publish(broken, 1, { ...STREAM, durability: 'replicated' }), isCode('internal'))
  })

  // The bound turns a publish that never settles into a failure.
  it('a position between the commit mark and the stored top (a mark lost in a failover) is confirmed on a replica, committed again and read as continuous', async (t) => {
    const { primary, p, engine, rec } = await replicatedNode(t)
    const ch = `mark:${randomUUID()}`
    await engine.subscribe(ch)
    const opts = { ...STREAM, durability: 'replicated' as const }
    for (let i = 1; i <= 3; i++) await engine.publish(ch, { i }, opts)
    await rec.until('3 publications', () => rec.of(ch).length === 3)
    const epoch = rec.of(ch)[0]?.epoch as string
    // The commit mark goes back to 1, as after a failover to a replica that missed its last update.
    await primary.cli('HSET', `${p}:{${ch}}:meta`, 'c', '1')
    const page = await engine.history(ch, { stream: STREAM, since: { epoch, offset: 3 }, limit: 10 })
    assert.deepEqual({ continuous: page.continuous, epoch: page.epoch, offset: page.offset }, { continuous: true, epoch, offset: 3 })
    // Committing again fans 2 and 3 out again: a repeat of what was delivered, not a stream that went back.
    await rec.until('the repeats', () => rec.of(ch).length === 5)
    assert.deepEqual(rec.of(ch).map((x) => [x.offset, x.epoch]), [1, 2, 3, 2, 3].map((o) => [o, epoch]))
    assert.equal(rec.errors.filter((e) => /went back/.test(String(e))).length, 0)
  })

  it('without a replica, such a position cannot be confirmed: the read fails with a temporary error and commits nothing', async (t) => {
    const redis = await sharedServer()
    const p = prefix()
    const { engine } = await startNode(t, redis.url, { prefix: p, ...FAST })
    const ch = `unconfirmed:${randomUUID()}`
    const { epoch } = await engine.publish(ch, 1, STREAM)
    for (let i = 2; i <= 3; i++) await engine.publish(ch, i, STREAM)
    await redis.cli('HSET', `${p}:{${ch}}:meta`, 'c', '1')
    await assert.rejects(engine.history(ch, { stream: STREAM, since: { epoch, offset: 3 }, limit: 10 }), (e: unknown) => isCode('engine_unavailable')(e) && /no replica confirmed/.test((e as Error).message))
    assert.equal((await engine.history(ch, { stream: STREAM, limit: 0 })).offset, 1, 'still committed up to 1 only')
  })

  it('a node pointed at a replica tells the operator, and its publishes fail', async (t) => {
    const onPrimary = await replicatedNode(t)
    const { engine, rec } = await startNode(t, onPrimary.replica.url, { prefix: prefix(), ...FAST })
    await waitFor('the report', () => rec.errors.some((e) => /is a replica/.test(String(e))))
    assert.equal(onPrimary.rec.errors.length, 0, 'the node on the primary reports nothing')
    await assert.rejects(engine.publish(`ro:${randomUUID()}`, 1, STREAM))
  })

  it("a publish with durability 'replicated' while Redis is unreachable fails within the command timeout", { timeout: 15_000 }, async (t) => {
    const redis = await server(t)
    const { engine, rec } = await startNode(t, redis.url, { prefix: prefix(), ...FAST })
    const at = performance.now()
    await redis.stop()
    await rec.untilState(false, at, 10_000)
    const t0 = performance.now()
    await assert.rejects(engine.publish(`down:${randomUUID()}`, 1, { ...STREAM, durability: 'replicated' }), isCode('engine_unavailable'))
    assert.ok(performance.now() - t0 < FAST.commandTimeoutMs + 2000, 'no wait beyond the command timeout')
  })

  it("durability 'replicated' without any replica: the publish fails with a temporary error, never a false acknowledgement", async (t) => {
    const redis = await sharedServer()
    const { engine, rec } = await startNode(t, redis.url, { prefix: prefix(), ...FAST })
    const ch = `alone:${randomUUID()}`
    await engine.subscribe(ch)
    await assert.rejects(engine.publish(ch, 1, { ...STREAM, durability: 'replicated' }), (err: unknown) => isCode('engine_unavailable')(err) && (err as { temporary: boolean }).temporary)
    assert.equal((await engine.history(ch, { stream: STREAM, limit: 10 })).offset, 0, 'not readable')
    await assert.rejects(engine.publish(ch, 1, { ...STREAM, historySize: 0, durability: 'replicated' }), isCode('bad_request'))
    assert.equal(rec.of(ch).length, 0, 'not fanned out')
  })
})
