// The subscribe race: a subscriber joins the live feed before it reads history, and publications
// that arrive during the read are held and merged after the reply, once and in order. What goes
// wrong during the read — a lost publication, an epoch change, too many publications, the
// connection leaving or the engine failing — sends the subscriber to recovery or to an error
// reply, never into the live set with a gap.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FeedControlEngine, HoldMode } from './feed-control-engine.js'
import { expectClosedWith, turn, waitFor, type RawClient, type TestServer } from './helpers.js'
import { GAP, hubFixture, offsetsOf, type SubResult } from './hub-fixture.js'

/** The hub's bound on publications held for one subscriber during its history read (docs/reliability.md). */
const MAX_RECOVERY_BUFFER = 10_000

describe('hub: the subscribe race', () => {
  const { start, connected, subscriber: subscribed } = hubFixture()

  async function subscriber(srv: TestServer, channel: string): Promise<RawClient> {
    return (await subscribed(srv, channel)).c
  }

  /** Start a subscribe whose history read is held; resolves once the read is waiting. */
  async function heldSubscribe(
    srv: TestServer,
    engine: FeedControlEngine,
    channel: string,
    mode: HoldMode,
    recover?: { epoch: string; offset: number },
  ): Promise<{ c: RawClient; id: string; release: () => void; reply: Promise<unknown> }> {
    const { c, id } = await connected(srv)
    const release = engine.holdHistory(channel, mode)
    const held = engine.held
    const reply = c.request({ type: 'subscribe', channel, ...(recover === undefined ? {} : { recover }) }, 60_000)
    // A reply that never comes is asserted by the test; do not let it fail the file meanwhile.
    reply.catch(() => {})
    await engine.until('the held history read', () => engine.held === held + 1)
    return { c, id, release, reply }
  }

  it('publications that arrive during the read are delivered after the reply, once, in order', async () => {
    const { srv, engine } = await start()
    for (let i = 1; i <= 3; i++) await srv.gw.publish('race', i)
    const live = await subscriber(srv, 'race')
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    for (let i = 4; i <= 6; i++) await srv.gw.publish('race', i)
    await live.until(() => live.pubs('race').length === 3, 5000, 'the live subscriber')
    assert.deepEqual(offsetsOf(s.c, 'race'), [], 'nothing before the reply')
    s.release()
    const reply = (await s.reply) as { result: SubResult }
    assert.equal(reply.result.offset, 3)
    await s.c.until(() => s.c.pubs('race').length === 3, 5000, 'the held publications')
    assert.deepEqual(offsetsOf(s.c, 'race'), [4, 5, 6])
    await srv.gw.publish('race', 7)
    await s.c.until(() => s.c.pubs('race').length === 4, 5000, 'publication 7')
    assert.deepEqual(offsetsOf(s.c, 'race'), [4, 5, 6, 7])
    assert.equal(srv.gw.counters.get('insufficient_state'), 0)
    // The node's position moved with the feed, not back to the (older) page: no false gap for anyone.
    await live.until(() => live.pubs('race').length === 4, 5000, 'publication 7 on the live subscriber')
    assert.equal(live.closed, undefined)
    assert.deepEqual(offsetsOf(live, 'race'), [4, 5, 6, 7])
  })

  it('publications already in the page are not delivered again', async () => {
    const { srv, engine } = await start()
    const first = await srv.gw.publish('race', 1)
    const s = await heldSubscribe(srv, engine, 'race', 'wait-then-page', { epoch: first.epoch, offset: 1 })
    await srv.gw.publish('race', 2)
    await srv.gw.publish('race', 3)
    s.release()
    const reply = (await s.reply) as { result: SubResult }
    assert.equal(reply.result.recovered, true)
    assert.deepEqual(
      reply.result.publications.map((p) => p.offset),
      [2, 3],
    )
    await srv.gw.publish('race', 4)
    await s.c.until(() => s.c.pubs('race').length >= 1, 5000, 'publication 4')
    assert.deepEqual(offsetsOf(s.c, 'race'), [4])
    assert.equal(s.c.closed, undefined)
  })

  it('a publication lost during the read sends the subscriber to recovery after the reply', async () => {
    const subscribed: string[] = []
    const { srv, engine } = await start({ onSubscribe: (info) => void subscribed.push(info.client) })
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    await srv.gw.publish('race', 1)
    engine.loseFeed('race')
    await srv.gw.publish('race', 2)
    await srv.gw.publish('race', 3)
    s.release()
    const reply = (await s.reply) as { result: SubResult }
    assert.equal(reply.result.offset, 0)
    await expectClosedWith(s.c, GAP)
    assert.deepEqual(offsetsOf(s.c, 'race'), [1], 'delivered up to the gap, nothing after it')
    assert.deepEqual(subscribed, [], 'a subscribe that ended in a gap is not reported as a subscription')
    const back = await connected(srv)
    const r = await back.c.call<SubResult>({ type: 'subscribe', channel: 'race', recover: { epoch: reply.result.epoch, offset: 1 } })
    assert.equal(r.recovered, true)
    assert.deepEqual(
      r.publications.map((p) => p.data),
      [2, 3],
    )
  })

  it('a subscriber sent to recovery during its read, whose channel empties before its socket closes, is cleaned up without error', async () => {
    const { srv, engine } = await start({ maxQueueBytes: 64 * 1024 * 1024, authenticate: ({ token }) => ({ user: token ?? 'anon' }) })
    const { c: bob } = await connected(srv, { token: 'bob' })
    await bob.call({ type: 'subscribe', channel: 'race' })
    const { c: alice } = await connected(srv, { token: 'alice' })
    const release = engine.holdHistory('race', 'page-then-wait')
    alice.request({ type: 'subscribe', channel: 'race' }, 60_000).catch(() => {})
    await engine.until('the held read', () => engine.held === 1)
    for (let i = 1; i <= MAX_RECOVERY_BUFFER + 1; i++) {
      await srv.gw.publish('race', i)
      if (i % 1000 === 0) await turn()
    }
    // Alice overflowed the buffer with the last publish and is being closed. Bob leaves before her
    // close handshake is over: the channel is dropped before her connection is cleaned up.
    await srv.gw.unsubscribeUser('bob', 'race')
    assert.equal(srv.gw.hub.size, 0)
    await expectClosedWith(alice, GAP)
    await waitFor(() => [...srv.gw.connections].every((x) => x.user !== 'alice'), 5000, 'alice cleaned up')
    release()
    await engine.until('the held read done', () => engine.held === 0)
    await bob.call({ type: 'subscribe', channel: 'race' })
    await srv.gw.publish('race', 'after')
    await bob.until(() => bob.pubs('race').some((p) => p.data === 'after'), 5000, 'the next publication')
    assert.equal(bob.closed, undefined)
  })

  it('an epoch change during the read sends the subscriber to recovery', async () => {
    const { srv, engine } = await start()
    await srv.gw.publish('race', 1)
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    await engine.removeHistory('race')
    await srv.gw.publish('race', 'new epoch, offset 1')
    s.release()
    await s.reply
    await expectClosedWith(s.c, GAP)
    assert.deepEqual(offsetsOf(s.c, 'race'), [])
  })

  it(`holds up to ${MAX_RECOVERY_BUFFER} publications for a slow read, and all are delivered`, async () => {
    const { srv, engine } = await start({ maxQueueBytes: 64 * 1024 * 1024 })
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    for (let i = 1; i <= MAX_RECOVERY_BUFFER; i++) {
      await srv.gw.publish('race', i)
      if (i % 1000 === 0) await turn()
    }
    s.release()
    await s.reply
    await s.c.until(() => s.c.pubs('race').length === MAX_RECOVERY_BUFFER, 20_000, 'every held publication')
    assert.equal(s.c.pubs('race').at(-1)?.offset, MAX_RECOVERY_BUFFER)
    assert.equal(s.c.closed, undefined)
    assert.equal(srv.gw.counters.get('insufficient_state'), 0)
  })

  it(`a read that outlasts ${MAX_RECOVERY_BUFFER} publications closes its subscriber with insufficient_state, once; others are not disturbed`, async () => {
    const { srv, engine } = await start({ maxQueueBytes: 64 * 1024 * 1024 })
    const live = await subscriber(srv, 'race')
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    // One publication more than the buffer holds is enough.
    for (let i = 1; i <= MAX_RECOVERY_BUFFER + 1; i++) {
      await srv.gw.publish('race', i)
      if (i % 1000 === 0) await turn()
    }
    await expectClosedWith(s.c, GAP)
    const total = MAX_RECOVERY_BUFFER + 5
    for (let i = MAX_RECOVERY_BUFFER + 2; i <= total; i++) await srv.gw.publish('race', i)
    assert.equal(srv.gw.counters.get('insufficient_state'), 1, 'closed once, not once per further publication')
    assert.deepEqual(offsetsOf(s.c, 'race'), [])
    s.release()
    await engine.until('the held read done', () => engine.held === 0)
    await turn()
    assert.equal(srv.gw.counters.get('engine_errors', 'subscribe'), 0, 'the abandoned subscribe ends quietly')
    await live.until(() => live.pubs('race').length === total, 20_000, 'every publication on the live subscriber')
    assert.equal(live.closed, undefined)
    assert.equal(srv.gw.hub.subscriberCount('race'), 1)
  })

  it('a connection closed during its read does not go live, and a subscriber that came meanwhile is not disturbed', async () => {
    const subscribed: string[] = []
    const { srv, engine } = await start({ onSubscribe: (info, channel) => void subscribed.push(`${info.client} ${channel}`) })
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    await srv.gw.disconnect({ client: s.id })
    await s.c.waitClosed()
    await engine.until('the channel dropped', () => srv.gw.hub.size === 0)
    // Another connection subscribes while the first read is still held: a new channel entry.
    const next = await subscriber(srv, 'race')
    s.release()
    await engine.until('the held read done', () => engine.held === 0)
    await turn()
    await srv.gw.publish('race', 1)
    await next.until(() => next.pubs('race').length === 1, 5000, 'the publication on the new subscriber')
    assert.equal(srv.gw.hub.subscriberCount('race'), 1)
    assert.deepEqual(
      subscribed.filter((x) => x.startsWith(s.id)),
      [],
      'no onSubscribe for the closed connection',
    )
    assert.equal(srv.gw.counters.get('engine_errors', 'subscribe'), 0, 'the abandoned subscribe ends quietly')
  })

  it('a connection the server closes during its read (before the socket is gone) does not go live', async () => {
    const subscribed: string[] = []
    const { srv, engine } = await start({ onSubscribe: (info, channel) => void subscribed.push(`${info.client} ${channel}`) })
    const other = await subscriber(srv, 'race')
    const s = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    const conn = [...srv.gw.connections].find((x) => x.id === s.id)
    assert.ok(conn)
    // Closed on this turn: the read completes before the close handshake does.
    conn.close('kicked', 'bye')
    s.release()
    await engine.until('the held read done', () => engine.held === 0)
    await s.c.waitClosed()
    await srv.gw.publish('race', 1)
    await other.until(() => other.pubs('race').length === 1, 5000, 'the publication')
    assert.equal(srv.gw.hub.subscriberCount('race'), 1)
    assert.deepEqual(
      subscribed.filter((x) => x.startsWith(s.id)),
      [],
    )
  })

  it('a server-side unsubscribe during the read: the subscription does not go live', async () => {
    const { srv, engine } = await start({ authenticate: ({ token }) => ({ user: token ?? 'anon' }) })
    const { c: other } = await connected(srv, { token: 'bob' })
    await other.call({ type: 'subscribe', channel: 'race' })
    const { c } = await connected(srv, { token: 'alice' })
    const release = engine.holdHistory('race', 'page-then-wait')
    const reply = c.request({ type: 'subscribe', channel: 'race' })
    reply.catch(() => {})
    await engine.until('the held read', () => engine.held === 1)
    await srv.gw.unsubscribeUser('alice', 'race')
    release()
    await engine.until('the held read done', () => engine.held === 0)
    await srv.gw.publish('race', 1)
    await other.until(() => other.pubs('race').length === 1, 5000, 'the publication')
    await c.call({ type: 'ping' })
    assert.deepEqual(offsetsOf(c, 'race'), [])
    assert.equal(srv.gw.hub.subscriberCount('race'), 1)
  })

  it('unsubscribed and subscribed again by the server during its read: one subscription, no reply to the abandoned subscribe', async () => {
    const { srv, engine } = await start({ authenticate: ({ token }) => ({ user: token ?? 'anon' }) })
    const { c } = await connected(srv, { token: 'alice' })
    const release = engine.holdHistory('race', 'page-then-wait')
    let answered = false
    const reply = c.request({ type: 'subscribe', channel: 'race' })
    reply.then(() => (answered = true)).catch(() => {})
    await engine.until('the held read', () => engine.held === 1)
    await srv.gw.unsubscribeUser('alice', 'race')
    await srv.gw.subscribeUser('alice', 'race')
    await c.until(() => c.pushes.some((p) => p.type === 'subscribe'), 5000, 'the subscribe push')
    release()
    await engine.until('the held read done', () => engine.held === 0)
    await c.call({ type: 'ping' })
    assert.equal(answered, false, 'the subscribe the server overrode gets no reply')
    await srv.gw.publish('race', 1)
    await c.until(() => c.pubs('race').length === 1, 5000, 'the publication')
    assert.equal(srv.gw.hub.subscriberCount('race'), 1)
    await c.call({ type: 'ping' })
    assert.deepEqual(offsetsOf(c, 'race'), [1], 'delivered once')
  })

  it('a subscriber leaving during its read does not disturb another one reading the same channel', async () => {
    const { srv, engine } = await start()
    const leaving = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    const staying = await heldSubscribe(srv, engine, 'race', 'page-then-wait')
    leaving.c.close()
    await waitFor(() => srv.gw.hub.subscriberCount('race') === 1, 5000, 'one reader left')
    leaving.release()
    staying.release()
    const reply = (await staying.reply) as { result?: SubResult }
    assert.equal(reply.result?.offset, 0)
    await srv.gw.publish('race', 1)
    await staying.c.until(() => staying.c.pubs('race').length === 1, 5000, 'the publication')
  })

  it('a failed engine subscribe is an error reply, not a silent subscription; the next subscriber retries', async () => {
    const { srv, engine } = await start()
    engine.failSubscribe()
    const a = await connected(srv)
    const failed = await a.c.request({ type: 'subscribe', channel: 'race' })
    assert.equal((failed as { error?: { code: number } }).error?.code, 112, 'engine_unavailable')
    assert.equal(srv.gw.hub.size, 0, 'no trace of the failed subscribe')
    assert.equal(a.c.closed, undefined)
    await srv.gw.publish('race', 1)
    const b = await subscriber(srv, 'race')
    assert.deepEqual(engine.subscribes, ['race', 'race'], 'one failed engine subscribe, then the next subscriber asked again')
    await srv.gw.publish('race', 2)
    await b.until(() => b.pubs('race').length === 1, 5000, 'publication 2')
    // The first client may simply try again.
    await a.c.call({ type: 'subscribe', channel: 'race' })
    await srv.gw.publish('race', 3)
    await a.c.until(() => a.c.pubs('race').length === 1, 5000, 'publication 3 on the retry')
  })

  it('a failed history read is an error reply and leaves no trace; the next subscribe works', async () => {
    const { srv, engine } = await start()
    engine.failHistory()
    const a = await connected(srv)
    const failed = await a.c.request({ type: 'subscribe', channel: 'race' })
    assert.equal((failed as { error?: { code: number } }).error?.code, 112)
    assert.equal(srv.gw.hub.size, 0)
    assert.equal(srv.gw.hub.subscriberCount('race'), 0)
    assert.deepEqual(engine.unsubscribes, ['race'])
    await a.c.call({ type: 'subscribe', channel: 'race' })
    await srv.gw.publish('race', 1)
    await a.c.until(() => a.c.pubs('race').length === 1, 5000, 'publication 1')
  })
})
