import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CloseCodes, ErrorCodes, jsonCodec, msgpackCodec, type Command, type ServerMessage } from '@holdfast/protocol'
import { encode as msgpackEncode } from '@msgpack/msgpack'
import { RawClient, TEST_TRANSPORT, expectClosedWith, startServer, waitFor, type TestServer } from './helpers.js'

type Reply = ServerMessage & { id: number; result?: unknown; error?: { code: number; message: string; temporary: boolean } }

/** Every reply (message with an id) the client receives, in arrival order, with the frame it came in. */
function recordReplies(c: RawClient): Array<{ reply: Reply; frame: number }> {
  const out: Array<{ reply: Reply; frame: number }> = []
  let frame = 0
  c.ws.on('message', (data: Buffer, isBinary) => {
    frame++
    for (const m of c.codec.decodeServer(isBinary ? new Uint8Array(data) : data.toString())) {
      if ('id' in m && typeof m.id === 'number') out.push({ reply: m as Reply, frame })
    }
  })
  return out
}

function nested(depth: number): unknown {
  let v: unknown = 'bottom'
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

describe('bad input', () => {
  let srv: TestServer
  let healthyJson: RawClient
  let healthyMsgpack: RawClient
  let sent = 0

  before(async () => {
    srv = await startServer({ maxBatch: 100 })
    healthyJson = new RawClient(srv.url, { protocol: 'json' })
    healthyMsgpack = new RawClient(srv.url, { protocol: 'msgpack' })
    await Promise.all([healthyJson.connect(), healthyMsgpack.connect()])
    await healthyJson.call({ type: 'subscribe', channel: 'health' })
    await healthyMsgpack.call({ type: 'subscribe', channel: 'health' })
  })
  after(async () => {
    healthyJson.close()
    healthyMsgpack.close()
    await srv.close()
  })

  /** The healthy clients publish and both receive, in order and without a gap, everything so far. */
  async function othersUnaffected(): Promise<void> {
    for (const c of [healthyJson, healthyMsgpack]) {
      const n = ++sent
      await c.call({ type: 'publish', channel: 'health', data: n, msgId: `h${n}` })
    }
    for (const c of [healthyJson, healthyMsgpack]) {
      await c.until(() => c.pubs('health').length === sent, 2000, 'the healthy publications')
      assert.deepEqual(c.pubs('health').map((p) => p.data), Array.from({ length: sent }, (_, i) => i + 1))
      assert.equal(c.closed, undefined)
    }
  }

  async function fresh(opts: { protocol?: 'json' | 'msgpack'; connect?: boolean } = {}): Promise<RawClient> {
    const c = new RawClient(srv.url, { protocol: opts.protocol ?? 'json' })
    if (opts.connect === false) await c.opened()
    else await c.connect()
    return c
  }

  const ping = (id: number): string => JSON.stringify({ id, type: 'ping' })

  // [name, protocol, connect first?, what to send (as ws.send arguments)]. Malformed commands whose
  // id can be read are answered instead: malformed-commands.test.ts.
  const closing: Array<[string, 'json' | 'msgpack', boolean, Buffer | string, { binary: boolean }]> = [
    ['garbage bytes in a binary frame', 'json', true, Buffer.from([0xff, 0x00, 0x13, 0x37, 0xfe, 0x80]), { binary: true }],
    ['invalid JSON', 'json', true, '{"id":1,"type":', { binary: false }],
    ['a JSON array', 'json', true, '[{"id":1,"type":"ping"}]', { binary: false }],
    ['a JSON number', 'json', true, '42', { binary: false }],
    ['JSON null', 'json', true, 'null', { binary: false }],
    ['a command without id', 'json', true, '{"type":"ping"}', { binary: false }],
    ['id 0', 'json', true, '{"id":0,"type":"ping"}', { binary: false }],
    ['id -1', 'json', true, '{"id":-1,"type":"ping"}', { binary: false }],
    ['id as a string', 'json', true, '{"id":"1","type":"ping"}', { binary: false }],
    ['fractional id', 'json', true, '{"id":1.5,"type":"ping"}', { binary: false }],
    ['an empty frame', 'json', true, '', { binary: false }],
    ['a frame of blank lines', 'json', true, '\n\n\n', { binary: false }],
    ['one bad line in a batch', 'json', true, `${ping(1)}\nnope\n${ping(2)}`, { binary: false }],
    ['a command before connect', 'json', false, '{"id":1,"type":"subscribe","channel":"a"}', { binary: false }],
    ['a second connect', 'json', true, '{"id":9,"type":"connect","version":1}', { binary: false }],
    ['more than maxBatch messages in one frame', 'json', true, Array.from({ length: 101 }, (_, i) => ping(i + 1)).join('\n'), { binary: false }],
    ['msgpack garbage', 'msgpack', true, Buffer.from([0xc1, 0xc1, 0xc1]), { binary: true }],
    ['truncated msgpack', 'msgpack', true, Buffer.from([0x82, 0xa2, 0x69]), { binary: true }],
    ['a msgpack array header claiming 4 billion items', 'msgpack', true, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), { binary: true }],
    ['a msgpack string', 'msgpack', true, Buffer.from(msgpackEncode('ping')), { binary: true }],
    ['a text frame on a msgpack connection', 'msgpack', true, ping(1), { binary: false }],
    [
      'more than maxBatch msgpack messages in one frame',
      'msgpack',
      true,
      Buffer.concat(Array.from({ length: 101 }, (_, i) => Buffer.from(msgpackCodec.encode({ id: i + 1, type: 'ping' } as Command)))),
      { binary: true },
    ],
  ]

  for (const [name, protocol, connect, data, opts] of closing) {
    it(`${name}: closes that connection with 4007 after a disconnect push`, async () => {
      const c = await fresh({ protocol, connect })
      const before = srv.gw.counters.get('bad_frames')
      c.ws.send(data, opts)
      const closed = await expectClosedWith(c, CloseCodes.bad_request.code)
      assert.ok(closed.reason.length > 0, 'the close carries a reason')
      // Frames that do not decode are counted; well-formed commands out of sequence are not.
      const decodable = name === 'a command before connect' || name === 'a second connect'
      assert.equal(srv.gw.counters.get('bad_frames'), before + (decodable ? 0 : 1))
      await othersUnaffected()
    })
  }

  it('invalid UTF-8 in a text frame: ws refuses it with 1007 before holdfast sees it', async () => {
    const c = await fresh()
    // '{' 0xff 0xfe '}' sent as a *text* frame: ws validates UTF-8 on receipt and fails the connection.
    c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
    // uWS fails the connection without a close frame: the client sees 1006.
    await expectClosedWith(c, TEST_TRANSPORT === 'uws' ? 1006 : 1007, { push: false })
    await othersUnaffected()
  })

  it('a frame with a reserved opcode: ws refuses it with 1002', async () => {
    const c = await fresh()
    // A raw frame: FIN + opcode 0x3 (reserved), masked, zero-length payload.
    const sock = (c.ws as unknown as { _socket: import('node:net').Socket })._socket
    sock.write(Buffer.from([0x83, 0x80, 0x01, 0x02, 0x03, 0x04]))
    // uWS fails the connection without a close frame: the client sees 1006.
    await expectClosedWith(c, TEST_TRANSPORT === 'uws' ? 1006 : CloseCodes.protocol_error.code, { push: false })
    await othersUnaffected()
  })

  it('an unsupported protocol version closes with 4013', async () => {
    const c = await fresh({ connect: false })
    c.sendRaw({ id: 1, type: 'connect', version: 999 })
    await expectClosedWith(c, CloseCodes.unsupported_version.code)
    await othersUnaffected()
  })

  it('invalid channel names get error 102 and the connection stays', async () => {
    const c = await fresh()
    const names = ['', 'a b', 'ümlaut', 'x'.repeat(256), 'dialog#', 'dialog#,', 'new\nline', 'a"b']
    for (const channel of names) {
      for (const cmd of [
        { type: 'subscribe', channel },
        { type: 'publish', channel, data: 1, msgId: `m-${channel.length}` },
        { type: 'history', channel },
        { type: 'presence', channel },
      ]) {
        const r = (await c.request(cmd)) as Reply
        assert.equal(r.error?.code, ErrorCodes.unknown_channel.code, `${cmd.type} ${JSON.stringify(channel.slice(0, 20))}: ${JSON.stringify(r)}`)
      }
    }
    assert.equal(srv.gw.hub.subscriberCount(''), 0)
    await c.call({ type: 'ping' })
    assert.equal(c.closed, undefined)
    // The longest valid name is accepted.
    await c.call({ type: 'subscribe', channel: 'x'.repeat(255) })
    c.close()
    await othersUnaffected()
  })

  for (const protocol of ['json', 'msgpack'] as const) {
    it(`a batched frame with 3 valid commands gets 3 replies (${protocol})`, async () => {
      const c = await fresh({ protocol })
      const replies = recordReplies(c)
      const cmds = [
        { id: 11, type: 'ping' },
        { id: 12, type: 'subscribe', channel: `batch-${protocol}` },
        { id: 13, type: 'publish', channel: `batch-${protocol}`, data: 'b', msgId: 'b1' },
      ] as Command[]
      const codec = protocol === 'json' ? jsonCodec : msgpackCodec
      c.ws.send(codec.frame(cmds.map((m) => codec.encode(m))), { binary: codec.binary })
      await waitFor(() => replies.length === 3, 2000, 'three replies')
      assert.deepEqual(replies.map((r) => r.reply.id), [11, 12, 13], 'replies come in command order')
      for (const { reply } of replies) assert.equal(reply.error, undefined, JSON.stringify(reply))
      assert.equal((replies[2]?.reply.result as { offset: number }).offset, 1)
      // The subscribe in the same frame was live before the publish ran: the client gets its own publication.
      await c.until(() => c.pubs(`batch-${protocol}`).length === 1)
      c.close()
    })
  }

  it('exactly maxBatch messages in one frame are all answered', async () => {
    const c = await fresh()
    const replies = recordReplies(c)
    c.ws.send(Array.from({ length: 100 }, (_, i) => ping(i + 1)).join('\n'))
    await waitFor(() => replies.length === 100, 2000, '100 replies')
    assert.equal(c.closed, undefined)
    c.close()
  })

  it('data nested deeper than every codec can carry is refused at publish (107), not lost at fan-out', async () => {
    const pubJson = await fresh()
    const pubMsgpack = await fresh({ protocol: 'msgpack' })
    const subJson = await fresh()
    const subMsgpack = await fresh({ protocol: 'msgpack' })
    await subJson.call({ type: 'subscribe', channel: 'deep' })
    await subMsgpack.call({ type: 'subscribe', channel: 'deep' })
    // 150 levels: fine for JSON, beyond MessagePack's encoder (100); 20,000: beyond JSON.stringify's stack too.
    const jsonReplies = recordReplies(pubJson)
    let id = 1000
    for (const depth of [65, 150, 20_000]) {
      // Built as text: JSON.stringify itself overflows the stack long before 20,000 levels.
      const data = `${'['.repeat(depth)}"bottom"${']'.repeat(depth)}`
      for (const body of [`"type":"publish","channel":"deep","msgId":"d${depth}"`, `"type":"rpc","method":"m","msgId":"r${depth}"`]) {
        const want = ++id
        pubJson.ws.send(`{"id":${want},${body},"data":${data}}`)
        await waitFor(() => jsonReplies.some((r) => r.reply.id === want), 2000, `reply ${want}`)
        const r = jsonReplies.find((x) => x.reply.id === want)?.reply
        assert.equal(r?.error?.code, ErrorCodes.bad_request.code, `JSON command of depth ${depth}: ${JSON.stringify(r)}`)
      }
    }
    // The msgpack library will not encode that deep, so the frame is built by hand: fixarray(1) x 150.
    const replies = recordReplies(pubMsgpack)
    const deepData = Buffer.concat([Buffer.alloc(150, 0x91), Buffer.from(msgpackEncode('bottom'))])
    const fields: Array<[string, unknown]> = [['id', 77], ['type', 'publish'], ['channel', 'deep'], ['msgId', 'dm']]
    pubMsgpack.ws.send(
      Buffer.concat([Buffer.from([0x80 | (fields.length + 1)]), ...fields.map(([k, v]) => Buffer.concat([msgpackEncode(k), msgpackEncode(v)])), msgpackEncode('data'), deepData]),
      { binary: true },
    )
    await waitFor(() => replies.some((r) => r.reply.id === 77), 2000, 'the reply to the deep msgpack publish')
    assert.equal(replies.find((r) => r.reply.id === 77)?.reply.error?.code, ErrorCodes.bad_request.code)
    // 64 levels is the limit: accepted, and every subscriber gets it whatever its codec.
    await pubJson.call({ type: 'publish', channel: 'deep', data: nested(64), msgId: 'd64' })
    await pubMsgpack.call({ type: 'publish', channel: 'deep', data: nested(64), msgId: 'd64m' })
    for (const c of [subJson, subMsgpack]) {
      await c.until(() => c.pubs('deep').length === 2, 2000, `${c.codec.name} subscriber`)
      assert.deepEqual(c.pubs('deep').map((p) => p.offset), [1, 2])
      assert.deepEqual(c.pubs('deep')[0]?.data, nested(64))
    }
    // ...and in a recovery reply, where the data sits deeper in the envelope.
    const late = await fresh({ protocol: 'msgpack' })
    const epoch = subJson.pubs('deep')[0]?.epoch as string
    const rec = await late.call<{ recovered: boolean; publications: Array<{ data: unknown }> }>({ type: 'subscribe', channel: 'deep', recover: { offset: 0, epoch } })
    assert.equal(rec.recovered, true)
    assert.deepEqual(rec.publications[1]?.data, nested(64))
    for (const c of [pubJson, pubMsgpack, subJson, subMsgpack, late]) c.close()
    await othersUnaffected()
  })
})
