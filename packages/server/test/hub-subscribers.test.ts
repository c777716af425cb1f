// A channel's live subscribers on one node: the hub keeps one connection until a second joins,
// then a set. Whatever the count, each publication reaches exactly the connections subscribed when
// it was published, and a channel whose last subscriber left is forgotten and starts anew.
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { TestBackend } from './backend-helpers.js'
import { waitFor } from './helpers.js'
import { hubFixture, offsetsOf } from './hub-fixture.js'

describe('hub: subscribers coming and going', () => {
  const { start, connected, subscriber } = hubFixture()

  it('one, two, one, none, one again: every publication reaches the subscribers of its moment, once', async () => {
    const { srv } = await start()
    const a = await subscriber(srv, 'room')
    await srv.gw.publish('room', 1)
    await a.c.until(() => a.c.pubs('room').length === 1, 5000, 'a: publication 1')

    const b = await subscriber(srv, 'room')
    assert.equal(srv.gw.hub.subscriberCount('room'), 2)
    await srv.gw.publish('room', 2)
    await a.c.until(() => a.c.pubs('room').length === 2, 5000, 'a: publication 2')
    await b.c.until(() => b.c.pubs('room').length === 1, 5000, 'b: publication 2')

    await a.c.call({ type: 'unsubscribe', channel: 'room' })
    assert.equal(srv.gw.hub.subscriberCount('room'), 1)
    await srv.gw.publish('room', 3)
    await b.c.until(() => b.c.pubs('room').length === 2, 5000, 'b: publication 3')

    await b.c.call({ type: 'unsubscribe', channel: 'room' })
    assert.equal(srv.gw.hub.subscriberCount('room'), 0)
    assert.equal(srv.gw.hub.channels.has('room'), false, 'a channel without subscribers is forgotten')
    await srv.gw.publish('room', 4)

    const c = await subscriber(srv, 'room')
    assert.equal(c.sub.offset, 4, 'the stream went on while nobody here listened')
    await srv.gw.publish('room', 5)
    await c.c.until(() => c.c.pubs('room').length === 1, 5000, 'c: publication 5')
    // A round trip on each connection: anything still on its way would have arrived by now.
    for (const x of [a, b, c]) await x.c.call({ type: 'ping' })
    assert.deepEqual(offsetsOf(a.c, 'room'), [1, 2])
    assert.deepEqual(offsetsOf(b.c, 'room'), [2, 3])
    assert.deepEqual(offsetsOf(c.c, 'room'), [5])
  })

  it('the first subscriber leaving keeps the second live; the last one closing forgets the channel', async () => {
    const { srv } = await start()
    const a = await subscriber(srv, 'room')
    const b = await subscriber(srv, 'room', { protocol: 'msgpack' })
    a.c.close()
    await waitFor(() => srv.gw.hub.subscriberCount('room') === 1, 5000, 'a gone')
    await srv.gw.publish('room', 'after a left')
    await b.c.until(() => b.c.pubs('room').length === 1, 5000, 'b: the publication')
    assert.equal(b.c.pubs('room')[0]?.data, 'after a left')
    b.c.close()
    await waitFor(() => !srv.gw.hub.channels.has('room'), 5000, 'the channel forgotten')
  })

  it('one connection on many channels of its own: each gets its own publications and no other', async () => {
    const { srv } = await start()
    const subs = await Promise.all(Array.from({ length: 5 }, (_, i) => subscriber(srv, `own-${i}`)))
    for (let i = 0; i < 5; i++) await srv.gw.publish(`own-${i}`, i)
    for (const [i, s] of subs.entries()) {
      await s.c.until(() => s.c.pubs(`own-${i}`).length === 1, 5000, `own-${i}`)
      await s.c.call({ type: 'ping' })
      assert.deepEqual(
        s.c.pubs().map((p) => [p.channel, p.data]),
        [[`own-${i}`, i]],
      )
    }
  })

  it("joins and leaves from the feed reach a channel's only subscriber and every one of several", async () => {
    const { srv, engine } = await start({ channels: { default: { presence: true, joinLeave: true } } })
    const a = await subscriber(srv, 'alone')
    const b1 = await subscriber(srv, 'crowd')
    const b2 = await subscriber(srv, 'crowd', { protocol: 'msgpack' })
    engine.feedJoinLeave('alone', 'join', { client: 'x', user: 'u' })
    engine.feedJoinLeave('crowd', 'leave', { client: 'y', user: 'v' })
    const fromFeed = (c: typeof a.c, client: string) => c.pushes.filter((p) => (p.type === 'join' || p.type === 'leave') && p.info.client === client).map((p) => `${p.type} ${(p as { channel: string }).channel}`)
    await a.c.until(() => fromFeed(a.c, 'x').length === 1, 5000, 'the join')
    for (const c of [b1.c, b2.c]) await c.until(() => fromFeed(c, 'y').length === 1, 5000, 'the leave')
    assert.deepEqual(fromFeed(a.c, 'x'), ['join alone'])
    assert.deepEqual(fromFeed(b1.c, 'y'), ['leave crowd'])
    assert.deepEqual(fromFeed(b2.c, 'y'), ['leave crowd'])
  })

  it('a recovery of exactly maxRecoverPublications is replayed; one more missed is refused whole', async () => {
    const { srv } = await start({ channels: { default: { maxRecoverPublications: 3 } } })
    for (let i = 1; i <= 5; i++) await srv.gw.publish('feed', i)
    const first = await subscriber(srv, 'feed')
    assert.equal(first.sub.offset, 5)
    for (let i = 6; i <= 8; i++) await srv.gw.publish('feed', i)
    const at = (offset: number) => ({ type: 'subscribe' as const, channel: 'feed', recover: { epoch: first.sub.epoch, offset } })
    const three = await (await connected(srv)).c.call<{ recovered: boolean; publications: Array<{ offset: number }> }>(at(5))
    assert.equal(three.recovered, true)
    assert.deepEqual(
      three.publications.map((p) => p.offset),
      [6, 7, 8],
    )
    const four = await (await connected(srv)).c.call<{ recovered: boolean; offset: number; publications: unknown[] }>(at(4))
    assert.equal(four.recovered, false)
    assert.equal(four.offset, 8)
    assert.deepEqual(four.publications, [])
  })

  describe('members as the app hears of them (webhooks)', () => {
    const receiver = new TestBackend()
    afterEach(() => receiver.stop())
    const SECRET = 'webhook-secret-0123456789'

    async function withWebhooks(): ReturnType<typeof start> {
      await receiver.start()
      receiver.handlers['/hooks'] = () => ({})
      return start({ webhooks: { url: `${receiver.url}/hooks`, secret: SECRET } })
    }
    /** The webhooks about `channel` received so far, as `event client` (or `event` for the channel's own). */
    const channelEvents = (channel: string): string[] =>
      receiver
        .callsTo('/hooks')
        .filter((h) => (h.body['data'] as { channel?: string }).channel === channel)
        .map((h) => {
          const data = h.body['data'] as { client?: string }
          return data.client === undefined ? String(h.body['event']) : `${String(h.body['event'])} ${data.client}`
        })

    it('each subscriber of a shared channel joins and leaves once; the channel is vacated after the last', async () => {
      const { srv } = await withWebhooks()
      const a = await subscriber(srv, 'shared')
      const b = await subscriber(srv, 'shared')
      const c = await subscriber(srv, 'shared')
      await b.c.call({ type: 'unsubscribe', channel: 'shared' })
      await a.c.call({ type: 'unsubscribe', channel: 'shared' })
      await waitFor(() => channelEvents('shared').length === 6, 5000, 'occupied, three joins, two leaves')
      c.c.close()
      await waitFor(() => channelEvents('shared').length === 8, 5000, "c's leave and the channel vacated")
      // Deliveries may overtake each other: compared as sets of events.
      assert.deepEqual(channelEvents('shared').sort(), ['channel_occupied', `join ${a.id}`, `join ${b.id}`, `join ${c.id}`, `leave ${b.id}`, `leave ${a.id}`, `leave ${c.id}`, 'channel_vacated'].sort())
    })

    it('a subscribe that ends before it went live (its history read still running) is neither a join nor a leave', async () => {
      const { srv, engine } = await withWebhooks()
      const a = await subscriber(srv, 'held')
      const { c } = await connected(srv)
      const release = engine.holdHistory('held', 'wait-then-page')
      const held = engine.held
      c.request({ type: 'subscribe', channel: 'held' }, 60_000).catch(() => {}) // never answered: the client leaves first
      await engine.until('the held history read', () => engine.held === held + 1)
      c.close()
      await waitFor(() => srv.gw.hub.subscriberCount('held') === 1, 5000, 'the closed subscriber gone')
      release()
      await a.c.call({ type: 'unsubscribe', channel: 'held' })
      await waitFor(() => channelEvents('held').includes('channel_vacated'), 5000, 'the channel vacated')
      assert.deepEqual(channelEvents('held').sort(), ['channel_occupied', 'channel_vacated', `join ${a.id}`, `leave ${a.id}`].sort())
    })
  })
})
