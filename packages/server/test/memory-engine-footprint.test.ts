// What the memory engine holds beyond its live data stays bounded: a history trimmed from its old
// end is compacted instead of keeping a dead slot per publication ever made, and the sweep frees
// the per-channel maps it has emptied. A long-running single-process deployment depends on it.
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import type { StreamOptions } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { RecordingHandler } from './engine-contract.js'

/** Below this many dead slots the engine does not compact (copying small arrays costs more than it saves). */
const COMPACT_MIN = 1024

async function started(t: TestContext, sweepIntervalMs = 1000): Promise<{ engine: MemoryEngine; advance: (ms: number) => void }> {
  let now = 1_700_000_000_000
  t.mock.timers.enable({ apis: ['setInterval'] })
  const engine = new MemoryEngine({ now: () => now, sweepIntervalMs })
  await engine.start(new RecordingHandler())
  t.after(() => engine.close())
  return {
    engine,
    advance: (ms) => {
      now += ms
      t.mock.timers.tick(ms)
    },
  }
}

describe('MemoryEngine footprint', () => {
  it('a history trimmed by size holds at most twice its live part (or the compaction floor) in slots', async (t) => {
    const { engine } = await started(t)
    const stream: StreamOptions = { historySize: 10, historyTtlMs: 3_600_000, streamTtlMs: 86_400_000 }
    let most = 0
    for (let i = 1; i <= 20_000; i++) {
      await engine.publish('busy', i, stream)
      most = Math.max(most, engine.footprint().historySlots)
    }
    assert.equal(engine.counts().publications, 10)
    assert.ok(most <= 2 * COMPACT_MIN + stream.historySize, `held ${most} slots for a history of 10`)
    const page = await engine.history('busy', { stream, limit: 10 })
    assert.deepEqual(
      page.publications.map((p) => p.data),
      Array.from({ length: 10 }, (_, i) => 19_991 + i),
    )
  })

  it('a history trimmed by ttl is compacted once its dead part is as large as the live one and past the floor', async (t) => {
    const { engine, advance } = await started(t)
    const stream: StreamOptions = { historySize: 100_000, historyTtlMs: 1000, streamTtlMs: 86_400_000 }
    for (let i = 1; i <= COMPACT_MIN; i++) await engine.publish('ch', i, stream)
    advance(500)
    for (let i = COMPACT_MIN + 1; i <= 2 * COMPACT_MIN; i++) await engine.publish('ch', i, stream)
    advance(500)
    // As many expired ahead as live behind them: the read trims them and the buffer is rebuilt.
    const page = await engine.history('ch', { stream, limit: 2 })
    assert.deepEqual(
      page.publications.map((p) => p.offset),
      [2 * COMPACT_MIN - 1, 2 * COMPACT_MIN],
    )
    assert.equal(engine.footprint().historySlots, COMPACT_MIN)
    assert.equal(engine.counts().publications, COMPACT_MIN)
    const since = await engine.history('ch', { stream, since: { epoch: page.epoch, offset: COMPACT_MIN }, limit: 1 })
    assert.equal(since.continuous, true)
    assert.deepEqual(since.publications, [{ offset: COMPACT_MIN + 1, data: COMPACT_MIN + 1 }])
  })

  it('a small dead prefix is left in place until it is worth copying', async (t) => {
    const { engine, advance } = await started(t)
    const stream: StreamOptions = { historySize: 100_000, historyTtlMs: 1000, streamTtlMs: 86_400_000 }
    for (let i = 1; i <= COMPACT_MIN - 1; i++) await engine.publish('ch', i, stream)
    advance(500)
    for (let i = 0; i < 10; i++) await engine.publish('ch', 'live', stream)
    advance(500)
    await engine.history('ch', { stream, limit: 0 })
    assert.equal(engine.counts().publications, 10)
    assert.equal(engine.footprint().historySlots, COMPACT_MIN - 1 + 10)
  })

  it('a history that expired whole frees its slots at once', async (t) => {
    const { engine, advance } = await started(t)
    const stream: StreamOptions = { historySize: 1000, historyTtlMs: 1000, streamTtlMs: 86_400_000 }
    for (let i = 1; i <= 50; i++) await engine.publish('ch', i, stream)
    assert.equal(engine.footprint().historySlots, 50)
    advance(1000)
    const page = await engine.history('ch', { stream, limit: 10 })
    assert.deepEqual(page.publications, [])
    assert.equal(page.offset, 50)
    assert.equal(engine.footprint().historySlots, 0)
    const next = await engine.publish('ch', 51, stream)
    assert.equal(next.offset, 51)
  })

  it('the sweep frees the maps of channels whose idempotency keys all expired, and keeps the others', async (t) => {
    const { engine, advance } = await started(t)
    const stream: StreamOptions = { historySize: 10, historyTtlMs: 60_000, streamTtlMs: 600_000 }
    for (let i = 0; i < 50; i++) await engine.publish(`ch-${i}`, i, { ...stream, idempotencyKey: 'k', idempotencyTtlMs: 1000 })
    await engine.publish('kept', 1, { ...stream, idempotencyKey: 'short', idempotencyTtlMs: 1000 })
    await engine.publish('kept', 2, { ...stream, idempotencyKey: 'long', idempotencyTtlMs: 60_000 })
    assert.equal(engine.footprint().keyMaps, 51)
    advance(1000)
    assert.equal(engine.footprint().keyMaps, 1)
    assert.equal(engine.counts().idempotency, 1)
    const again = await engine.publish('kept', 2, { ...stream, idempotencyKey: 'long', idempotencyTtlMs: 60_000 })
    assert.equal(again.duplicate, true)
  })

  it('the sweep frees RPC claims the moment their ttl is over', async (t) => {
    const { engine, advance } = await started(t)
    await engine.claimIdempotent('pending', 1000)
    await engine.claimIdempotent('done', 1000)
    await engine.completeIdempotent('done', 'r', 1000)
    await engine.claimIdempotent('kept', 60_000)
    assert.equal(engine.counts().idempotency, 3)
    advance(1000)
    assert.equal(engine.counts().idempotency, 1)
  })

  it('a channel whose last present client leaves, or expires, frees its map without waiting for the sweep', async (t) => {
    const { engine, advance } = await started(t, 3_600_000)
    await engine.addPresence('left', { client: 'a', user: 'u' }, 60_000)
    await engine.addPresence('left', { client: 'b', user: 'u' }, 60_000)
    await engine.addPresence('expired', { client: 'c', user: 'u' }, 1000)
    await engine.removePresence('left', 'a')
    assert.equal(engine.footprint().presenceMaps, 2)
    await engine.removePresence('left', 'b')
    assert.equal(engine.footprint().presenceMaps, 1)
    advance(1000)
    assert.equal(engine.footprint().presenceMaps, 1, 'no sweep ran yet')
    assert.deepEqual(await engine.presence('expired'), {})
    assert.equal(engine.footprint().presenceMaps, 0)
  })

  it('a channel no node occupies any more holds no occupancy entry, whether its node left or expired', async (t) => {
    const { engine, advance } = await started(t)
    assert.equal(await engine.occupancy('left', 'n1', true, 60_000), true)
    assert.equal(await engine.occupancy('left', 'n2', true, 60_000), false)
    await engine.occupancy('expired', 'n1', true, 1000)
    assert.equal(engine.footprint().occupancyMaps, 2)
    assert.equal(await engine.occupancy('left', 'n1', false, 60_000), false, 'n2 still occupies it')
    assert.equal(await engine.occupancy('left', 'n2', false, 60_000), true, 'vacated')
    assert.equal(engine.footprint().occupancyMaps, 1)
    advance(1000)
    // A node that leaves a channel whose only other occupant expired vacates it too.
    assert.equal(await engine.occupancy('expired', 'n2', false, 60_000), false, 'already vacated when n1 expired')
    assert.equal(engine.footprint().occupancyMaps, 0)
  })

  it('the sweep frees the maps of channels whose presence all expired, and keeps the others', async (t) => {
    const { engine, advance } = await started(t)
    for (let i = 0; i < 50; i++) await engine.addPresence(`room-${i}`, { client: `c${i}`, user: 'u' }, 1000)
    await engine.addPresence('kept', { client: 'gone', user: 'u' }, 1000)
    await engine.addPresence('kept', { client: 'here', user: 'u' }, 60_000)
    assert.equal(engine.footprint().presenceMaps, 51)
    advance(1000)
    assert.equal(engine.footprint().presenceMaps, 1)
    assert.deepEqual(await engine.presence('kept'), { here: { client: 'here', user: 'u' } })
  })
})
