import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { CloseCodes, type Push } from '@holdfast/protocol'
import { startApi, type ApiServer } from './api-helpers.js'
import { expectClosedWith, type RawClient } from './helpers.js'

type PushOf<T extends Push['type']> = Extract<Push, { type: T }>

function pushesOf<T extends Push['type']>(c: RawClient, type: T): Array<PushOf<T>> {
  return c.pushes.filter((p): p is PushOf<T> => p.type === type)
}

const NAMESPACES = { room: { presence: true }, short: { historySize: 3 } }

describe('server HTTP API: methods, observed from real clients', () => {
  let srv: ApiServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })
  const start = async (): Promise<ApiServer> => (srv = await startApi({ channels: { namespaces: NAMESPACES } }))

  it('publish: the subscriber receives the publication at the offset the API answered', async () => {
    const s = await start()
    const alice = await s.client('alice')
    await alice.call({ type: 'subscribe', channel: 'news' })
    const r = await s.call('publish', { channel: 'news', data: { headline: 'hi' } })
    assert.equal(r.status, 200)
    assert.equal(r.body.duplicate, false)
    assert.equal(r.body.offset, 1)
    assert.equal(typeof r.body.epoch, 'string')
    await alice.until(() => alice.pubs('news').length === 1)
    const pub = alice.pubs('news')[0]
    assert.deepEqual({ offset: pub?.offset, epoch: pub?.epoch, data: pub?.data }, { offset: 1, epoch: r.body.epoch, data: { headline: 'hi' } })
  })

  it('publish with an idempotency key (body or header) publishes once; a repeat says duplicate', async () => {
    const s = await start()
    const alice = await s.client('alice')
    await alice.call({ type: 'subscribe', channel: 'orders' })
    const first = await s.call('publish', { channel: 'orders', data: 1, idempotencyKey: 'k1' })
    const again = await s.call('publish', { channel: 'orders', data: 1, idempotencyKey: 'k1' })
    assert.deepEqual(first.body, { offset: 1, epoch: first.body.epoch, duplicate: false })
    assert.deepEqual(again.body, { offset: 1, epoch: first.body.epoch, duplicate: true })
    // The same key by header, twice: one more publication only.
    const byHeader = await s.call('publish', { channel: 'orders', data: 2 }, { headers: { 'idempotency-key': 'k2' } })
    const byHeaderAgain = await s.call('publish', { channel: 'orders', data: 2 }, { headers: { 'idempotency-key': 'k2' } })
    assert.equal(byHeader.body.offset, 2)
    assert.equal(byHeader.body.duplicate, false)
    assert.deepEqual(byHeaderAgain.body, { ...byHeader.body, duplicate: true })
    // Body and header agree: accepted, and it is the header's key too.
    const both = await s.call('publish', { channel: 'orders', data: 2, idempotencyKey: 'k2' }, { headers: { 'idempotency-key': 'k2' } })
    assert.equal(both.body.duplicate, true)
    // A marker publication: once it arrives, any duplicate would have arrived before it.
    await s.call('publish', { channel: 'orders', data: 'marker' })
    await alice.until(() => alice.pubs('orders').some((p) => p.data === 'marker'))
    assert.deepEqual(alice.pubs('orders').map((p) => p.data), [1, 2, 'marker'])
    // Keys name one publication to one channel: the same key elsewhere publishes.
    const elsewhere = await s.call('publish', { channel: 'other', data: 1, idempotencyKey: 'k1' })
    assert.equal(elsewhere.body.duplicate, false)
    // Two different keys in one request are a client bug.
    const conflict = await s.call('publish', { channel: 'orders', data: 3, idempotencyKey: 'a' }, { headers: { 'idempotency-key': 'b' } })
    assert.equal(conflict.status, 400)
    assert.equal(conflict.body.error.code, 'bad_request')
    assert.match(conflict.body.error.message, /idempotencyKey.*Idempotency-Key/)
  })

  it('publish fails fast with 503 engine_unavailable (and Retry-After) when the engine is down', async () => {
    const s = await start()
    s.engine.downChannels.add('down')
    const r = await s.call('publish', { channel: 'down', data: 1 })
    assert.equal(r.status, 503)
    assert.deepEqual(r.body, { error: { code: 'engine_unavailable', message: 'engine unavailable (test)' } })
    assert.equal(r.headers.get('retry-after'), '1')
  })

  it('publish refuses data nested too deep for the codecs, and an invalid channel name', async () => {
    const s = await start()
    let deep: unknown = 0
    for (let i = 0; i < 70; i++) deep = [deep]
    const r = await s.call('publish', { channel: 'a', data: deep })
    assert.equal(r.status, 400)
    assert.equal(r.body.error.code, 'bad_request')
    assert.match(r.body.error.message, /nested deeper/)
    const bad = await s.call('publish', { channel: 'no spaces allowed', data: 1 })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'unknown_channel')
  })

  it('broadcast: each channel is reported on its own; a failing channel does not stop the others', async () => {
    const s = await start()
    const alice = await s.client('alice')
    await alice.call({ type: 'subscribe', channel: 'a' })
    await alice.call({ type: 'subscribe', channel: 'b' })
    s.engine.downChannels.add('down')
    const r = await s.call('broadcast', { channels: ['a', 'bad channel', 'down', 'b'], data: { n: 1 }, idempotencyKey: 'bc1' })
    assert.equal(r.status, 200)
    const [a, bad, down, b] = r.body.results
    assert.deepEqual(a, { channel: 'a', offset: 1, epoch: a.epoch, duplicate: false })
    assert.equal(bad.channel, 'bad channel')
    assert.equal(bad.error.code, 'unknown_channel')
    assert.deepEqual(down, { channel: 'down', error: { code: 'engine_unavailable', message: 'engine unavailable (test)' } })
    assert.deepEqual(b, { channel: 'b', offset: 1, epoch: b.epoch, duplicate: false })
    await alice.until(() => alice.pubs('a').length === 1 && alice.pubs('b').length === 1)

    // The retry after the engine came back: only the failed channel gets a publication.
    s.engine.downChannels.clear()
    const retry = await s.call('broadcast', { channels: ['a', 'down', 'b'], data: { n: 1 }, idempotencyKey: 'bc1' })
    assert.deepEqual(
      retry.body.results.map((x: { channel: string; duplicate?: boolean }) => [x.channel, x.duplicate]),
      [['a', true], ['down', false], ['b', true]],
    )
    await s.call('publish', { channel: 'a', data: 'marker' })
    await alice.until(() => alice.pubs('a').some((p) => p.data === 'marker'))
    assert.equal(alice.pubs('a').length, 2, 'a received the broadcast once, then the marker')
    assert.equal(alice.pubs('b').length, 1)
  })

  it('disconnect a user: every connection of theirs closes with the code; others stay', async () => {
    const s = await start()
    const a1 = await s.client('alice')
    const a2 = await s.client('alice')
    const bob = await s.client('bob')
    const r = await s.call('disconnect', { user: 'alice' })
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, {})
    for (const c of [a1, a2]) await expectClosedWith(c, CloseCodes.kicked.code)
    assert.equal(bob.closed, undefined)
    // Bob still works: a round trip after alice's closes.
    await bob.call({ type: 'ping' })
  })

  it('disconnect a connection with a chosen code and reason', async () => {
    const s = await start()
    const a1 = await s.client('alice')
    const a2 = await s.client('alice')
    const r = await s.call('disconnect', { client: a1.id, code: 'restart', reason: 'moving you' })
    assert.equal(r.status, 200)
    const closed = await expectClosedWith(a1, CloseCodes.restart.code)
    assert.equal(closed.reason, 'moving you')
    await a2.call({ type: 'ping' })
    assert.equal(a2.closed, undefined)
  })

  it('subscribe and unsubscribe a user server side: pushes, then publications, then the end', async () => {
    const s = await start()
    const alice = await s.client('alice')
    const bob = await s.client('bob')
    await s.call('publish', { channel: 'feed', data: 'before' })
    const sub = await s.call('subscribe', { user: 'alice', channel: 'feed' })
    assert.equal(sub.status, 200)
    await alice.until(() => pushesOf(alice, 'subscribe').length === 1)
    const push = pushesOf(alice, 'subscribe')[0]
    assert.equal(push?.channel, 'feed')
    assert.equal(push?.offset, 1, 'the push carries the stream position')
    await s.call('publish', { channel: 'feed', data: 'after' })
    await alice.until(() => alice.pubs('feed').length === 1)
    assert.equal(alice.pubs('feed')[0]?.data, 'after')

    const unsub = await s.call('unsubscribe', { user: 'alice', channel: 'feed' })
    assert.equal(unsub.status, 200)
    await alice.until(() => pushesOf(alice, 'unsubscribe').length === 1)
    assert.deepEqual(pushesOf(alice, 'unsubscribe')[0], { type: 'unsubscribe', channel: 'feed', code: CloseCodes.kicked.code, reason: 'unsubscribed by the server' })
    await s.call('publish', { channel: 'feed', data: 'gone' })
    await s.call('subscribe', { user: 'alice', channel: 'marker' })
    await alice.until(() => pushesOf(alice, 'subscribe').length === 2)
    assert.equal(alice.pubs('feed').length, 1, 'no publication after the unsubscribe')
    assert.equal(pushesOf(bob, 'subscribe').length, 0, 'another user is not subscribed')
  })

  it('presence and presence_stats list who is subscribed', async () => {
    const s = await start()
    const alice = await s.client('alice')
    const alice2 = await s.client('alice')
    const bob = await s.client('bob')
    for (const c of [alice, alice2, bob]) await c.call({ type: 'subscribe', channel: 'room:1' })
    const p = await s.call('presence', { channel: 'room:1' })
    assert.equal(p.status, 200)
    assert.deepEqual(p.body, {
      presence: {
        [alice.id]: { client: alice.id, user: 'alice', info: { name: 'ALICE' } },
        [alice2.id]: { client: alice2.id, user: 'alice', info: { name: 'ALICE' } },
        [bob.id]: { client: bob.id, user: 'bob', info: { name: 'BOB' } },
      },
    })
    const stats = await s.call('presence_stats', { channel: 'room:1' })
    assert.deepEqual(stats.body, { clients: 3, users: 2 })
    bob.close()
    await waitForValue(async () => (await s.call('presence_stats', { channel: 'room:1' })).body.users === 1)
  })

  it('history: latest page, pages after a position, reverse, and 409 for a lost position', async () => {
    const s = await start()
    let epoch = ''
    for (let i = 1; i <= 5; i++) epoch = (await s.call('publish', { channel: 'log', data: `m${i}` })).body.epoch
    const latest = await s.call('history', { channel: 'log', limit: 2 })
    assert.equal(latest.status, 200)
    assert.deepEqual(latest.body, { offset: 5, epoch, publications: [{ offset: 4, data: 'm4' }, { offset: 5, data: 'm5' }] })
    // Paging forward from the start, by the last offset seen.
    const seen: unknown[] = []
    let since = { offset: 0, epoch }
    for (;;) {
      const page = await s.call('history', { channel: 'log', since, limit: 2 })
      assert.equal(page.status, 200)
      if (page.body.publications.length === 0) break
      seen.push(...page.body.publications.map((p: { data: unknown }) => p.data))
      since = { offset: page.body.publications.at(-1).offset, epoch }
    }
    assert.deepEqual(seen, ['m1', 'm2', 'm3', 'm4', 'm5'])
    const reversed = await s.call('history', { channel: 'log', limit: 3, reverse: true })
    assert.deepEqual(reversed.body.publications.map((p: { offset: number }) => p.offset), [5, 4, 3])
    const position = await s.call('history', { channel: 'log', limit: 0 })
    assert.deepEqual(position.body, { offset: 5, epoch, publications: [] })

    const otherEpoch = await s.call('history', { channel: 'log', since: { offset: 1, epoch: `${epoch}x` } })
    assert.equal(otherEpoch.status, 409)
    assert.equal(otherEpoch.body.error.code, 'unrecoverable_position')
    // `short:` keeps 3: offset 1 of 5 lost its successors 2 to 3.
    for (let i = 1; i <= 5; i++) await s.call('publish', { channel: 'short:x', data: i })
    const trimmed = await s.call('history', { channel: 'short:x', since: { offset: 1, epoch: (await s.call('history', { channel: 'short:x', limit: 0 })).body.epoch } })
    assert.equal(trimmed.status, 409)
    assert.equal(trimmed.body.error.code, 'unrecoverable_position')
  })

  it('channels lists this node\'s channels with subscriber counts, without a body', async () => {
    const s = await start()
    const alice = await s.client('alice')
    const bob = await s.client('bob')
    await alice.call({ type: 'subscribe', channel: 'x' })
    await alice.call({ type: 'subscribe', channel: 'y' })
    await bob.call({ type: 'subscribe', channel: 'y' })
    const r = await s.call('channels')
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { node: s.holdfast.nodeId, channels: [{ channel: 'x', subscribers: 1 }, { channel: 'y', subscribers: 2 }] })
    await bob.call({ type: 'unsubscribe', channel: 'y' })
    assert.deepEqual((await s.call('channels', {})).body.channels, [{ channel: 'x', subscribers: 1 }, { channel: 'y', subscribers: 1 }])
  })

  it('info (POST and GET): this node with live counts, the registry\'s other nodes, totals', async () => {
    const s = await start()
    const alice = await s.client('alice')
    await s.client('bob')
    await alice.call({ type: 'subscribe', channel: 'x' })
    const now = Date.now()
    await s.engine.registerNode({ id: 'zz-other-node', connections: 7, subscriptions: 9, channels: 2, startedAt: now - 1000, updatedAt: now }, 60_000)
    const r = await s.call('info')
    assert.equal(r.status, 200)
    const { node, nodes, registry, totals } = r.body
    assert.equal(node.id, s.holdfast.nodeId)
    assert.deepEqual({ c: node.connections, s: node.subscriptions, ch: node.channels, ready: node.ready, draining: node.draining }, { c: 2, s: 1, ch: 1, ready: true, draining: false })
    assert.equal(registry, 'ok')
    assert.deepEqual(nodes.map((n: { id: string }) => n.id), [s.holdfast.nodeId, 'zz-other-node'])
    assert.equal(nodes[1].connections, 7)
    assert.deepEqual(totals, { nodes: 2, connections: 9, subscriptions: 10 })

    const get = await fetch(`${s.base}/api/info`, { headers: { authorization: 'apikey test-api-key-3f9c2a7e' } })
    assert.equal(get.status, 200)
    const body = (await get.json()) as typeof r.body
    assert.deepEqual(body.totals, totals)
    assert.equal(body.node.connections, 2)

    // Asked while the registry is away, it still answers with what this node knows.
    s.engine.registryDown = true
    const degraded = await s.call('info')
    assert.equal(degraded.status, 200)
    assert.equal(degraded.body.registry, 'unavailable')
    assert.deepEqual(degraded.body.nodes.map((n: { id: string }) => n.id), [s.holdfast.nodeId])
  })

  it('send: a message push to every connection of a user, or to one connection', async () => {
    const s = await start()
    const a1 = await s.client('alice')
    const a2 = await s.client('alice')
    const bob = await s.client('bob')
    assert.equal((await s.call('send', { user: 'alice', data: { hello: 'alice' } })).status, 200)
    for (const c of [a1, a2]) await c.until(() => pushesOf(c, 'message').length === 1)
    assert.deepEqual(pushesOf(a1, 'message')[0], { type: 'message', data: { hello: 'alice' } })
    assert.equal((await s.call('send', { client: a2.id, data: 'just you' })).status, 200)
    await a2.until(() => pushesOf(a2, 'message').length === 2)
    assert.equal(pushesOf(a2, 'message')[1]?.data, 'just you')
    // A round trip to each after the sends: nothing else was on its way.
    await Promise.all([a1.call({ type: 'ping' }), bob.call({ type: 'ping' })])
    assert.equal(pushesOf(a1, 'message').length, 1)
    assert.equal(pushesOf(bob, 'message').length, 0)
  })
})

/** Poll an async condition (presence leaves are applied by the engine, without an event to wait for). */
async function waitForValue(pred: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
