import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { RawClient, TEST_TRANSPORT, startServer, type TestServer } from './helpers.js'

/**
 * The ws transport frames a publication once and writes the frame to every subscriber itself
 * (transport/ws-transport.ts). The header has three length encodings (7-bit, 16-bit, 64-bit):
 * publications whose encoded size falls on each side of each boundary must reach a real `ws`
 * client intact, in JSON (text frames) and MessagePack (binary frames), to several subscribers.
 */
describe(`fan-out framing (${TEST_TRANSPORT} transport)`, () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  for (const protocol of ['json', 'msgpack'] as const) {
    it(`${protocol}: every length encoding arrives intact at every subscriber`, async () => {
      srv = await startServer({ maxPayload: 256 * 1024 })
      const clients = [new RawClient(srv.url, { protocol }), new RawClient(srv.url, { protocol }), new RawClient(srv.url, { protocol })]
      for (const c of clients) {
        await c.connect()
        await c.call({ type: 'subscribe', channel: 'frames' })
      }
      // Data lengths around 126 and 65,536 bytes once the envelope is added, and one well past them.
      const sizes = [0, 1, 60, 80, 100, 110, 120, 125, 126, 127, 200, 65_400, 65_480, 65_530, 65_536, 65_600, 100_000, 200_000]
      // One at a time, each delivered before the next: one publication per frame (the shared,
      // pre-framed path), not several joined into one frame per connection.
      for (const [i, n] of sizes.entries()) {
        await srv.gw.publish('frames', 'x'.repeat(n))
        for (const c of clients) await c.until(() => c.pubs('frames').length === i + 1, 10_000, `publication ${i}`)
      }
      for (const c of clients) {
        assert.deepEqual(
          c.pubs('frames').map((p) => (p.data as string).length),
          sizes,
        )
        assert.ok(c.pubs('frames').every((p) => /^x*$/.test(p.data as string)))
        assert.equal(c.closed, undefined)
        c.close()
      }
    })
  }
})
