import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { HoldfastError } from '@holdfast/protocol'
import type { StreamOptions } from '../src/engine/engine.js'
import { MemoryEngine, type MemoryEngineOptions } from '../src/engine/memory-engine.js'
import { engineContract, RecordingHandler } from './engine-contract.js'

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void; calls: () => number } {
  let t = start
  let calls = 0
  return {
    now: () => {
      calls++
      return t
    },
    advance: (ms) => {
      t += ms
    },
    calls: () => calls,
  }
}

engineContract('MemoryEngine', async () => {
  const clock = fakeClock()
  return { engine: new MemoryEngine({ now: clock.now }), advance: clock.advance }
})

// The same suite on the real clock: the time-travel tests report as skipped, the rest must pass as they will for Redis.
engineContract('MemoryEngine (real clock)', async () => ({ engine: new MemoryEngine() }))

const STREAM: StreamOptions = { historySize: 100, historyTtlMs: 60_000, streamTtlMs: 600_000 }

async function started(options: MemoryEngineOptions = {}): Promise<{ engine: MemoryEngine; rec: RecordingHandler }> {
  const engine = new MemoryEngine(options)
  const rec = new RecordingHandler()
  await engine.start(rec)
  return { engine, rec }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
}

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof HoldfastError && err.code === code
}

describe('MemoryEngine', () => {
  describe('options', () => {
    it('rejects bad options with a TypeError naming the option', () => {
      const cases: [MemoryEngineOptions, string][] = [
        [{ sweepIntervalMs: 0 }, 'sweepIntervalMs'],
        [{ sweepIntervalMs: 1.5 }, 'sweepIntervalMs'],
        [{ idempotencyTtlMs: -1 }, 'idempotencyTtlMs'],
        [{ now: 5 as unknown as () => number }, 'now'],
        [{ onError: 'log' as unknown as (err: unknown) => void }, 'onError'],
      ]
      for (const [opts, name] of cases) {
        assert.throws(() => new MemoryEngine(opts), (err: unknown) => err instanceof TypeError && err.message.includes(`"${name}"`), name)
      }
    })

    it('remembers a publish key for idempotencyTtlMs when the publish gives no TTL', async (t) => {
      const clock = fakeClock()
      const { engine } = await started({ now: clock.now, idempotencyTtlMs: 2000 })
      t.after(() => engine.close())
      const opts = { ...STREAM, idempotencyKey: 'k' }
      const first = await engine.publish('ch', 1, opts)
      clock.advance(1999)
      assert.deepEqual(await engine.publish('ch', 1, opts), { ...first, duplicate: true })
      clock.advance(1)
      assert.deepEqual(await engine.publish('ch', 1, opts), { offset: 2, epoch: first.epoch, duplicate: false })
    })
  })

  describe('lifecycle', () => {
    it('refuses calls before start and a second start', async (t) => {
      const engine = new MemoryEngine()
      t.after(() => engine.close())
      assert.equal(engine.isReady(), false)
      await assert.rejects(engine.publish('ch', 1, STREAM), isCode('engine_unavailable'))
      await engine.start(new RecordingHandler())
      await assert.rejects(engine.start(new RecordingHandler()), isCode('internal'))
      assert.equal(engine.isReady(), true)
    })

    it('cannot be started again after close', async () => {
      const { engine } = await started()
      await engine.close()
      await assert.rejects(engine.start(new RecordingHandler()), isCode('engine_unavailable'))
      assert.equal(engine.isReady(), false)
    })

    it('its sweep timer does not keep the process alive', async (t) => {
      const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
      const before = timers()
      const { engine } = await started()
      t.after(() => engine.close())
      assert.equal(timers(), before)
    })

    it('close stops the sweep', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const clock = fakeClock()
      const { engine } = await started({ now: clock.now, sweepIntervalMs: 1000 })
      const idle = clock.calls()
      t.mock.timers.tick(1000)
      assert.equal(clock.calls(), idle + 1, 'one sweep per interval, reading the clock once')
      await engine.close()
      t.mock.timers.tick(10_000)
      assert.equal(clock.calls(), idle + 1)
    })
  })

  describe('hot path', () => {
    it('fans out synchronously, before publish resolves', async (t) => {
      const { engine, rec } = await started()
      t.after(() => engine.close())
      await engine.subscribe('ch')
      const pending = engine.publish('ch', 'x', STREAM)
      assert.equal(rec.of('ch').length, 1)
      assert.equal((await pending).offset, 1)
    })

    it('gives concurrent publishes offsets in call order', async (t) => {
      const { engine } = await started()
      t.after(() => engine.close())
      const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => engine.publish('ch', i, STREAM)))
      assert.deepEqual(
        outcomes.map((o) => o.offset),
        Array.from({ length: 200 }, (_, i) => i + 1),
      )
    })

    it('a throwing handler is reported and does not fail the stored publish', async (t) => {
      const errors: unknown[] = []
      const engine = new MemoryEngine({ onError: (err) => errors.push(err) })
      t.after(() => engine.close())
      const boom = new Error('handler bug')
      await engine.start({
        onPublication: () => {
          throw boom
        },
        onJoinLeave: () => {},
        onControl: () => {},
      })
      await engine.subscribe('ch')
      const out = await engine.publish('ch', 'x', STREAM)
      assert.equal(out.offset, 1)
      assert.deepEqual(errors, [boom])
      const page = await engine.history('ch', { stream: STREAM, limit: 10 })
      assert.deepEqual(page.publications, [{ offset: 1, data: 'x' }])
    })

    it('reports a throwing handler as a process warning by default', async (t) => {
      const engine = new MemoryEngine()
      t.after(() => engine.close())
      await engine.start({
        onPublication: () => {
          throw new Error('handler bug')
        },
        onJoinLeave: () => {},
        onControl: () => {},
      })
      await engine.subscribe('ch')
      const warnings: Error[] = []
      const listen = (w: Error): void => {
        if ((w as Error & { code?: string }).code === 'HOLDFAST_ENGINE_HANDLER') warnings.push(w)
      }
      process.on('warning', listen)
      t.after(() => process.off('warning', listen))
      assert.equal((await engine.publish('ch', 'x', STREAM)).offset, 1)
      // Warnings are emitted on the next tick; one turn of the event loop is enough.
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(warnings.length, 1)
      assert.match(warnings[0]?.message ?? '', /handler bug/)
    })

    it('a returned outcome is the caller’s: changing it does not change what duplicates get', async (t) => {
      const { engine } = await started()
      t.after(() => engine.close())
      const opts = { ...STREAM, idempotencyKey: 'k' }
      const first = await engine.publish('ch', 'x', opts)
      first.offset = 99
      assert.equal((await engine.publish('ch', 'x', opts)).offset, 1)
    })
  })

  describe('history', () => {
    it('rejects a limit that is not a non-negative integer', async (t) => {
      const { engine } = await started()
      t.after(() => engine.close())
      for (const limit of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await assert.rejects(engine.history('ch', { stream: STREAM, limit }), isCode('bad_request'), String(limit))
      }
    })

    it('treats a negative or fractional since offset as not continuous', async (t) => {
      const { engine } = await started()
      t.after(() => engine.close())
      const { epoch } = await engine.publish('ch', 'x', STREAM)
      for (const offset of [-1, 0.5]) {
        const page = await engine.history('ch', { stream: STREAM, since: { offset, epoch }, limit: 10 })
        assert.equal(page.continuous, false, String(offset))
        assert.deepEqual(page.publications, [])
      }
    })

    it('compacts its buffer without losing the oldest live publication', async (t) => {
      const clock = fakeClock()
      const { engine } = await started({ now: clock.now })
      t.after(() => engine.close())
      const stream: StreamOptions = { historySize: 10_000, historyTtlMs: 1000, streamTtlMs: 600_000 }
      for (let i = 1; i <= 2000; i++) await engine.publish('ch', i, stream)
      clock.advance(500)
      for (let i = 2001; i <= 3000; i++) await engine.publish('ch', i, stream)
      clock.advance(500)
      // 2000 dead entries ahead of 1000 live ones: this read trims and compacts.
      const page = await engine.history('ch', { stream, limit: 5000 })
      assert.equal(engine.counts().publications, 1000)
      assert.deepEqual(
        page.publications.map((p) => p.offset),
        Array.from({ length: 1000 }, (_, i) => 2001 + i),
      )
      const { epoch } = page
      const from2000 = await engine.history('ch', { stream, since: { offset: 2000, epoch }, limit: 2 })
      assert.equal(from2000.continuous, true)
      assert.deepEqual(from2000.publications, [
        { offset: 2001, data: 2001 },
        { offset: 2002, data: 2002 },
      ])
      assert.equal((await engine.history('ch', { stream, since: { offset: 1999, epoch }, limit: 2 })).continuous, false)
      assert.equal((await engine.publish('ch', 3001, stream)).offset, 3001)
      const tail = await engine.history('ch', { stream, since: { offset: 2999, epoch }, limit: 10 })
      assert.deepEqual(tail.publications, [
        { offset: 3000, data: 3000 },
        { offset: 3001, data: 3001 },
      ])
    })

    it('property: large histories stay exact across compactions, trims and clock moves', async (t) => {
      const clock = fakeClock()
      const { engine } = await started({ now: clock.now })
      t.after(() => engine.close())
      type Op = { kind: 'publish'; n: number } | { kind: 'advance'; ms: number } | { kind: 'history'; since: number | undefined; limit: number }
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.integer({ min: 1, max: 1500 }).map((n) => ({ kind: 'publish' as const, n })),
        fc.integer({ min: 1, max: 800 }).map((ms) => ({ kind: 'advance' as const, ms })),
        fc.record({ kind: fc.constant('history' as const), since: fc.option(fc.nat(20_000), { nil: undefined }), limit: fc.nat(3000) }),
      )
      let run = 0
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 2500 }), fc.array(op, { maxLength: 12 }), async (historySize, ops) => {
          const ch = `big:${run++}`
          const stream: StreamOptions = { historySize, historyTtlMs: 2000, streamTtlMs: 86_400_000 }
          const { epoch } = await engine.history(ch, { stream, limit: 0 })
          const stamps: number[] = []
          let elapsed = 0
          const visible = (o: number): boolean => {
            const at = stamps[o - 1]
            return at !== undefined && o > stamps.length - historySize && elapsed - at < stream.historyTtlMs
          }
          for (const step of ops) {
            if (step.kind === 'advance') {
              clock.advance(step.ms)
              elapsed += step.ms
            } else if (step.kind === 'publish') {
              for (let i = 0; i < step.n; i++) {
                stamps.push(elapsed)
                assert.equal((await engine.publish(ch, stamps.length, stream)).offset, stamps.length)
              }
            } else {
              const top = stamps.length
              const page = await engine.history(ch, {
                stream,
                limit: step.limit,
                ...(step.since === undefined ? {} : { since: { offset: step.since % (top + 2), epoch } }),
              })
              let expected: number[] = []
              if (step.since === undefined) {
                for (let o = Math.max(1, top - step.limit + 1); o <= top; o++) if (visible(o)) expected.push(o)
              } else {
                const s = step.since % (top + 2)
                const continuous = s <= top && (s === top || visible(s + 1))
                assert.equal(page.continuous, continuous)
                if (continuous) for (let o = s + 1; o <= Math.min(top, s + step.limit); o++) expected.push(o)
              }
              assert.deepEqual(
                page.publications.map((p) => p.offset),
                expected,
              )
              for (const p of page.publications) assert.equal(p.data, p.offset)
              // A read trims, so what is hidden must also be freed.
              assert.equal(engine.counts().publications, range(1, top).filter(visible).length)
            }
          }
          await engine.removeHistory(ch)
        }),
        { numRuns: 25 },
      )
    })
  })

  describe('sweep', () => {
    it('frees expired streams, publications, presence and idempotency ids, and keeps live ones', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      const clock = fakeClock()
      const { engine } = await started({ now: clock.now, sweepIntervalMs: 1000 })
      t.after(() => engine.close())
      const short: StreamOptions = { historySize: 10, historyTtlMs: 500, streamTtlMs: 2000 }
      const long: StreamOptions = { historySize: 10, historyTtlMs: 60_000, streamTtlMs: 60_000 }
      for (let i = 0; i < 3; i++) await engine.publish('short', i, { ...short, idempotencyKey: `s${i}`, idempotencyTtlMs: 1500 })
      await engine.publish('long', 'x', { ...long, idempotencyKey: 'l', idempotencyTtlMs: 60_000 })
      await engine.history('read-only', { stream: short, limit: 0 })
      await engine.addPresence('room', { client: 'c1', user: 'u1' }, 1500)
      await engine.addPresence('room', { client: 'c2', user: 'u2' }, 60_000)
      await engine.claimIdempotent('rpc-short', 1500)
      await engine.claimIdempotent('rpc-long', 60_000)
      // The read of `read-only` created nothing.
      assert.deepEqual(engine.counts(), { streams: 2, publications: 4, presence: 2, idempotency: 6 })

      clock.advance(1000)
      t.mock.timers.tick(1000)
      // History TTL passed for `short`: its publications go, its position stays.
      assert.deepEqual(engine.counts(), { streams: 2, publications: 1, presence: 2, idempotency: 6 })

      clock.advance(1000)
      t.mock.timers.tick(1000)
      assert.deepEqual(engine.counts(), { streams: 1, publications: 1, presence: 1, idempotency: 2 })
      assert.deepEqual(await engine.presence('room'), { c2: { client: 'c2', user: 'u2' } })
      assert.equal((await engine.history('long', { stream: long, limit: 10 })).publications.length, 1)
    })

    it('removeHistory and emptied presence free their memory at once', async (t) => {
      const { engine } = await started()
      t.after(() => engine.close())
      await engine.publish('ch', 'x', STREAM)
      await engine.addPresence('ch', { client: 'c1', user: 'u1' }, 60_000)
      await engine.removeHistory('ch')
      await engine.removePresence('ch', 'c1')
      assert.deepEqual(engine.counts(), { streams: 0, publications: 0, presence: 0, idempotency: 0 })
    })
  })
})
