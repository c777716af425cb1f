// Frames with permessage-deflate on (docs/protocol.md, Transport): what reaches the node in one
// turn goes to a connection in one frame, compressed or not.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RawClient, serverPerTest } from './helpers.js'

describe('compression and batching', () => {
  const { start } = serverPerTest()

  for (const compression of [false, true]) {
    it(`compression ${compression ? 'on' : 'off'}: publications of one turn reach a subscriber in one frame`, async () => {
      const s = await start({ compression })
      const sub = new RawClient(s.url)
      try {
        await sub.connect()
        assert.equal(sub.ws.extensions.includes('permessage-deflate'), compression, 'the extension as configured')
        await sub.call({ type: 'subscribe', channel: 'z' })
        let frames = 0
        sub.ws.on('message', () => frames++)
        await Promise.all(Array.from({ length: 50 }, (_, i) => s.gw.publish('z', { i, text: 'the same words again and again' })))
        await sub.until(() => sub.pubs('z').length === 50, 5000, 'the publications')
        assert.deepEqual(sub.pubs('z').map((p) => (p.data as { i: number }).i), Array.from({ length: 50 }, (_, i) => i))
        assert.equal(frames, 1)
      } finally {
        sub.close()
      }
    })
  }
})
