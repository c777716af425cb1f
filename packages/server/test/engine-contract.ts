/**
 * The behaviour every engine must share, as one suite: the memory engine runs it, and so does any
 * other engine (Redis) with its own `make()`. Each test gets a fresh, unstarted engine, starts it
 * with a recording handler, and uses channel names of its own, so engines backed by a shared
 * server do not see each other's data.
 *
 * Tests that need time to pass (TTLs) use the fixture's `advance(ms)`. An engine on a real clock
 * leaves `advance` out and those tests are reported as skipped, not faked with sleeps.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it, type TestContext } from 'node:test'
import fc from 'fast-check'
import { HoldfastError, type ClientInfo, type StreamPosition } from '@holdfast/protocol'
import type {
  ControlMessage,
  Engine,
  EngineHandler,
  HistoryPage,
  NodeInfo,
  PublishOptions,
  StreamOptions,
  StreamPublication,
} from '../src/engine/engine.js'
import { Waiters } from '../../../test/support/waiters.js'

export interface EngineFixture {
  /** A fresh engine, not started yet. */
  engine: Engine
  /** Runs after the engine is closed (stop a server, flush a database...). */
  cleanup?: () => Promise<void>
  /** Move the engine's clock forward by `ms`. Leave it out when the engine runs on a real clock. */
  advance?: (ms: number) => void | Promise<void>
}

type JoinLeave = { channel: string; kind: 'join' | 'leave'; info: ClientInfo }

/** Records what the engine delivers, and lets a test wait for it (live feeds may be asynchronous). */
export class RecordingHandler implements EngineHandler {
  readonly pubs: { channel: string; pub: StreamPublication }[] = []
  readonly joinLeave: JoinLeave[] = []
  readonly controls: ControlMessage[] = []
  readonly #waiters = new Waiters()

  onPublication(channel: string, pub: StreamPublication): void {
    this.pubs.push({ channel, pub })
    this.#notify()
  }

  onJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): void {
    this.joinLeave.push({ channel, kind, info })
    this.#notify()
  }

  onControl(msg: ControlMessage): void {
    this.controls.push(msg)
    this.#notify()
  }

  of(channel: string): StreamPublication[] {
    return this.pubs.filter((p) => p.channel === channel).map((p) => p.pub)
  }

  /** Resolves once `cond` holds (checked now and after every delivery); rejects after `ms` so a lost delivery fails instead of hanging. */
  until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
    return this.#waiters.until(cond, ms, () => `timed out after ${ms} ms waiting for ${what}`)
  }

  #notify(): void {
    this.#waiters.notify()
  }
}

interface Opened {
  engine: Engine
  rec: RecordingHandler
  advance: ((ms: number) => void | Promise<void>) | undefined
}

type Timed = Opened & { advance: (ms: number) => void | Promise<void> }

const STREAM: StreamOptions = { historySize: 100, historyTtlMs: 3_600_000, streamTtlMs: 86_400_000 }

function channel(): string {
  return `contract:${randomUUID()}`
}

function offsets(pubs: readonly { offset: number }[]): number[] {
  return pubs.map((p) => p.offset)
}

function range(from: number, to: number): number[] {
  const out: number[] = []
  for (let i = from; i <= to; i++) out.push(i)
  return out
}

function isUnavailable(err: unknown): boolean {
  return err instanceof HoldfastError && err.code === 'engine_unavailable'
}

export function engineContract(name: string, make: () => Promise<EngineFixture>): void {
  async function open(t: TestContext): Promise<Opened> {
    const fx = await make()
    const rec = new RecordingHandler()
    await fx.engine.start(rec)
    t.after(async () => {
      await fx.engine.close()
      await fx.cleanup?.()
    })
    return { engine: fx.engine, rec, advance: fx.advance }
  }

  function test(title: string, fn: (o: Opened) => Promise<void>): void {
    it(title, async (t) => fn(await open(t)))
  }

  function timedTest(title: string, fn: (o: Timed) => Promise<void>): void {
    it(title, async (t) => {
      const o = await open(t)
      const advance = o.advance
      if (advance === undefined) {
        t.skip('the engine runs on a real clock (no advance in its fixture)')
        return
      }
      await fn({ ...o, advance })
    })
  }

  const pub = (stream: StreamOptions = STREAM, extra: Partial<PublishOptions> = {}): PublishOptions => ({ ...stream, ...extra })

  async function publishN(engine: Engine, ch: string, n: number, stream: StreamOptions = STREAM): Promise<void> {
    for (let i = 1; i <= n; i++) await engine.publish(ch, { i }, pub(stream))
  }

  async function since(engine: Engine, ch: string, pos: StreamPosition, limit = 1000, stream: StreamOptions = STREAM): Promise<HistoryPage> {
    return engine.history(ch, { stream, since: pos, limit })
  }

  describe(`engine contract: ${name}`, () => {
    describe('lifecycle', () => {
      it('is ready between start and close', async (t) => {
        const fx = await make()
        t.after(async () => {
          await fx.engine.close()
          await fx.cleanup?.()
        })
        assert.equal(fx.engine.isReady(), false)
        await fx.engine.start(new RecordingHandler())
        assert.equal(fx.engine.isReady(), true)
        await fx.engine.close()
        assert.equal(fx.engine.isReady(), false)
      })

      test('rejects every call after close with engine_unavailable', async ({ engine }) => {
        const ch = channel()
        await engine.close()
        const info: ClientInfo = { client: 'c', user: 'u' }
        const calls: [string, () => Promise<unknown>][] = [
          ['subscribe', () => engine.subscribe(ch)],
          ['unsubscribe', () => engine.unsubscribe(ch)],
          ['publish', () => engine.publish(ch, 1, pub())],
          ['history', () => engine.history(ch, { stream: STREAM, limit: 10 })],
          ['removeHistory', () => engine.removeHistory(ch)],
          ['addPresence', () => engine.addPresence(ch, info, 1000)],
          ['removePresence', () => engine.removePresence(ch, 'c')],
          ['presence', () => engine.presence(ch)],
          ['presenceStats', () => engine.presenceStats(ch)],
          ['publishJoinLeave', () => engine.publishJoinLeave(ch, 'join', info)],
          ['publishControl', () => engine.publishControl({ type: 'takeover', session: 's', client: 'c', node: 'n' })],
          ['claimIdempotent', () => engine.claimIdempotent('k', 1000)],
          ['completeIdempotent', () => engine.completeIdempotent('k', 1, 1000)],
          ['releaseIdempotent', () => engine.releaseIdempotent('k')],
          ['registerNode', () => engine.registerNode({ id: 'n', connections: 0, subscriptions: 0, channels: 0, startedAt: 0, updatedAt: 0 }, 1000)],
          ['nodes', () => engine.nodes()],
        ]
        for (const [method, call] of calls) await assert.rejects(call(), isUnavailable, method)
      })
    })

    describe('offsets and epochs', () => {
      test('offsets start at 1 and grow by one inside a stable epoch', async ({ engine }) => {
        const ch = channel()
        const a = await engine.publish(ch, 'a', pub())
        const b = await engine.publish(ch, 'b', pub())
        const c = await engine.publish(ch, 'c', pub())
        assert.deepEqual(offsets([a, b, c]), [1, 2, 3])
        assert.equal(a.duplicate, false)
        assert.ok(a.epoch.length > 0)
        assert.equal(b.epoch, a.epoch)
        assert.equal(c.epoch, a.epoch)
        const page = await engine.history(ch, { stream: STREAM, limit: 10 })
        assert.equal(page.epoch, a.epoch)
        assert.equal(page.offset, 3)
        assert.deepEqual(page.publications, [
          { offset: 1, data: 'a' },
          { offset: 2, data: 'b' },
          { offset: 3, data: 'c' },
        ])
      })

      test('concurrent publishes get gapless unique offsets, fanned out in offset order', async ({ engine, rec }) => {
        const ch = channel()
        await engine.subscribe(ch)
        const n = 1000
        const outcomes = await Promise.all(range(1, n).map((i) => engine.publish(ch, { i }, pub({ ...STREAM, historySize: n }))))
        assert.deepEqual(
          offsets(outcomes).sort((x, y) => x - y),
          range(1, n),
        )
        assert.equal(new Set(outcomes.map((o) => o.epoch)).size, 1)
        await rec.until(`${n} publications`, () => rec.of(ch).length >= n)
        const live = rec.of(ch)
        assert.deepEqual(offsets(live), range(1, n))
        // Each delivered offset carries the data of the publish that was given that offset.
        const dataByOffset = new Map(outcomes.map((o, idx) => [o.offset, { i: idx + 1 }]))
        for (const p of live) assert.deepEqual(p.data, dataByOffset.get(p.offset))
        const page = await engine.history(ch, { stream: { ...STREAM, historySize: n }, limit: n })
        assert.equal(page.offset, n)
        assert.deepEqual(offsets(page.publications), range(1, n))
      })

      test('history of an unknown channel creates its position, kept by the next calls and the first publish', async ({ engine }) => {
        const ch = channel()
        const first = await engine.history(ch, { stream: STREAM, limit: 10 })
        assert.equal(first.offset, 0)
        assert.equal(first.continuous, true)
        assert.deepEqual(first.publications, [])
        assert.ok(first.epoch.length > 0)
        const again = await engine.history(ch, { stream: STREAM, since: { offset: 0, epoch: first.epoch }, limit: 10 })
        assert.equal(again.epoch, first.epoch)
        assert.equal(again.continuous, true)
        const p = await engine.publish(ch, 'x', pub())
        assert.deepEqual(p, { offset: 1, epoch: first.epoch, duplicate: false })
        // A subscriber that got position 0 from its first subscribe recovers the first publication.
        const after = await since(engine, ch, { offset: 0, epoch: first.epoch })
        assert.equal(after.continuous, true)
        assert.deepEqual(after.publications, [{ offset: 1, data: 'x' }])
      })

      test('channels have independent streams', async ({ engine }) => {
        const a = channel()
        const b = channel()
        await publishN(engine, a, 3)
        const pb = await engine.publish(b, 'b', pub())
        assert.equal(pb.offset, 1)
        const pa = await engine.history(a, { stream: STREAM, limit: 10 })
        assert.equal(pa.offset, 3)
        assert.notEqual(pa.epoch, pb.epoch)
      })

      test('removeHistory starts a new epoch at offset 0', async ({ engine }) => {
        const ch = channel()
        await publishN(engine, ch, 3)
        const before = await engine.history(ch, { stream: STREAM, limit: 0 })
        await engine.removeHistory(ch)
        const after = await engine.history(ch, { stream: STREAM, limit: 10 })
        assert.notEqual(after.epoch, before.epoch)
        assert.equal(after.offset, 0)
        assert.deepEqual(after.publications, [])
        const old = await since(engine, ch, { offset: 3, epoch: before.epoch })
        assert.equal(old.continuous, false)
        assert.deepEqual(old.publications, [])
        const p = await engine.publish(ch, 'new', pub())
        assert.deepEqual(p, { offset: 1, epoch: after.epoch, duplicate: false })
      })

      test('removeHistory of an unknown channel is harmless', async ({ engine }) => {
        const ch = channel()
        await engine.removeHistory(ch)
        const p = await engine.publish(ch, 'x', pub())
        assert.equal(p.offset, 1)
      })

      timedTest('a stream not published to for streamTtlMs is forgotten: new epoch, offset 0', async ({ engine, advance }) => {
        const ch = channel()
        const stream = { ...STREAM, streamTtlMs: 10_000 }
        const a = await engine.publish(ch, 'a', pub(stream))
        await advance(9_999)
        const b = await engine.publish(ch, 'b', pub(stream))
        assert.deepEqual(b, { offset: 2, epoch: a.epoch, duplicate: false })
        // The TTL runs from the latest publish, not the first.
        await advance(9_999)
        const alive = await engine.history(ch, { stream, limit: 10 })
        assert.equal(alive.epoch, a.epoch)
        assert.equal(alive.offset, 2)
        await advance(1)
        const gone = await engine.history(ch, { stream, limit: 10 })
        assert.notEqual(gone.epoch, a.epoch)
        assert.equal(gone.offset, 0)
        assert.deepEqual(gone.publications, [])
        assert.equal((await since(engine, ch, { offset: 2, epoch: a.epoch }, 10, stream)).continuous, false)
        const c = await engine.publish(ch, 'c', pub(stream))
        assert.deepEqual(c, { offset: 1, epoch: gone.epoch, duplicate: false })
      })

      timedTest('an expired stream restarts on publish too, without a history call first', async ({ engine, advance }) => {
        const ch = channel()
        const stream = { ...STREAM, streamTtlMs: 1000 }
        const a = await engine.publish(ch, 'a', pub(stream))
        await advance(1000)
        const b = await engine.publish(ch, 'b', pub(stream))
        assert.equal(b.offset, 1)
        assert.notEqual(b.epoch, a.epoch)
      })
    })

    describe('history', () => {
      test('maxBytes cuts a page at the far end (at least one publication): the first after since, or the newest', async ({ engine }) => {
        const ch = channel()
        const blob = 'x'.repeat(1000)
        for (let i = 1; i <= 6; i++) await engine.publish(ch, { i, blob }, pub())
        const { epoch } = await engine.history(ch, { stream: STREAM, limit: 0 })
        const after = await engine.history(ch, { stream: STREAM, since: { offset: 1, epoch }, limit: 10, maxBytes: 2500 })
        assert.deepEqual([after.continuous, offsets(after.publications)], [true, [2, 3]])
        const newest = await engine.history(ch, { stream: STREAM, limit: 10, maxBytes: 2500 })
        assert.deepEqual(offsets(newest.publications), [5, 6])
        const reversed = await engine.history(ch, { stream: STREAM, limit: 10, maxBytes: 2500, reverse: true })
        assert.deepEqual(offsets(reversed.publications), [6, 5])
        const tiny = await engine.history(ch, { stream: STREAM, since: { offset: 3, epoch }, limit: 10, maxBytes: 1 })
        assert.deepEqual(offsets(tiny.publications), [4], 'at least one publication')
        assert.equal(tiny.offset, 6)
      })

      test('the continuity table when nothing was trimmed', async ({ engine }) => {
        const ch = channel()
        await publishN(engine, ch, 3)
        const { epoch } = await engine.history(ch, { stream: STREAM, limit: 0 })

        const fromZero = await since(engine, ch, { offset: 0, epoch })
        assert.equal(fromZero.continuous, true)
        assert.deepEqual(offsets(fromZero.publications), [1, 2, 3])

        const atTop = await since(engine, ch, { offset: 3, epoch })
        assert.equal(atTop.continuous, true, 'the same position is continuous with zero publications')
        assert.deepEqual(atTop.publications, [])
        assert.equal(atTop.offset, 3)

        // Someone saw an offset the stream does not have: it went back. An engine whose streams can
        // go back (Redis after a lossy failover) moves the stream to a new epoch then, so that
        // everyone who saw the lost offsets learns it; the others may keep the epoch.
        const future = await since(engine, ch, { offset: 4, epoch })
        assert.equal(future.continuous, false, 'an offset beyond the top')
        assert.deepEqual(future.publications, [])
        assert.equal(future.offset, 3)

        const otherEpoch = await since(engine, ch, { offset: 1, epoch: `${epoch}x` })
        assert.equal(otherEpoch.continuous, false, 'an unknown epoch')
        assert.deepEqual(otherEpoch.publications, [])
        assert.equal(otherEpoch.epoch, future.epoch)
        assert.equal(otherEpoch.offset, 3)

        // A position that cannot exist (from a broken or hostile client) is not continuous either.
        const { epoch: current } = await engine.history(ch, { stream: STREAM, limit: 0 })
        for (const bad of [{ offset: -1, epoch: current }, { offset: 1.5, epoch: current }, { offset: 1, epoch: 7 as unknown as string }]) {
          const page = await since(engine, ch, bad)
          assert.equal(page.continuous, false, JSON.stringify(bad))
          assert.deepEqual(page.publications, [], JSON.stringify(bad))
          assert.equal(page.offset, 3)
        }
      })

      test('trims by size; a position whose next publication was trimmed is not continuous', async ({ engine }) => {
        const ch = channel()
        const stream = { ...STREAM, historySize: 3 }
        await publishN(engine, ch, 5, stream)
        const latest = await engine.history(ch, { stream, limit: 10 })
        assert.equal(latest.offset, 5)
        assert.equal(latest.continuous, true)
        assert.deepEqual(latest.publications, [
          { offset: 3, data: { i: 3 } },
          { offset: 4, data: { i: 4 } },
          { offset: 5, data: { i: 5 } },
        ])
        const { epoch } = latest
        assert.deepEqual(offsets((await since(engine, ch, { offset: 2, epoch }, 10, stream)).publications), [3, 4, 5])
        assert.equal((await since(engine, ch, { offset: 2, epoch }, 10, stream)).continuous, true)
        const trimmed = await since(engine, ch, { offset: 1, epoch }, 10, stream)
        assert.equal(trimmed.continuous, false)
        assert.deepEqual(trimmed.publications, [])
        assert.equal((await since(engine, ch, { offset: 0, epoch }, 10, stream)).continuous, false)
        assert.equal((await since(engine, ch, { offset: 5, epoch }, 10, stream)).continuous, true)
      })

      test('historySize 0 keeps no publications but still assigns offsets', async ({ engine }) => {
        const ch = channel()
        const stream = { ...STREAM, historySize: 0 }
        await publishN(engine, ch, 3, stream)
        const page = await engine.history(ch, { stream, limit: 10 })
        assert.equal(page.offset, 3)
        assert.deepEqual(page.publications, [])
        assert.equal((await since(engine, ch, { offset: 3, epoch: page.epoch }, 10, stream)).continuous, true)
        assert.equal((await since(engine, ch, { offset: 2, epoch: page.epoch }, 10, stream)).continuous, false)
        assert.equal((await since(engine, ch, { offset: 0, epoch: page.epoch }, 10, stream)).continuous, false)
        const next = await engine.publish(ch, 'x', pub(stream))
        assert.equal(next.offset, 4)
      })

      test('limit and reverse', async ({ engine }) => {
        const ch = channel()
        await publishN(engine, ch, 10)
        const q = (extra: { since?: StreamPosition; limit: number; reverse?: boolean }): Promise<HistoryPage> =>
          engine.history(ch, { stream: STREAM, ...extra })
        const { epoch } = await q({ limit: 0 })

        assert.deepEqual(offsets((await q({ limit: 3 })).publications), [8, 9, 10])
        assert.deepEqual(offsets((await q({ limit: 3, reverse: true })).publications), [10, 9, 8])
        assert.deepEqual(offsets((await q({ limit: 100 })).publications), range(1, 10))
        const onlyPosition = await q({ limit: 0 })
        assert.deepEqual(onlyPosition.publications, [])
        assert.equal(onlyPosition.offset, 10)
        assert.equal(onlyPosition.continuous, true)

        const page = await q({ since: { offset: 2, epoch }, limit: 3 })
        assert.equal(page.continuous, true)
        assert.deepEqual(offsets(page.publications), [3, 4, 5], 'the first publications after since, truncated below the top')
        assert.equal(page.offset, 10)
        assert.deepEqual(offsets((await q({ since: { offset: 2, epoch }, limit: 3, reverse: true })).publications), [5, 4, 3])
        assert.deepEqual(offsets((await q({ since: { offset: 8, epoch }, limit: 5 })).publications), [9, 10])
        const none = await q({ since: { offset: 2, epoch }, limit: 0 })
        assert.equal(none.continuous, true)
        assert.deepEqual(none.publications, [])
      })

      test('publications keep their data and the publisher info, and omit info when there was none', async ({ engine }) => {
        const ch = channel()
        const info: ClientInfo = { client: 'c1', user: 'alice', info: { name: 'Alice' } }
        await engine.publish(ch, { text: 'hi', n: [1, 2] }, pub(STREAM, { info }))
        await engine.publish(ch, null, pub())
        const page = await engine.history(ch, { stream: STREAM, limit: 10 })
        assert.deepEqual(page.publications, [
          { offset: 1, data: { text: 'hi', n: [1, 2] }, info },
          { offset: 2, data: null },
        ])
      })

      timedTest('trims by TTL: expired publications are never returned and break continuity', async ({ engine, advance }) => {
        const ch = channel()
        const stream = { ...STREAM, historyTtlMs: 1000 }
        await publishN(engine, ch, 2, stream)
        await advance(500)
        await engine.publish(ch, { i: 3 }, pub(stream))
        await advance(499)
        const all = await engine.history(ch, { stream, limit: 10 })
        assert.deepEqual(offsets(all.publications), [1, 2, 3])
        const { epoch } = all

        await advance(1) // 1 and 2 are exactly historyTtlMs old
        const latest = await engine.history(ch, { stream, limit: 10 })
        assert.deepEqual(offsets(latest.publications), [3])
        assert.equal(latest.offset, 3)
        assert.equal(latest.epoch, epoch)
        assert.deepEqual(offsets((await since(engine, ch, { offset: 2, epoch }, 10, stream)).publications), [3])
        assert.equal((await since(engine, ch, { offset: 1, epoch }, 10, stream)).continuous, false)
        assert.equal((await since(engine, ch, { offset: 0, epoch }, 10, stream)).continuous, false)

        await advance(500)
        const empty = await engine.history(ch, { stream, limit: 10 })
        assert.deepEqual(empty.publications, [])
        assert.equal(empty.offset, 3, 'the stream outlives its publications')
        assert.equal(empty.epoch, epoch)
        const atTop = await since(engine, ch, { offset: 3, epoch }, 10, stream)
        assert.equal(atTop.continuous, true)
        assert.deepEqual(atTop.publications, [])
        const expired = await since(engine, ch, { offset: 2, epoch }, 10, stream)
        assert.equal(expired.continuous, false)
        assert.deepEqual(expired.publications, [])

        await engine.publish(ch, { i: 4 }, pub(stream))
        assert.deepEqual((await since(engine, ch, { offset: 3, epoch }, 10, stream)).publications, [{ offset: 4, data: { i: 4 } }])
      })

      it('property: a continuous answer for since=s holds exactly s+1..min(top, s+limit), in order', async (t) => {
        const { engine, advance } = await open(t)
        type Op =
          | { kind: 'publish' }
          | { kind: 'advance'; ms: number }
          | { kind: 'history'; since: number | undefined; wrongEpoch: boolean; limit: number; reverse: boolean }
        const op: fc.Arbitrary<Op> = fc.oneof(
          { weight: 4, arbitrary: fc.constant({ kind: 'publish' as const }) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 700 }).map((ms) => ({ kind: 'advance' as const, ms })) },
          {
            weight: 3,
            arbitrary: fc.record({
              kind: fc.constant('history' as const),
              since: fc.option(fc.nat(40), { nil: undefined }),
              wrongEpoch: fc.boolean(),
              limit: fc.nat(15),
              reverse: fc.boolean(),
            }),
          },
        )
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: 12 }), fc.array(op, { maxLength: 60 }), async (historySize, ops) => {
            const ch = channel()
            // Without a movable clock, a long TTL keeps real time from trimming anything.
            const stream: StreamOptions = { historySize, historyTtlMs: advance ? 1000 : 3_600_000, streamTtlMs: 86_400_000 }
            const model: { data: string; at: number }[] = []
            let clock = 0
            let { epoch } = await engine.history(ch, { stream, limit: 0 })
            const visible = (o: number): boolean => {
              const e = model[o - 1]
              return e !== undefined && o > model.length - historySize && clock - e.at < stream.historyTtlMs
            }
            for (const step of ops) {
              if (step.kind === 'advance') {
                if (advance === undefined) continue
                await advance(step.ms)
                clock += step.ms
              } else if (step.kind === 'publish') {
                const data = `d${model.length + 1}`
                const out = await engine.publish(ch, data, pub(stream))
                model.push({ data, at: clock })
                assert.equal(out.offset, model.length)
                assert.equal(out.epoch, epoch)
              } else {
                const top = model.length
                const s = step.since === undefined ? undefined : step.since % (top + 3)
                const sinceEpoch = step.wrongEpoch ? `${epoch}-other` : epoch
                const page = await engine.history(ch, {
                  stream,
                  limit: step.limit,
                  reverse: step.reverse,
                  ...(s === undefined ? {} : { since: { offset: s, epoch: sinceEpoch } }),
                })
                // A position beyond the top in the current epoch may move the stream to a new one (see above).
                if (s !== undefined && s > top && !step.wrongEpoch) epoch = page.epoch
                assert.equal(page.epoch, epoch)
                assert.equal(page.offset, top)
                let expected: number[]
                if (s === undefined) {
                  assert.equal(page.continuous, true)
                  const kept = range(1, top).filter(visible)
                  expected = step.limit === 0 ? [] : kept.slice(-step.limit)
                } else {
                  // Offset 0 (nothing delivered yet) lies in every epoch.
                  const continuous = (!step.wrongEpoch || s === 0) && s <= top && (s === top || visible(s + 1))
                  assert.equal(page.continuous, continuous, `continuous for since=${s} top=${top}`)
                  expected = continuous ? range(s + 1, Math.min(top, s + step.limit)) : []
                }
                if (step.reverse) expected.reverse()
                assert.deepEqual(offsets(page.publications), expected)
                for (const p of page.publications) assert.equal(p.data, model[p.offset - 1]?.data)
              }
            }
          }),
          { numRuns: 100 },
        )
      })
    })

    describe('live feed', () => {
      test('delivers only while subscribed, with epoch, data and info', async ({ engine, rec }) => {
        const ch = channel()
        const other = channel()
        const before = await engine.publish(ch, 'before', pub())
        await engine.subscribe(ch)
        const info: ClientInfo = { client: 'c1', user: 'u1' }
        const one = await engine.publish(ch, 'one', pub(STREAM, { info }))
        await engine.publish(other, 'elsewhere', pub())
        await rec.until('publication 2', () => rec.of(ch).length >= 1)
        assert.deepEqual(rec.of(ch), [{ offset: 2, epoch: one.epoch, data: 'one', info }])
        assert.equal(before.offset, 1)

        await engine.unsubscribe(ch)
        await engine.publish(ch, 'while away', pub())
        await engine.subscribe(ch)
        await engine.publish(ch, 'back', pub())
        // Per-channel order means offset 3 would have arrived before offset 4 if it was ever sent.
        await rec.until('publication 4', () => rec.of(ch).some((p) => p.offset === 4))
        assert.deepEqual(rec.of(ch).map((p) => [p.offset, p.data]), [[2, 'one'], [4, 'back']])
        assert.deepEqual(rec.of(other), [])
      })

      test('subscribing twice still delivers each publication once', async ({ engine, rec }) => {
        const ch = channel()
        await engine.subscribe(ch)
        await engine.subscribe(ch)
        await engine.publish(ch, 'a', pub())
        await engine.publish(ch, 'b', pub())
        await rec.until('publication 2', () => rec.of(ch).some((p) => p.offset === 2))
        assert.deepEqual(offsets(rec.of(ch)), [1, 2])
      })

      test('join and leave reach subscribed channels only; control reaches the node always', async ({ engine, rec }) => {
        const ch = channel()
        const alice: ClientInfo = { client: 'c1', user: 'alice' }
        const bob: ClientInfo = { client: 'c2', user: 'bob', info: { color: 'blue' } }
        await engine.publishJoinLeave(ch, 'join', alice)
        await engine.subscribe(ch)
        await engine.publishJoinLeave(ch, 'join', bob)
        await engine.publishJoinLeave(ch, 'leave', alice)
        await rec.until('leave', () => rec.joinLeave.some((j) => j.kind === 'leave'))
        assert.deepEqual(rec.joinLeave, [{ channel: ch, kind: 'join', info: bob }, { channel: ch, kind: 'leave', info: alice }])

        const msg: ControlMessage = { type: 'disconnect', user: 'alice', code: 4012, reason: 'banned', node: 'n1' }
        await engine.publishControl(msg)
        await rec.until('control', () => rec.controls.length >= 1)
        assert.deepEqual(rec.controls, [msg])
      })
    })

    describe('idempotent publish', () => {
      test('a repeated key returns the first outcome marked duplicate, stores and fans out once', async ({ engine, rec }) => {
        const ch = channel()
        await engine.subscribe(ch)
        const first = await engine.publish(ch, 'first', pub(STREAM, { idempotencyKey: 'k1', idempotencyTtlMs: 60_000 }))
        const again = await engine.publish(ch, 'retry', pub(STREAM, { idempotencyKey: 'k1', idempotencyTtlMs: 60_000 }))
        assert.deepEqual(first, { offset: 1, epoch: first.epoch, duplicate: false })
        assert.deepEqual(again, { offset: 1, epoch: first.epoch, duplicate: true })
        const other = await engine.publish(ch, 'second', pub(STREAM, { idempotencyKey: 'k2', idempotencyTtlMs: 60_000 }))
        assert.deepEqual(other, { offset: 2, epoch: first.epoch, duplicate: false })
        await rec.until('publication 2', () => rec.of(ch).some((p) => p.offset === 2))
        assert.deepEqual(
          rec.of(ch).map((p) => [p.offset, p.data]),
          [
            [1, 'first'],
            [2, 'second'],
          ],
        )
        const page = await engine.history(ch, { stream: STREAM, limit: 10 })
        assert.equal(page.offset, 2)
        assert.deepEqual(page.publications, [
          { offset: 1, data: 'first' },
          { offset: 2, data: 'second' },
        ])
      })

      test('a key names a publication to one channel', async ({ engine }) => {
        const a = channel()
        const b = channel()
        await engine.publish(a, 'a1', pub())
        const inA = await engine.publish(a, 'x', pub(STREAM, { idempotencyKey: 'same' }))
        const inB = await engine.publish(b, 'x', pub(STREAM, { idempotencyKey: 'same' }))
        assert.equal(inA.offset, 2)
        assert.equal(inB.offset, 1)
        assert.equal(inB.duplicate, false)
      })

      test('a repeated key is still a duplicate after the stream was removed', async ({ engine }) => {
        const ch = channel()
        const first = await engine.publish(ch, 'x', pub(STREAM, { idempotencyKey: 'k' }))
        await engine.removeHistory(ch)
        const again = await engine.publish(ch, 'x', pub(STREAM, { idempotencyKey: 'k' }))
        assert.deepEqual(again, { ...first, duplicate: true })
        assert.equal((await engine.history(ch, { stream: STREAM, limit: 10 })).offset, 0)
      })

      timedTest('a key is forgotten after idempotencyTtlMs', async ({ engine, advance }) => {
        const ch = channel()
        const opts = pub(STREAM, { idempotencyKey: 'k', idempotencyTtlMs: 1000 })
        const first = await engine.publish(ch, 'x', opts)
        assert.equal(first.offset, 1)
        await advance(999)
        assert.deepEqual(await engine.publish(ch, 'x', opts), { ...first, duplicate: true })
        await advance(1)
        const later = await engine.publish(ch, 'x', opts)
        assert.equal(later.offset, 2)
        assert.equal(later.duplicate, false)
      })
    })

    describe('idempotency claims', () => {
      test('new, then pending, then done with the result; release lets a retry run', async ({ engine }) => {
        const key = `claim:${randomUUID()}`
        assert.deepEqual(await engine.claimIdempotent(key, 60_000), { state: 'new' })
        assert.deepEqual(await engine.claimIdempotent(key, 60_000), { state: 'pending' })
        await engine.completeIdempotent(key, { answer: 42 }, 60_000)
        assert.deepEqual(await engine.claimIdempotent(key, 60_000), { state: 'done', result: { answer: 42 } })
        assert.deepEqual(await engine.claimIdempotent(key, 60_000), { state: 'done', result: { answer: 42 } })
        await engine.releaseIdempotent(key)
        assert.deepEqual(await engine.claimIdempotent(key, 60_000), { state: 'new' })
      })

      test('releasing a pending claim lets the retry run; keys are independent', async ({ engine }) => {
        const a = `claim:${randomUUID()}`
        const b = `claim:${randomUUID()}`
        assert.deepEqual(await engine.claimIdempotent(a, 60_000), { state: 'new' })
        assert.deepEqual(await engine.claimIdempotent(b, 60_000), { state: 'new' })
        await engine.releaseIdempotent(a)
        assert.deepEqual(await engine.claimIdempotent(a, 60_000), { state: 'new' })
        assert.deepEqual(await engine.claimIdempotent(b, 60_000), { state: 'pending' })
        await engine.releaseIdempotent(`claim:${randomUUID()}`)
      })

      timedTest('pending and done claims expire', async ({ engine, advance }) => {
        const pending = `claim:${randomUUID()}`
        const done = `claim:${randomUUID()}`
        await engine.claimIdempotent(pending, 1000)
        await engine.claimIdempotent(done, 1000)
        await engine.completeIdempotent(done, 'r', 2000)
        await advance(999)
        assert.deepEqual(await engine.claimIdempotent(pending, 1000), { state: 'pending' })
        await advance(1)
        // The node running it may have died: after the TTL a retry may run it again.
        assert.deepEqual(await engine.claimIdempotent(pending, 1000), { state: 'new' })
        assert.deepEqual(await engine.claimIdempotent(done, 1000), { state: 'done', result: 'r' })
        await advance(1000)
        assert.deepEqual(await engine.claimIdempotent(done, 1000), { state: 'new' })
      })
    })

    describe('channel occupancy (webhooks)', () => {
      test('only the first node in and the last node out change it', async ({ engine }) => {
        const ch = channel()
        const occupancy = engine.occupancy?.bind(engine)
        assert.ok(occupancy !== undefined, 'every engine of the product tracks occupancy')
        assert.equal(await occupancy(ch, 'n1', true, 60_000), true, 'occupied')
        assert.equal(await occupancy(ch, 'n2', true, 60_000), false)
        assert.equal(await occupancy(ch, 'n1', true, 60_000), false, 'a refresh changes nothing')
        assert.equal(await occupancy(ch, 'n1', false, 60_000), false)
        assert.equal(await occupancy(ch, 'n2', false, 60_000), true, 'vacated')
        assert.equal(await occupancy(ch, 'n2', false, 60_000), false, 'already vacated')
        assert.equal(await occupancy(channel(), 'n1', true, 60_000), true, 'channels are independent')
      })

      timedTest('a node that stops refreshing drops out at its expiry', async ({ engine, advance }) => {
        const ch = channel()
        const occupancy = engine.occupancy?.bind(engine) as NonNullable<typeof engine.occupancy>
        assert.equal(await occupancy(ch, 'crashed', true, 1000), true)
        await advance(1000)
        assert.equal(await occupancy(ch, 'n2', true, 1000), true, 'occupied again: the crashed node no longer counts')
      })
    })

    describe('node registry', () => {
      const node = (id: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
        id,
        connections: 10,
        subscriptions: 20,
        channels: 3,
        startedAt: 1_700_000_000_000,
        updatedAt: 1_700_000_001_000,
        ...extra,
      })
      const byId = (nodes: NodeInfo[]): NodeInfo[] => [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

      test('lists registered nodes with their stats; a registration replaces the last; unregister removes', async ({ engine }) => {
        assert.deepEqual(await engine.nodes(), [])
        const a = node(`node-a-${randomUUID()}`)
        const b = node(`node-b-${randomUUID()}`, { connections: 0, subscriptions: 0, channels: 0 })
        await engine.registerNode(a, 60_000)
        await engine.registerNode(b, 60_000)
        assert.deepEqual(byId(await engine.nodes()), byId([a, b]))

        const a2 = { ...a, connections: 11, updatedAt: a.updatedAt + 20_000 }
        await engine.registerNode(a2, 60_000)
        assert.deepEqual(byId(await engine.nodes()), byId([a2, b]), 'one entry per node id, the latest')

        await engine.unregisterNode(a.id)
        assert.deepEqual(await engine.nodes(), [b])
        await engine.unregisterNode(`never-registered-${randomUUID()}`)
        assert.deepEqual(await engine.nodes(), [b])
        await engine.unregisterNode(b.id)
        assert.deepEqual(await engine.nodes(), [])
      })

      test('the registry keeps what was registered, not the caller’s objects', async ({ engine }) => {
        const a = node(`node-${randomUUID()}`)
        await engine.registerNode(a, 60_000)
        const registered = { ...a }
        a.connections = 999
        const [listed] = await engine.nodes()
        assert.deepEqual(listed, registered)
        assert.ok(listed !== undefined)
        listed.connections = 555
        assert.deepEqual(await engine.nodes(), [registered])
      })

      timedTest('a registration expires after its ttl unless renewed', async ({ engine, advance }) => {
        const a = node(`node-a-${randomUUID()}`)
        const b = node(`node-b-${randomUUID()}`)
        await engine.registerNode(a, 1000)
        await engine.registerNode(b, 1000)
        await advance(600)
        await engine.registerNode(b, 1000)
        await advance(399)
        assert.deepEqual(byId(await engine.nodes()), byId([a, b]))
        await advance(1)
        assert.deepEqual(await engine.nodes(), [b], 'a stopped renewing: gone once its ttl passed')
        await advance(599)
        assert.deepEqual(await engine.nodes(), [b])
        await advance(1)
        assert.deepEqual(await engine.nodes(), [])
        // A node that comes back is listed again.
        await engine.registerNode(a, 1000)
        assert.deepEqual(await engine.nodes(), [a])
      })
    })

    describe('presence', () => {
      test('add, refresh, remove and stats', async ({ engine }) => {
        const ch = channel()
        const c1: ClientInfo = { client: 'c1', user: 'alice' }
        const c2: ClientInfo = { client: 'c2', user: 'alice', info: { device: 'phone' } }
        const c3: ClientInfo = { client: 'c3', user: 'bob' }
        for (const c of [c1, c2, c3]) await engine.addPresence(ch, c, 60_000)
        assert.deepEqual(await engine.presence(ch), { c1, c2, c3 })
        assert.deepEqual(await engine.presenceStats(ch), { clients: 3, users: 2 })

        const c1b: ClientInfo = { client: 'c1', user: 'alice', info: { status: 'away' } }
        await engine.addPresence(ch, c1b, 60_000)
        assert.deepEqual(await engine.presence(ch), { c1: c1b, c2, c3 })
        assert.deepEqual(await engine.presenceStats(ch), { clients: 3, users: 2 })

        await engine.removePresence(ch, 'c2')
        await engine.removePresence(ch, 'unknown')
        assert.deepEqual(await engine.presence(ch), { c1: c1b, c3 })
        assert.deepEqual(await engine.presenceStats(ch), { clients: 2, users: 2 })
        await engine.removePresence(ch, 'c3')
        assert.deepEqual(await engine.presenceStats(ch), { clients: 1, users: 1 })

        const empty = channel()
        assert.deepEqual(await engine.presence(empty), {})
        assert.deepEqual(await engine.presenceStats(empty), { clients: 0, users: 0 })
        await engine.removePresence(empty, 'c1')
      })

      timedTest('entries expire unless refreshed', async ({ engine, advance }) => {
        const ch = channel()
        const c1: ClientInfo = { client: 'c1', user: 'alice' }
        const c2: ClientInfo = { client: 'c2', user: 'bob' }
        await engine.addPresence(ch, c1, 1000)
        await engine.addPresence(ch, c2, 1000)
        await advance(600)
        await engine.addPresence(ch, c2, 1000)
        await advance(399)
        assert.deepEqual(await engine.presence(ch), { c1, c2 })
        await advance(1)
        assert.deepEqual(await engine.presence(ch), { c2 })
        assert.deepEqual(await engine.presenceStats(ch), { clients: 1, users: 1 })
        await advance(599)
        assert.deepEqual(await engine.presence(ch), { c2 })
        await advance(1)
        assert.deepEqual(await engine.presence(ch), {})
        assert.deepEqual(await engine.presenceStats(ch), { clients: 0, users: 0 })
        // An expired client that comes back is present again.
        await engine.addPresence(ch, c1, 1000)
        assert.deepEqual(await engine.presence(ch), { c1 })
      })
    })
  })
}
