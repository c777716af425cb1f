// After an engine outage, the live feed may have missed publications that were stored meanwhile
// (another node published them). When the engine reports ready again, the hub compares each
// channel's stream top with what it delivered: every subscriber of a channel that moved (or changed
// epoch) is sent to recovery with insufficient_state; channels that did not move are left alone.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FeedControlEngine } from './feed-control-engine.js'
import { expectClosedWith, type TestServer } from './helpers.js'
import { GAP, hubFixture, offsetsOf, type SubResult } from './hub-fixture.js'

describe('hub: resync after an engine outage', () => {
  const { start, connected, subscriber } = hubFixture()

  /** Resolves once the resync read the top of each of `channels` (limit 0, no `since`) after `from` reads. */
  function resynced(engine: FeedControlEngine, from: number, channels: string[]): Promise<void> {
    return engine.until(`the resync of ${channels.join(', ')}`, () => {
      const after = engine.reads.slice(from)
      return channels.every((ch) => after.some((r) => r.channel === ch && !r.since))
    })
  }

  async function recoverFrom(srv: TestServer, channel: string, epoch: string, offset: number): Promise<SubResult> {
    const { c } = await connected(srv)
    return c.call<SubResult>({ type: 'subscribe', channel, recover: { epoch, offset } })
  }

  it('sends every subscriber of a channel that moved to recovery, leaves the others alone, and each recovers exactly', async () => {
    const { srv, engine } = await start()
    const a1 = await subscriber(srv, 'moved-a')
    const a2 = await subscriber(srv, 'moved-a')
    const b = await subscriber(srv, 'moved-b')
    const still = await subscriber(srv, 'still')
    for (const ch of ['moved-a', 'moved-b', 'still']) await srv.gw.publish(ch, `${ch} 1`)
    await still.c.until(() => still.c.pubs('still').length === 1, 5000, 'publication 1')

    engine.outage()
    // Published (and stored) while this node's feed was down: it never sees them live.
    await srv.gw.publish('moved-a', 'moved-a 2')
    await srv.gw.publish('moved-a', 'moved-a 3')
    await srv.gw.publish('moved-b', 'moved-b 2')
    const reads = engine.reads.length
    engine.restore()
    await Promise.all([a1, a2, b].map(({ c }) => expectClosedWith(c, GAP)))
    await resynced(engine, reads, ['moved-a', 'moved-b', 'still'])
    assert.equal(srv.gw.counters.get('insufficient_state'), 3)

    // The channel that did not move keeps its subscriber, live.
    await srv.gw.publish('still', 'still 2')
    await still.c.until(() => still.c.pubs('still').length === 2, 5000, 'publication 2')
    assert.equal(still.c.closed, undefined)
    assert.deepEqual(offsetsOf(still.c, 'still'), [1, 2])

    const ra = await recoverFrom(srv, 'moved-a', a1.sub.epoch, 1)
    assert.equal(ra.recovered, true)
    assert.deepEqual(ra.publications, [
      { offset: 2, data: 'moved-a 2' },
      { offset: 3, data: 'moved-a 3' },
    ])
    const rb = await recoverFrom(srv, 'moved-b', b.sub.epoch, 1)
    assert.equal(rb.recovered, true)
    assert.deepEqual(rb.publications, [{ offset: 2, data: 'moved-b 2' }])
  })

  it('a stream lost during the outage (a new epoch, at a lower offset) sends its subscribers to recovery: recovered:false', async () => {
    const { srv, engine } = await start()
    const s = await subscriber(srv, 'lost')
    await srv.gw.publish('lost', 1)
    await srv.gw.publish('lost', 2)
    await s.c.until(() => s.c.pubs('lost').length === 2, 5000, 'two publications')
    engine.outage()
    await engine.removeHistory('lost')
    const fresh = await srv.gw.publish('lost', 'after the restart')
    assert.equal(fresh.offset, 1)
    engine.restore()
    await expectClosedWith(s.c, GAP)
    const r = await recoverFrom(srv, 'lost', s.sub.epoch, 2)
    assert.equal(r.recovered, false)
    assert.equal(r.epoch, fresh.epoch)
    assert.equal(r.offset, 1)
  })

  it('a lost stream that moved back (a new epoch at offset 0) is a change too', async () => {
    const { srv, engine } = await start()
    await srv.gw.publish('lost', 'seen')
    const s = await subscriber(srv, 'lost')
    engine.outage()
    await engine.removeHistory('lost')
    engine.restore()
    await expectClosedWith(s.c, GAP)
  })

  it('a stream nobody has published to is no change whatever its epoch: its subscribers at offset 0 lost nothing', async () => {
    const { srv, engine } = await start()
    const s = await subscriber(srv, 'empty')
    const moved = await subscriber(srv, 'moved')
    engine.outage()
    await engine.removeHistory('empty')
    await srv.gw.publish('moved', 'missed')
    engine.restore()
    await expectClosedWith(moved.c, GAP)
    assert.equal(s.c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 1)
  })

  it('when the engine says ready but still fails the reads, nothing is closed; the next ready resyncs', async () => {
    const { srv, engine } = await start()
    const s = await subscriber(srv, 'moved')
    const still = await subscriber(srv, 'still')
    engine.outage()
    await srv.gw.publish('moved', 'missed')
    engine.failHistory()
    engine.restore()
    // The failed read ends this resync; a rejection would surface as an unhandled one and fail the file.
    await engine.until('the failed read', () => engine.failedReads === 1)
    await srv.gw.publish('still', 'x')
    await still.c.until(() => still.c.pubs('still').length === 1, 5000, 'the live publication')
    assert.equal(s.c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 0)

    engine.outage()
    engine.restore()
    await expectClosedWith(s.c, GAP)
    assert.equal(still.c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 1)
  })

  it('a channel whose subscribers are all still reading history is not read', async () => {
    const { srv, engine } = await start()
    const s = await subscriber(srv, 'kept')
    const left = await subscriber(srv, 'reading')
    const release = engine.holdHistory('reading', 'page-then-wait')
    const { c: reader } = await connected(srv)
    const pending = reader.call<SubResult>({ type: 'subscribe', channel: 'reading' })
    await engine.until('the held read', () => engine.held === 1)
    // Its only live subscriber leaves: the channel is kept for the one reading, with no one live.
    await left.c.call({ type: 'unsubscribe', channel: 'reading' })
    const reads = engine.reads.length
    engine.outage()
    engine.restore()
    await resynced(engine, reads, ['kept'])
    release()
    await pending
    assert.deepEqual(
      engine.reads.slice(reads).map((r) => r.channel),
      ['kept', 'reading'],
      'only the channel with a live subscriber is resynced (the held read completes last)',
    )
    assert.equal(s.c.closed, undefined)
  })
})
