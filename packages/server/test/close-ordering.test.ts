// What a connection was sent before it is closed still goes out, before the disconnect push.
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { RawClient, startServer, type TestServer } from './helpers.js'

describe('close ordering', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
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
