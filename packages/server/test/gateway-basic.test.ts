import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RawClient, startServer, type TestServer } from './helpers.js'

describe('gateway: connect, subscribe, publish', () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer()
  })
  after(async () => {
    await srv.close()
  })

  for (const protocol of ['json', 'msgpack'] as const) {
    it(`round trip over ${protocol}`, async () => {
      const a = new RawClient(srv.url, { protocol })
      const b = new RawClient(srv.url, { protocol })
      const ca = await a.connect()
      assert.equal(typeof ca.client, 'string')
      assert.equal(ca.resumed, false)
      await b.connect()
      const sub = await b.call<{ epoch: string; offset: number; recovered: boolean }>({ type: 'subscribe', channel: `room-${protocol}` })
      assert.equal(sub.offset, 0)
      assert.equal(sub.recovered, false)
      const ack = await a.call<{ offset: number; epoch: string }>({ type: 'publish', channel: `room-${protocol}`, data: { text: 'hi' }, msgId: 'm1' })
      assert.equal(ack.offset, 1)
      assert.equal(ack.epoch, sub.epoch)
      await b.until(() => b.pubs().length === 1, 2000, 'publication')
      const pub = b.pubs()[0]
      assert.deepEqual(pub?.data, { text: 'hi' })
      assert.equal(pub?.offset, 1)
      assert.equal(pub?.info?.client, ca.client)
      a.close()
      b.close()
    })
  }

  it('a client without a subprotocol speaks JSON', async () => {
    const c = new RawClient(srv.url, { noSubprotocol: true })
    const r = await c.connect()
    assert.equal(typeof r.client, 'string')
    c.close()
  })

  it('server API publish reaches subscribers and history', async () => {
    const c = new RawClient(srv.url)
    await c.connect()
    await c.call({ type: 'subscribe', channel: 'news' })
    const out = await srv.gw.publish('news', 'headline')
    assert.equal(out.offset, 1)
    await c.until(() => c.pubs('news').length === 1)
    const h = await c.call<{ publications: Array<{ data: unknown }> }>({ type: 'history', channel: 'news' })
    assert.deepEqual(h.publications.map((p) => p.data), ['headline'])
    c.close()
  })
})
