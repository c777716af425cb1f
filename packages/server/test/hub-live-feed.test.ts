// The hub's live feed: what the engine feeds a node is passed on to its subscribers only when it
// continues their stream. A publication that skips an offset or comes from another epoch means
// something was missed: the subscriber is closed with insufficient_state (4004) and recovers on
// reconnect, so a gap is never passed on silently.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { expectClosedWith, type RawClient } from './helpers.js'
import { GAP, hubFixture, offsetsOf, type SubResult } from './hub-fixture.js'

describe('hub: the live feed', () => {
  const { start, connected, subscriber } = hubFixture()

  it('a publication lost on the way closes the subscriber with insufficient_state; it then recovers exactly what it missed', async () => {
    const { srv, engine } = await start()
    const { c, sub } = await subscriber(srv, 'feed')
    const other = await subscriber(srv, 'elsewhere')
    await srv.gw.publish('feed', 'one')
    await c.until(() => c.pubs('feed').length === 1, 5000, 'publication 1')
    engine.loseFeed('feed')
    await srv.gw.publish('feed', 'two') // stored, never fed to this node
    await srv.gw.publish('feed', 'three')
    await expectClosedWith(c, GAP)
    assert.deepEqual(offsetsOf(c, 'feed'), [1], 'the publication after the gap is not passed on')
    assert.equal(srv.gw.counters.get('insufficient_state'), 1)

    const { c: back } = await connected(srv)
    const r = await back.call<SubResult>({ type: 'subscribe', channel: 'feed', recover: { epoch: sub.epoch, offset: 1 } })
    assert.equal(r.recovered, true)
    assert.deepEqual(r.publications, [
      { offset: 2, data: 'two' },
      { offset: 3, data: 'three' },
    ])
    await srv.gw.publish('feed', 'four')
    await back.until(() => back.pubs('feed').length === 1, 5000, 'publication 4')
    assert.deepEqual(offsetsOf(back, 'feed'), [4])
    assert.equal(back.closed, undefined)
    // A subscriber of another channel saw nothing of it.
    await srv.gw.publish('elsewhere', 'x')
    await other.c.until(() => other.c.pubs('elsewhere').length === 1, 5000, 'the other channel')
    assert.equal(other.c.closed, undefined)
  })

  it('an epoch change on the live feed closes the subscriber; its recovery says recovered:false at the new position', async () => {
    const { srv, engine } = await start()
    const { c, sub } = await subscriber(srv, 'feed')
    await srv.gw.publish('feed', 1)
    await srv.gw.publish('feed', 2)
    await c.until(() => c.pubs('feed').length === 2, 5000, 'two publications')
    // The stream is lost (a backend restarted without persistence): the next publish starts a new epoch at offset 1.
    await engine.removeHistory('feed')
    const fresh = await srv.gw.publish('feed', 'new')
    assert.notEqual(fresh.epoch, sub.epoch)
    await expectClosedWith(c, GAP)
    assert.deepEqual(offsetsOf(c, 'feed'), [1, 2], 'nothing of the new epoch is passed on as if it continued the old')

    const { c: back } = await connected(srv)
    const r = await back.call<SubResult>({ type: 'subscribe', channel: 'feed', recover: { epoch: sub.epoch, offset: 2 } })
    assert.equal(r.recovered, false)
    assert.equal(r.wasRecovering, true)
    assert.equal(r.epoch, fresh.epoch)
    assert.equal(r.offset, 1)
  })

  it('an epoch change is caught even when the new stream\'s offset follows on from the old one', async () => {
    const { srv, engine } = await start()
    await srv.gw.publish('feed', 'old')
    const { c, sub } = await subscriber(srv, 'feed')
    assert.equal(sub.offset, 1)
    await engine.removeHistory('feed')
    // The new stream's offset 1 is lost on the way; its offset 2 is the old stream's next offset.
    engine.loseFeed('feed')
    await srv.gw.publish('feed', 'new 1')
    const fresh = await srv.gw.publish('feed', 'new 2')
    assert.equal(fresh.offset, 2)
    assert.notEqual(fresh.epoch, sub.epoch)
    await expectClosedWith(c, GAP)
    assert.deepEqual(offsetsOf(c, 'feed'), [])
  })

  it('at offset 0 (nothing delivered yet) offset 1 of another epoch is simply the next publication', async () => {
    const { srv, engine } = await start()
    const { c, sub } = await subscriber(srv, 'feed')
    assert.equal(sub.offset, 0)
    // Forgetting another stream early moves the engine's derived epochs on: `feed` starts in another.
    await srv.gw.publish('other', 'x')
    await engine.removeHistory('other')
    const fresh = await srv.gw.publish('feed', 'new')
    assert.deepEqual([fresh.offset, fresh.epoch === sub.epoch], [1, false])
    await c.until(() => c.pubs('feed').length === 1, 5000, 'the first publication')
    assert.deepEqual(offsetsOf(c, 'feed'), [1])
    assert.equal(c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 0)
  })

  it('the first live publication after a subscribe is checked against the subscribe position', async () => {
    const { srv, engine } = await start()
    for (let i = 1; i <= 3; i++) await srv.gw.publish('feed', i)
    const { c, sub } = await subscriber(srv, 'feed')
    assert.equal(sub.offset, 3)
    engine.loseFeed('feed')
    await srv.gw.publish('feed', 4)
    await srv.gw.publish('feed', 5)
    await expectClosedWith(c, GAP)
    assert.deepEqual(offsetsOf(c, 'feed'), [])
  })

  it('on a channel with history, live publications continue from the subscribe position', async () => {
    const { srv } = await start()
    for (let i = 1; i <= 3; i++) await srv.gw.publish('feed', i)
    const { c } = await subscriber(srv, 'feed')
    for (let i = 4; i <= 6; i++) await srv.gw.publish('feed', i)
    await c.until(() => c.pubs('feed').length === 3, 5000, 'three live publications')
    assert.deepEqual(offsetsOf(c, 'feed'), [4, 5, 6])
    assert.equal(c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 0)
  })

  it('a repeat from the feed is dropped: delivered once, and no recovery', async () => {
    const { srv, engine } = await start()
    const { c, sub } = await subscriber(srv, 'feed')
    await srv.gw.publish('feed', 'a')
    await srv.gw.publish('feed', 'b')
    await c.until(() => c.pubs('feed').length === 2, 5000, 'two publications')
    // A backend may deliver a message twice (a resubscribe replays it): the same offset, or an older one.
    engine.feed('feed', { epoch: sub.epoch, offset: 2, data: 'b' })
    engine.feed('feed', { epoch: sub.epoch, offset: 1, data: 'a' })
    await srv.gw.publish('feed', 'c')
    await c.until(() => c.pubs('feed').length >= 3, 5000, 'publication 3')
    assert.deepEqual(offsetsOf(c, 'feed'), [1, 2, 3])
    assert.equal(c.closed, undefined)
  })

  it('a publication fed after the last subscriber left is ignored; the next subscriber starts from the stream', async () => {
    const { srv, engine } = await start()
    const { c, sub } = await subscriber(srv, 'feed')
    await c.call({ type: 'unsubscribe', channel: 'feed' })
    assert.equal(srv.gw.hub.size, 0)
    assert.deepEqual(engine.unsubscribes, ['feed'], 'the engine stops feeding the node')
    // In flight when the node unsubscribed (a pub/sub message crossing the UNSUBSCRIBE).
    engine.feed('feed', { epoch: sub.epoch, offset: 7, data: 'late' })
    assert.equal(srv.gw.hub.size, 0)
    const next = await subscriber(srv, 'feed')
    assert.equal(next.sub.offset, 0)
    await srv.gw.publish('feed', 'x')
    await next.c.until(() => next.c.pubs('feed').length === 1, 5000, 'publication 1')
    assert.deepEqual(offsetsOf(next.c, 'feed'), [1])
  })

  it('a fresh subscribe reads only the stream position, not the history it will not send', async () => {
    const { srv, engine } = await start()
    for (let i = 1; i <= 5; i++) await srv.gw.publish('feed', i)
    await subscriber(srv, 'feed')
    assert.deepEqual(engine.reads, [{ channel: 'feed', since: false, limit: 0 }])
  })

  it('a join or leave fed for a channel with no subscriber here is ignored', async () => {
    const { srv, engine } = await start({ channels: { default: { presence: true, joinLeave: true } } })
    const { c } = await subscriber(srv, 'room')
    engine.feedJoinLeave('nobody-here', 'join', { client: 'x', user: 'u' })
    engine.feedJoinLeave('nobody-here', 'leave', { client: 'x', user: 'u' })
    await srv.gw.publish('room', 1)
    await c.until(() => c.pubs('room').length === 1, 5000, 'the publication')
    assert.deepEqual(
      c.pushes.filter((p) => (p.type === 'join' || p.type === 'leave') && p.info.client === 'x'),
      [],
    )
  })

  it('when one subscriber leaves, the others keep receiving; the last one out drops the channel', async () => {
    const { srv, engine } = await start()
    const a = await subscriber(srv, 'feed')
    const b = await subscriber(srv, 'feed')
    assert.deepEqual(engine.subscribes, ['feed'], 'one engine subscription per channel and node')
    await a.c.call({ type: 'unsubscribe', channel: 'feed' })
    assert.equal(srv.gw.hub.subscriberCount('feed'), 1)
    await srv.gw.publish('feed', 1)
    await b.c.until(() => b.c.pubs('feed').length === 1, 5000, 'publication 1')
    assert.deepEqual(offsetsOf(a.c, 'feed'), [])
    assert.deepEqual(engine.unsubscribes, [])
    b.c.close()
    await engine.until('the engine unsubscribed', () => engine.unsubscribes.length === 1)
    assert.equal(srv.gw.hub.size, 0)
    assert.deepEqual(srv.gw.channels(), [])
  })

  it('a failed engine unsubscribe is not an error for anyone; the channel can be subscribed again', async () => {
    const { srv, engine } = await start()
    const a = await subscriber(srv, 'feed')
    engine.failUnsubscribe()
    await a.c.call({ type: 'unsubscribe', channel: 'feed' })
    await engine.until('the unsubscribe attempt', () => engine.unsubscribes.length === 1)
    const b = await subscriber(srv, 'feed')
    await srv.gw.publish('feed', 1)
    await b.c.until(() => b.c.pubs('feed').length === 1, 5000, 'publication 1')
    assert.equal(a.c.closed, undefined)
  })

  it('fans out to JSON and MessagePack subscribers alike, with the publisher info when a client published', async () => {
    const { srv } = await start({ channels: { default: { presence: true, joinLeave: true } } })
    const json = await subscriber(srv, 'room')
    const pack = await subscriber(srv, 'room', { protocol: 'msgpack' })
    const json2 = await subscriber(srv, 'room')
    await srv.gw.publish('room', { from: 'server' })
    const { c: publisher, id: publisherId } = await connected(srv, { protocol: 'msgpack' })
    await publisher.call({ type: 'publish', channel: 'room', data: { from: 'client' }, msgId: 'm1' })
    for (const c of [json.c, pack.c, json2.c]) {
      await c.until(() => c.pubs('room').length === 2, 5000, 'two publications')
      const [fromServer, fromClient] = c.pubs('room')
      assert.deepEqual(fromServer, { type: 'pub', channel: 'room', epoch: json.sub.epoch, offset: 1, data: { from: 'server' } })
      assert.equal(fromClient?.offset, 2)
      assert.deepEqual(fromClient?.data, { from: 'client' })
      assert.equal(fromClient?.info?.client, publisherId)
    }
    // Join and leave reach every live subscriber in its own encoding.
    const late = await subscriber(srv, 'room', { protocol: 'msgpack' })
    const seen = (c: RawClient, type: 'join' | 'leave'): unknown => c.pushes.find((p) => p.type === type && p.info.client === late.id)
    for (const c of [json.c, pack.c, json2.c]) await c.until(() => seen(c, 'join') !== undefined, 5000, 'the join')
    const join = { type: 'join', channel: 'room', info: { client: late.id, user: '' } }
    for (const c of [json.c, pack.c, json2.c]) assert.deepEqual(seen(c, 'join'), join)
    late.c.close()
    for (const c of [json.c, pack.c, json2.c]) await c.until(() => seen(c, 'leave') !== undefined, 5000, 'the leave')
    for (const c of [json.c, pack.c, json2.c]) assert.deepEqual(seen(c, 'leave'), { ...join, type: 'leave' })
  })
})
