/**
 * What one client can make a node hold is bounded: reads create no stream state, and the memory
 * engine keeps streams, history bytes, idempotency ids and presence entries within node-wide
 * budgets (refusing with a temporary limit_exceeded, or forgetting the coldest history); the
 * gateway bounds message ids per user.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ErrorCodes, HoldfastError } from '@holdfast/protocol'
import { STORED_KEY, type StoredPublication, type StreamOptions } from '../src/engine/engine.js'
import { MemoryEngine, type MemoryEngineOptions } from '../src/engine/memory-engine.js'
import { RecordingHandler } from './engine-contract.js'
import { serverPerTest } from './helpers.js'

const STREAM: StreamOptions = { historySize: 100, historyTtlMs: 60_000, streamTtlMs: 600_000 }
const NO_HISTORY: StreamOptions = { ...STREAM, historySize: 0 }

async function started(options: MemoryEngineOptions = {}): Promise<MemoryEngine> {
  const engine = new MemoryEngine(options)
  await engine.start(new RecordingHandler())
  return engine
}

function limitExceeded(err: unknown): boolean {
  return err instanceof HoldfastError && err.code === 'limit_exceeded' && err.temporary
}

describe('engine budgets', () => {
  it('reads create no stream: 10,000 channels read, none held; the first publish takes the epoch the reads gave', async () => {
    const engine = await started()
    let first = ''
    for (let i = 0; i < 10_000; i++) {
      const page = await engine.history(`ch${i}`, { stream: STREAM, limit: 10 })
      assert.deepEqual([page.offset, page.publications, page.continuous], [0, [], true])
      if (i === 0) first = page.epoch
    }
    assert.equal(engine.state().streams, 0)
    assert.equal((await engine.history('ch0', { stream: STREAM, limit: 0 })).epoch, first, 'reads agree')
    assert.equal((await engine.publish('ch0', 'x', STREAM)).epoch, first)
    await engine.close()
  })

  it('offset 0 lies in every epoch: continuous while the stream holds its offset 1, not once it was trimmed', async () => {
    const engine = await started()
    const small: StreamOptions = { ...STREAM, historySize: 2 }
    await engine.publish('c', 'a', small)
    const page = await engine.history('c', { stream: small, since: { offset: 0, epoch: 'some-other-epoch' }, limit: 10 })
    assert.deepEqual([page.continuous, page.publications.map((p) => p.data)], [true, ['a']])
    await engine.publish('c', 'b', small)
    await engine.publish('c', 'c', small)
    assert.equal((await engine.history('c', { stream: small, since: { offset: 0, epoch: 'some-other-epoch' }, limit: 10 })).continuous, false)
    await engine.close()
  })

  it('maxStreams: an idle stream with no history goes first; a stream in use is never forgotten, the publish is refused', async () => {
    const engine = await started({ maxStreams: 2 })
    const a = await engine.publish('a', 1, NO_HISTORY)
    await engine.publish('a', 2, NO_HISTORY)
    await engine.publish('b', 1, STREAM)
    await engine.publish('c', 1, STREAM) // forgets `a`, the cold one without history
    assert.deepEqual(engine.state().evicted.streams, 1)
    const back = await engine.history('a', { stream: NO_HISTORY, since: { offset: 2, epoch: a.epoch }, limit: 10 })
    assert.equal(back.continuous, false, 'a position in the forgotten stream is not continuous')
    await engine.publish('a', 3, NO_HISTORY).then(
      () => assert.fail('b and c hold history: no room'),
      (err: unknown) => assert.ok(limitExceeded(err), String(err)),
    )
    assert.equal(engine.state().refused.streams, 1)
    // The streams that stayed are untouched; a known stream still takes publishes.
    assert.equal((await engine.publish('b', 2, STREAM)).offset, 2)
    assert.equal(engine.state().streams, 2)
    await engine.close()
  })

  it('a stream forgotten early comes back in another epoch, never reusing offsets in the old one', async () => {
    const engine = await started({ maxStreams: 1 })
    const first = await engine.publish('a', 1, NO_HISTORY)
    await engine.publish('b', 1, NO_HISTORY) // forgets a
    await engine.publish('a', 1, NO_HISTORY) // forgets b, recreates a
    const again = await engine.history('a', { stream: NO_HISTORY, limit: 0 })
    assert.equal(again.offset, 1)
    assert.notEqual(again.epoch, first.epoch)
    await engine.close()
  })

  it('a subscribed stream is not forgotten for the stream budget', async () => {
    const engine = await started({ maxStreams: 1 })
    await engine.publish('watched', 1, NO_HISTORY)
    await engine.subscribe('watched')
    await assert.rejects(engine.publish('other', 1, NO_HISTORY), limitExceeded)
    await engine.close()
  })

  it('maxHistoryBytes: the oldest publications of the least recently published channel go first, counted', async () => {
    const engine = await started({ maxHistoryBytes: 10_000 })
    for (let i = 1; i <= 4; i++) await engine.publish('cold', `c${i}`, { ...STREAM, size: 2000 })
    for (let i = 1; i <= 3; i++) await engine.publish('hot', `h${i}`, { ...STREAM, size: 2000 })
    const s = engine.state()
    assert.ok(s.historyBytes <= 10_000, `held ${s.historyBytes}`)
    assert.equal(s.evicted.publications, 2)
    const cold = await engine.history('cold', { stream: STREAM, limit: 10 })
    assert.deepEqual(cold.publications.map((p) => p.data), ['c3', 'c4'])
    assert.equal((await engine.history('cold', { stream: STREAM, since: { offset: 1, epoch: cold.epoch }, limit: 10 })).continuous, false)
    const hot = await engine.history('hot', { stream: STREAM, limit: 10 })
    assert.deepEqual(hot.publications.map((p) => p.data), ['h1', 'h2', 'h3'])
    // Trims and expiry give the bytes back.
    await engine.removeHistory('cold')
    assert.equal(engine.state().historyBytes, 6000)
    await engine.close()
  })

  it('maxIdempotencyKeys: a new id is refused (temporary) rather than another client\'s forgotten; repeats still dedupe', async () => {
    const engine = await started({ maxIdempotencyKeys: 3 })
    await engine.publish('c', 1, { ...STREAM, idempotencyKey: 'k1' })
    await engine.publish('c', 2, { ...STREAM, idempotencyKey: 'k2' })
    assert.equal((await engine.claimIdempotent('r1', 60_000)).state, 'new')
    await assert.rejects(engine.publish('c', 3, { ...STREAM, idempotencyKey: 'k3' }), limitExceeded)
    await assert.rejects(engine.claimIdempotent('r2', 60_000), limitExceeded)
    assert.equal((await engine.publish('c', 1, { ...STREAM, idempotencyKey: 'k1' })).duplicate, true)
    await engine.completeIdempotent('r1', 'done', 60_000)
    assert.equal(engine.state().idempotency, 3)
    assert.equal(engine.state().refused.idempotency, 2)
    await engine.releaseIdempotent('r1')
    assert.equal((await engine.publish('c', 3, { ...STREAM, idempotencyKey: 'k3' })).offset, 3, 'room again')
    await engine.close()
  })

  it('maxPresenceEntries: a new entry is refused (temporary); refreshing a held one is not', async () => {
    const engine = await started({ maxPresenceEntries: 2 })
    await engine.addPresence('room', { client: 'c1', user: 'u1' }, 60_000)
    await engine.addPresence('hall', { client: 'c1', user: 'u1' }, 60_000)
    await assert.rejects(engine.addPresence('room', { client: 'c2', user: 'u2' }, 60_000), limitExceeded)
    await engine.addPresence('room', { client: 'c1', user: 'u1' }, 60_000)
    await engine.removePresence('hall', 'c1')
    await engine.addPresence('room', { client: 'c2', user: 'u2' }, 60_000)
    assert.deepEqual(engine.state().presence, 2)
    assert.equal(engine.state().refused.presence, 1)
    await engine.close()
  })

  describe('accounting: what the budgets count is what the engine holds', () => {
    /** A clock the test moves. */
    function clock(): { now: () => number; advance: (ms: number) => void } {
      let t = 1_000_000
      return { now: () => t, advance: (ms) => void (t += ms) }
    }

    it('history bytes go down by what historySize trims, and by nothing else', async () => {
      const engine = await started()
      const two: StreamOptions = { ...STREAM, historySize: 2 }
      for (let i = 1; i <= 5; i++) await engine.publish('c', i, { ...two, size: 100 })
      assert.equal(engine.state().historyBytes, 200)
      await engine.close()
    })

    it('data without a measured size counts its JSON bytes; data JSON has no text for counts none', async () => {
      const engine = await started()
      await engine.publish('c', { a: 'xyz' }, STREAM)
      assert.equal(engine.state().historyBytes, Buffer.byteLength('{"a":"xyz"}'))
      await engine.publish('d', undefined, STREAM)
      assert.equal(engine.state().historyBytes, Buffer.byteLength('{"a":"xyz"}'))
      await engine.close()
    })

    it('eviction goes on into the next cold stream until the budget holds, and stops as soon as it does', async () => {
      const engine = await started({ maxHistoryBytes: 1000 })
      await engine.publish('a', 'a1', { ...STREAM, size: 300 })
      await engine.publish('b', 'b1', { ...STREAM, size: 300 })
      await engine.publish('c', 'c1', { ...STREAM, size: 800 }) // 1,400: a and b must both go
      assert.equal(engine.state().historyBytes, 800)
      assert.equal(engine.state().evicted.publications, 2)
      assert.deepEqual((await engine.history('c', { stream: STREAM, limit: 10 })).publications.map((p) => p.data), ['c1'])
      await engine.close()
    })

    it('eviction stops exactly at the budget: a stream that brings the total to it is kept', async () => {
      const engine = await started({ maxHistoryBytes: 1000 })
      await engine.publish('a', 'a1', { ...STREAM, size: 100 })
      await engine.publish('a', 'a2', { ...STREAM, size: 300 })
      await engine.publish('c', 'c1', { ...STREAM, size: 700 }) // 1,100: a1 goes, 1,000 is within
      assert.equal(engine.state().historyBytes, 1000)
      assert.deepEqual((await engine.history('a', { stream: STREAM, limit: 10 })).publications.map((p) => p.data), ['a2'])
      await engine.close()
    })

    it('the stream budget forgets an expired stream first, even one whose history is still kept', async () => {
      const time = clock()
      const engine = await started({ maxStreams: 2, now: time.now })
      // History kept longer than the stream: its publications are still there when the stream expires.
      const long: StreamOptions = { historySize: 100, historyTtlMs: 700_000, streamTtlMs: 600_000 }
      await engine.publish('old', 1, long)
      time.advance(300_000)
      await engine.publish('recent', 1, long)
      time.advance(300_001) // `old` expired, `recent` did not
      assert.equal((await engine.publish('new', 1, long)).offset, 1)
      assert.deepEqual([engine.state().evicted.streams, engine.state().refused.streams], [1, 0])
      assert.equal((await engine.history('recent', { stream: long, limit: 10 })).publications.length, 1, 'recent is kept')
      await engine.close()
    })

    it('a history page cut by bytes takes publications up to exactly maxBytes', async () => {
      const engine = await started()
      for (let i = 1; i <= 3; i++) await engine.publish('c', i, { ...STREAM, size: 100 })
      const page = await engine.history('c', { stream: STREAM, since: { offset: 0, epoch: '' }, limit: 10, maxBytes: 200 })
      assert.deepEqual(page.publications.map((p) => p.data), [1, 2])
      await engine.close()
    })

    it('a publish without a message id is never refused for want of room for ids', async () => {
      const engine = await started({ maxIdempotencyKeys: 1 })
      await engine.publish('c', 1, { ...STREAM, idempotencyKey: 'k1' })
      assert.equal((await engine.publish('c', 2, STREAM)).offset, 2)
      await engine.close()
    })

    it('a message id published again after it expired takes no second slot', async () => {
      const t = clock()
      const engine = await started({ maxIdempotencyKeys: 2, now: t.now })
      const short = { ...STREAM, idempotencyTtlMs: 1000 }
      await engine.publish('c', 1, { ...short, idempotencyKey: 'k1' })
      t.advance(2000)
      assert.equal((await engine.publish('c', 1, { ...short, idempotencyKey: 'k1' })).duplicate, false, 'expired: published again')
      assert.equal(engine.state().idempotency, 1)
      assert.equal((await engine.publish('c', 2, { ...short, idempotencyKey: 'k2' })).offset, 3, 'room for a second id')
      await engine.close()
    })

    it('a claim taken again after it expired reuses its slot, even with the budget spent', async () => {
      const t = clock()
      const engine = await started({ maxIdempotencyKeys: 1, now: t.now })
      assert.equal((await engine.claimIdempotent('r1', 1000)).state, 'new')
      t.advance(2000)
      assert.equal((await engine.claimIdempotent('r1', 1000)).state, 'new')
      assert.equal(engine.state().idempotency, 1)
      await engine.close()
    })

    it('an expired presence entry read away gives its place back', async () => {
      const t = clock()
      const engine = await started({ maxPresenceEntries: 1, now: t.now })
      await engine.addPresence('room', { client: 'c1', user: 'u1' }, 1000)
      t.advance(2000)
      assert.deepEqual(await engine.presence('room'), {})
      assert.equal(engine.state().presence, 0)
      await engine.addPresence('room', { client: 'c2', user: 'u2' }, 1000)
      assert.equal(engine.state().presence, 1)
      await engine.close()
    })

    it('a stored publication carries the same entry key on every read (the node reuses its encoding)', async () => {
      const engine = await started()
      await engine.publish('c', 'x', STREAM)
      const first = (await engine.history('c', { stream: STREAM, limit: 1 })).publications[0] as StoredPublication
      const again = (await engine.history('c', { stream: STREAM, limit: 1 })).publications[0] as StoredPublication
      assert.notEqual(first, again, 'a fresh object per read')
      assert.equal(typeof first[STORED_KEY], 'object')
      assert.equal(first[STORED_KEY], again[STORED_KEY])
      await engine.close()
    })
  })

  describe('through the gateway', () => {
    const fx = serverPerTest()
    it('2,000 subscribe/unsubscribe pairs of 2,000 channels leave no stream and no hub entry', async () => {
      const engine = new MemoryEngine()
      const { url, gw } = await fx.start({ engine, commandRate: { perSecond: 1e6, burst: 1e6 } })
      const c = fx.client(url)
      await c.connect()
      for (let round = 0; round < 10; round++) {
        const batch = []
        for (let i = 0; i < 200; i++) {
          const channel = `flood:${round}-${i}`
          batch.push(c.call({ type: 'subscribe', channel }), c.call({ type: 'unsubscribe', channel }))
        }
        await Promise.all(batch)
      }
      assert.equal(engine.state().streams, 0)
      assert.equal(gw.hub.size, 0)
      await engine.close()
    })

    it('a subscriber at offset 0 takes the first publication in whatever epoch it comes, with no recovery', async () => {
      const engine = new MemoryEngine()
      const { url, gw } = await fx.start({ engine })
      const c = fx.client(url)
      await c.connect()
      const sub = await c.call<{ epoch: string; offset: number }>({ type: 'subscribe', channel: 'fresh' })
      assert.equal(sub.offset, 0)
      // Forgetting another stream early moves the derivation on: `fresh` starts in another epoch.
      await gw.publish('other', 1)
      await engine.removeHistory('other')
      const out = await gw.publish('fresh', 'first')
      assert.notEqual(out.epoch, sub.epoch)
      await c.until(() => c.pubs('fresh').length === 1)
      assert.deepEqual([c.pubs('fresh')[0]?.epoch, c.pubs('fresh')[0]?.offset], [out.epoch, 1])
      assert.equal(gw.counters.get('insufficient_state'), 0)
      assert.equal(c.closed, undefined)
      const again = await c.call<{ recovered: boolean; publications: unknown[] }>({ type: 'subscribe', channel: 'again', recover: { epoch: 'never-seen', offset: 0 } })
      assert.equal(again.recovered, true, 'offset 0 recovers in any epoch')
      await engine.close()
    })

    it('maxMessageIdsPerUser: past the budget a publish gets limit_exceeded (temporary) and stores nothing; another user is unaffected', async () => {
      const { url, gw } = await fx.start({ authenticate: ({ token }) => ({ user: token ?? '' }), maxMessageIdsPerUser: 5 })
      const greedy = fx.client(url)
      await greedy.connect({ token: 'greedy' })
      const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => greedy.request({ type: 'publish', channel: 'g', data: i, msgId: `m${i}` })))
      const refused = replies.filter((r) => (r as { error?: { code: number; temporary: boolean } }).error?.code === ErrorCodes.limit_exceeded.code)
      assert.equal(refused.length, 3)
      assert.equal((refused[0] as unknown as { error: { temporary: boolean } }).error.temporary, true)
      assert.equal((await gw.history('g')).publications.length, 5)
      assert.equal(gw.counters.get('limit_exceeded', 'message_ids'), 3)
      const other = fx.client(url)
      await other.connect({ token: 'modest' })
      await other.call({ type: 'publish', channel: 'g', data: 'ok', msgId: 'm0' })
    })
  })
})
