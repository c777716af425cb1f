// The command budget a connect reply advertises (`limits.commandsPerSecond`, `commandBurst`) is
// the whole bucket: the connect itself is not counted, so a client that mirrors the bucket from
// the reply on and sends exactly what the mirror allows is never refused (docs/protocol.md).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { RawClient, startServer, type TestServer } from './helpers.js'

type Reply = { id: number; error?: { code: number } }

describe('command rate: the advertised budget', () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer()
  })
  after(async () => {
    await srv.close()
  })

  /** Send `n` pings in frames of `maxBatch`, all at once, and resolve with their replies. */
  async function burst(c: RawClient, n: number, maxBatch: number, firstId: number): Promise<Reply[]> {
    const replies: Reply[] = []
    const done = new Promise<void>((resolve) => {
      c.ws.prependListener('message', (data: Buffer) => {
        for (const m of c.codec.decodeServer(data.toString())) if ('id' in m && m.id >= firstId && m.id < firstId + n) replies.push(m as Reply)
        if (replies.length === n) resolve()
      })
    })
    for (let i = 0; i < n; i += maxBatch) {
      c.ws.send(Array.from({ length: Math.min(maxBatch, n - i) }, (_, j) => JSON.stringify({ id: firstId + i + j, type: 'ping' })).join('\n'))
    }
    await done
    return replies
  }

  it('a burst of exactly commandBurst right after the connect reply: none refused', async () => {
    const c = new RawClient(srv.url)
    const r = (await c.connect()) as unknown as { limits: { commandsPerSecond: number; commandBurst: number; maxBatch: number } }
    assert.deepEqual([r.limits.commandsPerSecond, r.limits.commandBurst], [100, 200])
    const before = srv.gw.counters.get('rate_limited', 'commands')
    const replies = await burst(c, r.limits.commandBurst, r.limits.maxBatch, 1000)
    assert.deepEqual(replies.filter((x) => x.error !== undefined).map((x) => x.error?.code), [])
    assert.equal(srv.gw.counters.get('rate_limited', 'commands'), before)
    c.close()
  })

  it('paced at the advertised rate, then idle half a second, then a burst of what the idle refilled: none refused', async () => {
    const c = new RawClient(srv.url)
    const r = (await c.connect()) as unknown as { limits: { commandsPerSecond: number; commandBurst: number; maxBatch: number } }
    const { commandsPerSecond: rate, commandBurst: size, maxBatch } = r.limits
    // Empty the bucket, as a client flushing a queue would.
    let refused = (await burst(c, size, maxBatch, 1000)).filter((x) => x.error !== undefined)
    // Idle (measured from the last reply, so the server saw at least this much), then take exactly the refill.
    await new Promise((res) => setTimeout(res, 500))
    refused = refused.concat((await burst(c, Math.floor((rate * 500) / 1000), maxBatch, 5000)).filter((x) => x.error !== undefined))
    assert.deepEqual(refused.map((x) => x.error?.code), [])
    // And the budget is real: far past it, commands are refused.
    const past = await burst(c, size, maxBatch, 9000)
    assert.ok(past.some((x) => x.error?.code === ErrorCodes.rate_limited.code), 'a burst past the budget is refused')
    c.close()
  })
})
