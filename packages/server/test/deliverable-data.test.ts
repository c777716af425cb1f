// Data that could not be delivered to subscribers of both codecs is refused before it is stored.
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { startServer, type TestServer } from './helpers.js'

describe('deliverable data', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
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
})
