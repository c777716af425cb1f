// A MessagePack frame that declares more values than it holds (nested container headers, each
// within the frame's size) is refused before it is decoded: the sender is closed with bad_request
// and the node, and every other client on it, carry on. Decoded, one such 64 KB frame would make
// the node allocate gigabytes.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { expectClosedWith, serverPerTest } from './helpers.js'

describe('hostile MessagePack frames', () => {
  const fx = serverPerTest()

  it('a full-size frame of nested array headers closes its sender with bad_request; others are unaffected', async () => {
    const srv = await fx.start()
    const bystander = fx.client(srv.url, { protocol: 'msgpack' })
    await bystander.connect()
    await bystander.call({ type: 'subscribe', channel: 'room' })
    const attacker = fx.client(srv.url, { protocol: 'msgpack' })
    await attacker.connect()
    const frame = new Uint8Array(srv.gw.options.maxPayload - (srv.gw.options.maxPayload % 3))
    for (let i = 0; i < frame.length; i += 3) frame.set([0xdc, 0xff, 0xff], i) // array16 of 65,535 entries, nested
    const heap = process.memoryUsage().heapUsed
    attacker.ws.send(frame, { binary: true })
    const closed = await expectClosedWith(attacker, CloseCodes.bad_request.code)
    assert.match(closed.reason, /declares more values than it holds/)
    assert.ok(process.memoryUsage().heapUsed - heap < 256 * 1024 * 1024, 'the frame was never decoded')
    await srv.gw.publish('room', 'still here')
    await bystander.until(() => bystander.pubs('room').length === 1, 5000, 'the publication')
    assert.equal(bystander.closed, undefined)
  })
})
