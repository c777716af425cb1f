import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { afterEach, describe, it } from 'node:test'
import { mintToken } from '../src/auth/mint.js'
import { RawClient, startServer, turn, type TestServer } from './helpers.js'

describe('token channels, bursts, anonymous dedupe, close ordering', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  it('subscribes the channels of the token `channels` claim, announced by subscribe pushes', async () => {
    srv = await startServer({ jwt: { secret: 'a-test-secret-of-32-bytes-or-more!!' }, channels: { namespaces: { ops: { allowSubscribe: false } } } })
    const token = await mintToken({ secret: 'a-test-secret-of-32-bytes-or-more!!', sub: 'alice', channels: ['ops:alerts', 'news'] })
    const c = new RawClient(srv.url)
    await c.connect({ token })
    await c.until(() => c.pushes.filter((p) => p.type === 'subscribe').length === 2, 2000, 'two subscribe pushes')
    assert.deepEqual(c.pushes.filter((p) => p.type === 'subscribe').map((p) => (p as { channel: string }).channel).sort(), ['news', 'ops:alerts'])
    await srv.gw.publish('ops:alerts', 'disk full')
    await c.until(() => c.pubs('ops:alerts').length === 1)
    c.close()
  })

  it('a burst larger than maxQueueBytes in one turn does not close a reader that keeps up', async () => {
    srv = await startServer({ maxQueueBytes: 64 * 1024 })
    const c = new RawClient(srv.url)
    await c.connect()
    await c.call({ type: 'subscribe', channel: 'burst' })
    const blob = 'x'.repeat(20 * 1024)
    // 8 publications of 20 KiB in one turn: 160 KiB queued at once, 2.5x the limit.
    await Promise.all(Array.from({ length: 8 }, (_, i) => srv!.gw.publish('burst', { i, blob })))
    await c.until(() => c.pubs('burst').length === 8, 5000, 'all 8 publications')
    assert.equal(c.closed, undefined)
    assert.equal(srv.gw.counters.get('slow_consumer_closes'), 0)
    c.close()
  })

  it('a client behind by far more than the send-queue bound takes its recovery in one reply and stays live', async () => {
    srv = await startServer({ maxQueueBytes: 64 * 1024, channels: { default: { historySize: 10_000, maxRecoverPublications: 1000 } } })
    const c = new RawClient(srv.url)
    await c.connect()
    const first = await c.call<{ epoch: string; offset: number }>({ type: 'subscribe', channel: 'behind' })
    await c.call({ type: 'unsubscribe', channel: 'behind' })
    // Missed while away: 400 publications of 2 KiB, about 13x maxQueueBytes (3x the burst bound).
    const blob = 'y'.repeat(2048)
    for (let i = 0; i < 400; i++) await srv.gw.publish('behind', { i, blob })
    const r = await c.call<{ recovered: boolean; publications: Array<{ offset: number }> }>({
      type: 'subscribe',
      channel: 'behind',
      recover: { epoch: first.epoch, offset: first.offset },
    })
    assert.equal(r.recovered, true)
    assert.equal(r.publications.length, 400)
    // Live publications right behind the big reply still reach the client.
    for (let i = 0; i < 20; i++) await srv.gw.publish('behind', { i: 400 + i, blob })
    await c.until(() => c.pubs('behind').length === 20, 5000, 'the live publications after the recovery')
    assert.deepEqual(c.pubs('behind').map((p) => p.offset), Array.from({ length: 20 }, (_, i) => 401 + i))
    assert.equal(c.closed, undefined)
    assert.equal(srv.gw.counters.get('slow_consumer_closes'), 0)
    c.close()
  })

  it('a big reply is no licence to stop reading: a client that stalls after it is still closed as slow', async () => {
    srv = await startServer({ maxQueueBytes: 64 * 1024, channels: { default: { historySize: 10_000, maxRecoverPublications: 1000 } } })
    const c = new RawClient(srv.url)
    await c.connect()
    const blob = 'z'.repeat(2048)
    for (let i = 0; i < 400; i++) await srv.gw.publish('stall', { i, blob })
    await c.call({ type: 'subscribe', channel: 'stall' })
    const h = await c.call<{ publications: unknown[] }>({ type: 'history', channel: 'stall', limit: 1000 })
    assert.equal(h.publications.length, 400, 'an 800 KB history reply is delivered')
    const tcp = (c.ws as unknown as { _socket: Socket })._socket
    tcp.pause()
    let published = 400
    const cap = 40_000 // ~80 MB: far past any kernel buffering plus the reply's allowance
    while (srv.gw.counters.get('slow_consumer_closes') === 0) {
      assert.ok(published < cap, `the stalled client was not closed after ${published} publications`)
      for (let i = 0; i < 16; i++) void srv.gw.publish('stall', { i: ++published, blob })
      await turn()
    }
    assert.equal(srv.gw.counters.get('slow_consumer_closes'), 1)
    tcp.resume()
  })

  it('anonymous clients do not share a dedupe space: the same msgId from two sessions publishes twice', async () => {
    srv = await startServer()
    const a = new RawClient(srv.url)
    const b = new RawClient(srv.url)
    await a.connect()
    await b.connect()
    const r1 = await a.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'anon', data: 1, msgId: 'same' })
    const r2 = await b.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'anon', data: 2, msgId: 'same' })
    assert.equal(r2.duplicate, undefined)
    assert.equal(r2.offset, r1.offset + 1)
    a.close()
    b.close()
  })

  it('server API refuses data that cannot be delivered to every codec', async () => {
    srv = await startServer()
    let deep: unknown = 1
    for (let i = 0; i < 100; i++) deep = [deep]
    await assert.rejects(srv.gw.publish('x', deep), (e: Error & { code?: string }) => e.code === 'bad_request')
    await assert.rejects(srv.gw.publish('x', { big: 10n }), (e: Error & { code?: string }) => e.code === 'bad_request')
    const h = await srv.gw.history('x')
    assert.equal(h.offset, 0, 'nothing was stored')
  })

  it('replies queued before a close still go out before the disconnect push', async () => {
    srv = await startServer()
    const gw = srv.gw
    // Kick every client in the same turn its connect reply was queued.
    gw.on('connect', ({ client }) => void gw.disconnect({ client }))
    const c = new RawClient(srv.url)
    const r = await c.connect()
    assert.equal(typeof r.client, 'string', 'the connect reply arrived')
    assert.equal((await c.waitClosed()).code, 4012)
    assert.equal(c.pushes.at(-1)?.type, 'disconnect')
  })
})
