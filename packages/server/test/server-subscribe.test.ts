// Subscriptions made by the server: the channels of a token's `channels` claim, announced by `subscribe` pushes.
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { mintToken } from '../src/auth/mint.js'
import { RawClient, startServer, type TestServer } from './helpers.js'

describe('server-side subscriptions', () => {
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
})
