/**
 * Replies are bytes too: a history or recovery page holds at most maxReplyBytes, a read is refused
 * while earlier replies are still buffered, a socket that stops draining is closed even when its
 * client answers pings blindly, and a far-behind client that reads still recovers everything.
 */
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import type { Connection } from '../src/connection.js'
import { RawClient, serverPerTest, waitFor } from './helpers.js'

const BLOB = 'x'.repeat(60_000)
const PAGE = 200_000

async function fill(gw: { publish(channel: string, data: unknown): Promise<unknown> }, channel: string, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await gw.publish(channel, { i, blob: BLOB })
}

function serverSide(gw: { connections: Set<Connection> }): Connection {
  const [conn] = [...gw.connections]
  assert.ok(conn !== undefined)
  return conn
}

describe('reply budget', () => {
  const fx = serverPerTest()

  it('history pages by bytes: each page fits maxReplyBytes, and since= the last offset reads the rest', async () => {
    const { url, gw } = await fx.start({ maxReplyBytes: PAGE })
    await fill(gw, 'h', 10)
    const c = fx.client(url)
    await c.connect()
    type Page = { offset: number; epoch: string; publications: Array<{ offset: number; data: { i: number } }> }
    const latest = await c.call<Page>({ type: 'history', channel: 'h', limit: 10 })
    assert.deepEqual(latest.publications.map((p) => p.offset), [8, 9, 10], 'the newest that fit')
    const seen: number[] = []
    let since = { offset: 0, epoch: latest.epoch }
    for (let round = 0; round < 40 && since.offset < latest.offset; round++) {
      const reply = (await c.request({ type: 'history', channel: 'h', since, limit: 10 })) as { result?: Page; error?: { code: number } }
      if (reply.error !== undefined) {
        // Read faster than maxReplyBytes per second: back off, as the SDK does.
        assert.equal(reply.error.code, ErrorCodes.rate_limited.code)
        await new Promise((r) => setTimeout(r, 250))
        continue
      }
      const page = reply.result as Page
      assert.ok(page.publications.length >= 1 && page.publications.length <= 3, `page of ${page.publications.length}`)
      seen.push(...page.publications.map((p) => p.offset))
      since = { offset: page.publications.at(-1)?.offset ?? since.offset, epoch: page.epoch }
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  it('a client that asks for history and does not read holds at most about a page: later reads are refused', async () => {
    const { url, gw } = await fx.start({ maxReplyBytes: PAGE, pingIntervalMs: 60_000 })
    await fill(gw, 'h', 30)
    const c = fx.client(url)
    await c.connect()
    ;(c.ws as unknown as { _socket: Socket })._socket.pause()
    // 200 history commands of 1.8 MB each, about 360 MB if they were all answered.
    for (let i = 0; i < 200; i++) c.sendRaw({ id: 1000 + i, type: 'history', channel: 'h', limit: 30 })
    await waitFor(() => gw.counters.messagesIn >= 201, 10_000, 'every read to arrive')
    const conn = serverSide(gw)
    await waitFor(() => !conn.readBusy, 10_000, 'the read lane to empty')
    // What the node holds for this client beyond the kernel's socket buffer: about a page.
    assert.ok(conn.socket.bufferedAmount <= 3 * PAGE, `buffered ${conn.socket.bufferedAmount}`)
    const answered = (gw.counters.bytesOut - 200) / 180_000
    assert.ok(answered < 40, `about ${answered.toFixed(0)} history pages were sent, not 200`)
    assert.ok(gw.counters.get('rate_limited', 'replies') >= 160)
  })

  it('a socket that takes nothing for a ping interval is closed as a slow consumer, even when its client answers pings blindly', async () => {
    const { url, gw } = await fx.start({ pingIntervalMs: 300, pongTimeoutMs: 5000 })
    const c = fx.client(url)
    await c.connect()
    await c.call({ type: 'subscribe', channel: 'p' })
    ;(c.ws as unknown as { _socket: Socket })._socket.pause()
    const blind = setInterval(() => c.sendRaw({ type: 'pong' }), 50)
    try {
      // Publications until the kernel takes no more and some wait in the node, below maxQueueBytes.
      const conn = serverSide(gw)
      for (let i = 0; i < 1000 && conn.socket.bufferedAmount < 100_000; i++) {
        await gw.publish('p', BLOB)
        await new Promise((r) => setTimeout(r, 5))
      }
      assert.ok(conn.socket.bufferedAmount > 0 && conn.socket.bufferedAmount < gw.options.maxQueueBytes)
      await waitFor(() => gw.counters.get('slow_consumer_closes') === 1, 10_000, 'the slow-consumer close')
      await waitFor(() => gw.connectionCount === 0, 5_000, 'the connection to be gone')
    } finally {
      clearInterval(blind)
    }
  })

  it('a far-behind client recovers everything in pages and then goes live, each publication once and in order', async () => {
    const { url, gw } = await fx.start({ maxReplyBytes: PAGE })
    const c = fx.client(url)
    await c.connect()
    const sub = await c.call<{ epoch: string; offset: number }>({ type: 'subscribe', channel: 'r' })
    await fill(gw, 'r', 2)
    await c.until(() => c.pubs('r').length === 2)
    await c.call({ type: 'unsubscribe', channel: 'r' })
    await fill(gw, 'r', 40) // 2.4 MB missed: 12 pages of 200 kB
    const got: number[] = c.pubs('r').map((p) => p.offset)
    const reply = c.request({ type: 'subscribe', channel: 'r', recover: { epoch: sub.epoch, offset: 2 } })
    // Live publications keep coming while the recovery is read.
    const live = (async () => {
      for (let i = 0; i < 5; i++) await gw.publish('r', { live: i })
    })()
    const result = (await reply) as unknown as { result: { recovered: boolean; offset: number; publications: Array<{ offset: number }> } }
    assert.equal(result.result.recovered, true)
    assert.ok(result.result.publications.length <= 4, 'the reply is one page')
    assert.equal(result.result.offset, result.result.publications.at(-1)?.offset, 'offset: where the client stands after this reply')
    got.push(...result.result.publications.map((p) => p.offset))
    await live
    await c.until(() => c.pubs('r').length >= 2 + (47 - 2 - result.result.publications.length), 20_000, 'the rest of the recovery and the live ones')
    got.push(...c.pubs('r').slice(2).map((p) => p.offset))
    assert.deepEqual(got, Array.from({ length: 47 }, (_, i) => i + 1))
    assert.equal(c.closed, undefined)
  })

  it('a client that stops reading in the middle of a paged recovery is closed, and the channel is left clean', async () => {
    const { url, gw } = await fx.start({ maxReplyBytes: PAGE, pingIntervalMs: 300, pongTimeoutMs: 5000 })
    const c = fx.client(url)
    await c.connect()
    const sub = await c.call<{ epoch: string }>({ type: 'subscribe', channel: 'r' })
    await c.call({ type: 'unsubscribe', channel: 'r' })
    await fill(gw, 'r', 200) // 12 MB: more than the socket buffers take
    const stalled = new RawClient(url)
    c.close()
    await stalled.connect()
    ;(stalled.ws as unknown as { _socket: Socket })._socket.pause()
    const blind = setInterval(() => stalled.sendRaw({ type: 'pong' }), 50)
    try {
      stalled.sendRaw({ id: 7, type: 'subscribe', channel: 'r', recover: { epoch: sub.epoch, offset: 0 } })
      await waitFor(() => gw.counters.get('slow_consumer_closes') === 1, 15_000, 'the slow-consumer close')
      await waitFor(() => gw.connectionCount === 0 && gw.hub.size === 0, 5_000, 'nothing left behind')
    } finally {
      clearInterval(blind)
      stalled.close()
    }
  })
})
