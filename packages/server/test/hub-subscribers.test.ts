// A channel's live subscribers on one node: the hub keeps one connection until a second joins,
// then a set. Whatever the count, each publication reaches exactly the connections subscribed when
// it was published, and a channel whose last subscriber left is forgotten and starts anew.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { waitFor } from './helpers.js'
import { hubFixture, offsetsOf } from './hub-fixture.js'

describe('hub: subscribers coming and going', () => {
  const { start, subscriber } = hubFixture()

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
})
