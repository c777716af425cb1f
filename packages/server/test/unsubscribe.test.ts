// `unsubscribe` (docs/protocol.md): `{}` for a subscription it ends, `not_subscribed` (113) when
// there is none on this connection, `unknown_channel` (102) for a malformed name.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { RawClient, startServer, type TestServer } from './helpers.js'

type ErrorReply = { error?: { code: number; temporary: boolean } }

describe('unsubscribe', () => {
  let srv: TestServer
  let c: RawClient
  before(async () => {
    srv = await startServer()
    c = new RawClient(srv.url)
    await c.connect()
  })
  after(async () => {
    c.close()
    await srv.close()
  })

  it('ends a subscription: no more publications, and a second unsubscribe is not_subscribed', async () => {
    await c.call({ type: 'subscribe', channel: 'u:a' })
    assert.deepEqual(await c.call({ type: 'unsubscribe', channel: 'u:a' }), {})
    await srv.gw.publish('u:a', 'after')
    // A later publication to a channel still subscribed arrives; the unsubscribed one never does.
    await c.call({ type: 'subscribe', channel: 'u:b' })
    await srv.gw.publish('u:b', 'marker')
    await c.until(() => c.pubs('u:b').length === 1, 2000, 'the marker')
    assert.equal(c.pubs('u:a').length, 0)
    const again = (await c.request({ type: 'unsubscribe', channel: 'u:a' })) as ErrorReply
    assert.equal(again.error?.code, ErrorCodes.not_subscribed.code)
    assert.equal(again.error?.temporary, false)
  })

  it('a channel never subscribed: not_subscribed', async () => {
    const reply = (await c.request({ type: 'unsubscribe', channel: 'u:never' })) as ErrorReply
    assert.equal(reply.error?.code, ErrorCodes.not_subscribed.code)
  })

  it('a malformed name: unknown_channel, before anything else', async () => {
    for (const channel of ['bad name', '', 'x'.repeat(256), 'dialog#']) {
      const reply = (await c.request({ type: 'unsubscribe', channel })) as ErrorReply
      assert.equal(reply.error?.code, ErrorCodes.unknown_channel.code, JSON.stringify(channel))
    }
  })

  it('after the server unsubscribed the user, the client unsubscribe is not_subscribed', async () => {
    const d = new RawClient(srv.url)
    try {
      await d.connect()
      await d.call({ type: 'subscribe', channel: 'u:kick' })
      await srv.gw.unsubscribeUser('', 'u:kick')
      await d.until(() => d.pushes.some((p) => p.type === 'unsubscribe'), 2000, 'the unsubscribe push')
      const reply = (await d.request({ type: 'unsubscribe', channel: 'u:kick' })) as ErrorReply
      assert.equal(reply.error?.code, ErrorCodes.not_subscribed.code)
      assert.equal(d.closed, undefined)
    } finally {
      d.close()
    }
  })
})
