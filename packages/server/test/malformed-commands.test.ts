// A malformed command whose id can be read (an unknown type, a field missing or of the wrong kind)
// gets a bad_request error reply with that id, and the connection and the frame's other commands
// carry on (docs/protocol.md, Frames; docs/errors.md). Frames that cannot be read at all still
// close with 4007: bad-input.test.ts.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ErrorCodes, msgpackCodec, type Command } from '@holdfast/protocol'
import { encode as msgpackEncode } from '@msgpack/msgpack'
import { RawClient, startServer, type TestServer } from './helpers.js'

type Reply = { id: number; result?: Record<string, unknown>; error?: { code: number; message: string; temporary: boolean } }

/** Every reply the client receives, in order (recorded before the client's own waiters look). */
function recordReplies(c: RawClient): Reply[] {
  const out: Reply[] = []
  c.ws.prependListener('message', (data: Buffer, isBinary) => {
    for (const m of c.codec.decodeServer(isBinary ? new Uint8Array(data) : data.toString())) if ('id' in m && typeof m.id === 'number') out.push(m as Reply)
  })
  return out
}

describe('malformed commands', () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer()
  })
  after(async () => {
    await srv.close()
  })

  const answered: Array<[string, string]> = [
    ['an unknown type', '{"id":41,"type":"explode"}'],
    ['type __proto__', '{"id":41,"type":"__proto__"}'],
    ['type toString', '{"id":41,"type":"toString"}'],
    ['a type that is an object', '{"id":41,"type":{"toString":1}}'],
    ['subscribe without a channel', '{"id":41,"type":"subscribe"}'],
    ['subscribe with a numeric channel', '{"id":41,"type":"subscribe","channel":7}'],
    ['publish without msgId', '{"id":41,"type":"publish","channel":"a","data":1}'],
    ['a malformed recover position', '{"id":41,"type":"subscribe","channel":"a","recover":{"offset":"1"}}'],
    ['history with a negative limit', '{"id":41,"type":"history","channel":"a","limit":-1}'],
    ['a __proto__ key in the data', '{"id":41,"type":"publish","channel":"a","msgId":"m","data":{"__proto__":{"x":1}}}'],
  ]
  for (const [name, line] of answered) {
    it(`${name}: a bad_request reply to its id, and the connection stays`, async () => {
      const c = new RawClient(srv.url)
      const replies = recordReplies(c)
      await c.connect()
      const errors = srv.gw.counters.get('command_errors', 'bad_request')
      c.ws.send(line)
      await c.until(() => replies.some((r) => r.id === 41), 3000, 'the reply to 41')
      const reply = replies.find((r) => r.id === 41) as Reply
      assert.equal(reply.error?.code, ErrorCodes.bad_request.code)
      assert.equal(reply.error?.temporary, false)
      assert.ok((reply.error?.message.length ?? 0) > 0)
      assert.equal(srv.gw.counters.get('command_errors', 'bad_request'), errors + 1)
      // Still connected and serving.
      assert.deepEqual(await c.call({ type: 'ping' }), {})
      assert.equal(c.closed, undefined)
      c.close()
    })
  }

  it('the frame goes on: the commands around a malformed one run, each with its own reply', async () => {
    const c = new RawClient(srv.url)
    const replies = recordReplies(c)
    await c.connect()
    c.ws.send(
      [
        '{"id":50,"type":"subscribe","channel":"mc:frame"}',
        '{"id":51,"type":"unknown_thing","channel":"mc:frame"}',
        '{"id":52,"type":"publish","channel":"mc:frame","data":"x","msgId":"m52"}',
        '{"id":53,"type":"publish","channel":"mc:frame","data":"y"}',
      ].join('\n'),
    )
    await c.until(() => [50, 51, 52, 53].every((id) => replies.some((r) => r.id === id)), 3000, 'four replies')
    const byId = (id: number): Reply => replies.find((r) => r.id === id) as Reply
    assert.equal(byId(50).error, undefined)
    assert.equal(byId(51).error?.code, ErrorCodes.bad_request.code)
    assert.equal(byId(52).result?.['offset'], 1)
    assert.equal(byId(53).error?.code, ErrorCodes.bad_request.code)
    await c.until(() => c.pubs('mc:frame').length === 1, 2000, 'the publication')
    assert.equal(c.closed, undefined)
    c.close()
  })

  it('MessagePack: a malformed command with a readable id is answered too', async () => {
    const c = new RawClient(srv.url, { protocol: 'msgpack' })
    const replies = recordReplies(c)
    await c.connect()
    c.ws.send(
      Buffer.concat([
        Buffer.from(msgpackEncode({ id: 60, type: 'subscribe', channel: 9 })),
        Buffer.from(msgpackEncode({ id: 61, type: 'nope' })),
        Buffer.from(msgpackCodec.encode({ id: 62, type: 'ping' } as Command)),
      ]),
      { binary: true },
    )
    await c.until(() => [60, 61, 62].every((id) => replies.some((r) => r.id === id)), 3000, 'three replies')
    assert.equal(replies.find((r) => r.id === 60)?.error?.code, ErrorCodes.bad_request.code)
    assert.equal(replies.find((r) => r.id === 61)?.error?.code, ErrorCodes.bad_request.code)
    assert.deepEqual(replies.find((r) => r.id === 62)?.result, {})
    assert.equal(c.closed, undefined)
    c.close()
  })

  it('malformed commands count against the command rate like any other', async () => {
    const limited = await startServer({ commandRate: { perSecond: 1, burst: 3 } })
    try {
      const c = new RawClient(limited.url)
      const replies = recordReplies(c)
      await c.connect()
      c.ws.send(Array.from({ length: 5 }, (_, i) => `{"id":${70 + i},"type":"explode"}`).join('\n'))
      await c.until(() => replies.filter((r) => r.id >= 70).length === 5, 3000, 'five replies')
      const codes = replies.filter((r) => r.id >= 70).map((r) => r.error?.code)
      // Three tokens: three answered as malformed, then the rate limit.
      const [bad, slow] = [ErrorCodes.bad_request.code, ErrorCodes.rate_limited.code]
      assert.deepEqual(codes, [bad, bad, bad, slow, slow])
      c.close()
    } finally {
      await limited.close()
    }
  })
})
