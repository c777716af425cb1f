// The send queue's bounds (maxQueueBytes, the burst bound, the reply allowance): a reader that keeps
// up is never closed, however big a burst or a recovery; one that stops reading is, whatever it asked for.
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { afterEach, describe, it } from 'node:test'
import { RawClient, startServer, turn, type TestServer } from './helpers.js'

describe('send queue', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
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
})
