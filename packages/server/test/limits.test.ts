import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import WebSocket from 'ws'
import { mintToken } from '../src/auth/mint.js'
import { TEST_TRANSPORT, expectClosedWith, rawRequest, tryUpgrade, turn, waitFor, serverPerTest, type UpgradeOutcome } from './helpers.js'

interface ErrorReply {
  id: number
  error: { code: number; message: string; temporary: boolean }
}

function errorOf(reply: unknown): ErrorReply['error'] {
  const e = (reply as Partial<ErrorReply>).error
  assert.ok(e !== undefined, `expected an error reply, got ${JSON.stringify(reply)}`)
  return e
}

function resultOf<T = Record<string, unknown>>(reply: unknown): T {
  const r = reply as { result?: T; error?: unknown }
  assert.equal(r.error, undefined, `expected a result, got ${JSON.stringify(reply)}`)
  return r.result as T
}

function isOpen(o: UpgradeOutcome): o is { ws: WebSocket } {
  return 'ws' in o
}

function statusOf(o: UpgradeOutcome): number {
  if (isOpen(o)) {
    o.ws.terminate()
    return 101
  }
  return o.status
}

describe('limits', () => {
  const fx = serverPerTest()
  const { client, start } = fx

  describe('maxPayload', () => {
    for (const protocol of ['json', 'msgpack'] as const) {
      it(`accepts data of exactly maxPayload bytes in its larger encoding and refuses one byte more (${protocol})`, async () => {
        const s = await start()
        const max = s.gw.options.maxPayload
        assert.equal(max, 64 * 1024, 'the default maxPayload is 64 KiB')
        // JSON: a string of n characters encodes as n + 2 bytes (quotes). MessagePack: a str16 header
        // is 3 bytes up to 65535 characters, a str32 header 5 bytes beyond. The larger of the two
        // counts, whatever the publisher speaks: subscribers of both codecs get it.
        const exact = 'x'.repeat(max - 3)
        const over = 'x'.repeat(max - 2)
        const pub = client(s.url, { protocol })
        const sub = client(s.url, { protocol })
        const other = client(s.url, { protocol })
        await Promise.all([pub.connect(), sub.connect(), other.connect()])
        await sub.call({ type: 'subscribe', channel: 'big' })
        await other.call({ type: 'subscribe', channel: 'other' })

        const ok = resultOf<{ offset: number }>(await pub.request({ type: 'publish', channel: 'big', data: exact, msgId: 'exact' }))
        assert.equal(ok.offset, 1)
        await sub.until(() => sub.pubs('big').length === 1, 5000, 'the maxPayload publication')
        assert.equal((sub.pubs('big')[0]?.data as string).length, exact.length)

        const tooBig = errorOf(await pub.request({ type: 'publish', channel: 'big', data: over, msgId: 'over' }))
        assert.equal(tooBig.code, ErrorCodes.payload_too_large.code)
        assert.equal(tooBig.temporary, false)
        assert.equal(s.gw.counters.get('payload_too_large'), 1)
        // RPC data is bounded the same way.
        const rpcTooBig = errorOf(await pub.request({ type: 'rpc', method: 'anything', data: over, msgId: 'r-over' }))
        assert.equal(rpcTooBig.code, ErrorCodes.payload_too_large.code)

        // The connection is still usable and nothing was stored for the refused publish.
        const next = resultOf<{ offset: number }>(await pub.request({ type: 'publish', channel: 'big', data: 'small', msgId: 'after' }))
        assert.equal(next.offset, 2, 'the refused publish took no offset')
        await sub.until(() => sub.pubs('big').length === 2)
        assert.deepEqual(sub.pubs('big').map((p) => p.offset), [1, 2])
        assert.equal(sub.pubs('big')[1]?.data, 'small')
        // Another client on the same node is unaffected.
        await pub.call({ type: 'publish', channel: 'other', data: 'hello', msgId: 'o1' })
        await other.until(() => other.pubs('other').length === 1)
        assert.equal(pub.closed, undefined)
        assert.equal(sub.closed, undefined)
      })
    }

    it('closes with 1009 on a frame far bigger than maxPayload plus the envelope, leaving others alone', async () => {
      const s = await start()
      const bad = client(s.url)
      const good = client(s.url)
      await Promise.all([bad.connect(), good.connect()])
      await good.call({ type: 'subscribe', channel: 'ch' })
      bad.sendRaw({ id: 9, type: 'publish', channel: 'ch', data: 'y'.repeat(4 * s.gw.options.maxPayload), msgId: 'huge' })
      // ws refuses the frame while reading its header: holdfast never sees it, so no disconnect push.
      // uWS drops the TCP connection without a close frame: the client sees 1006.
      await expectClosedWith(bad, TEST_TRANSPORT === 'uws' ? 1006 : CloseCodes.message_too_big.code, { push: false })
      await waitFor(() => s.gw.connectionCount === 1, 2000, 'the server to drop the connection')
      await good.call({ type: 'publish', channel: 'ch', data: 1, msgId: 'g1' })
      await good.until(() => good.pubs('ch').length === 1)
      assert.equal(good.pubs('ch')[0]?.offset, 1, 'the huge publish stored nothing')
    })
  })

  it('maxSubscriptionsPerConnection: the one past the limit gets 106 and the connection stays', async () => {
    const s = await start({ maxSubscriptionsPerConnection: 3 })
    const c = client(s.url)
    await c.connect()
    for (const ch of ['a', 'b', 'c']) await c.call({ type: 'subscribe', channel: ch })
    const e = errorOf(await c.request({ type: 'subscribe', channel: 'd' }))
    assert.equal(e.code, ErrorCodes.limit_exceeded.code)
    assert.equal(s.gw.counters.get('limit_exceeded', 'subscriptions'), 1)
    assert.equal(s.gw.hub.subscriberCount('d'), 0, 'the refused subscription left nothing in the hub')
    // Freeing a slot makes room again.
    await c.call({ type: 'unsubscribe', channel: 'a' })
    await c.call({ type: 'subscribe', channel: 'd' })
    await s.gw.publish('d', 'ok')
    await c.until(() => c.pubs('d').length === 1)
    assert.equal(c.closed, undefined)
  })

  it('bytes from a MessagePack publisher are sized as JSON subscribers would get them', async () => {
    const s = await start()
    const pub = client(s.url, { protocol: 'msgpack' })
    await pub.connect()
    // 60,000 bytes are 60,005 in MessagePack, and far more than 64 KiB as JSON.
    const tooBig = errorOf(await pub.request({ type: 'publish', channel: 'bin', data: new Uint8Array(60_000), msgId: 'b1' }))
    assert.equal(tooBig.code, ErrorCodes.payload_too_large.code)
    resultOf(await pub.request({ type: 'publish', channel: 'bin', data: new Uint8Array(1000), msgId: 'b2' }))
    assert.equal((await s.gw.history('bin')).publications.length, 1)
  })

  describe('command rate', () => {
    it('the 6th immediate command gets 110 (temporary); the bucket refills', async () => {
      const s = await start({ commandRate: { perSecond: 5, burst: 5 } })
      const c = client(s.url)
      await c.connect() // not counted: the bucket is full at the connect reply
      const replies = await Promise.all([1, 2, 3, 4, 5, 6].map(() => c.request({ type: 'ping' })))
      for (const r of replies.slice(0, 5)) resultOf(r)
      const e = errorOf(replies[5])
      assert.equal(e.code, ErrorCodes.rate_limited.code)
      assert.equal(e.temporary, true)
      assert.equal(s.gw.counters.get('rate_limited', 'commands'), 1)
      // 5 tokens per second: one is back after 200 ms. Waiting is the behaviour under test here.
      await new Promise((r) => setTimeout(r, 260))
      resultOf(await c.request({ type: 'ping' }))
      assert.equal(c.closed, undefined, 'a single refusal does not close')
    })

    it('a flood of refusals beyond the burst closes with 4002; other clients are unaffected', async () => {
      const s = await start({ commandRate: { perSecond: 5, burst: 5 } })
      const flooder = client(s.url)
      const calm = client(s.url)
      await Promise.all([flooder.connect(), calm.connect()])
      await calm.call({ type: 'subscribe', channel: 'calm' })
      for (let i = 0; i < 40; i++) flooder.sendRaw({ id: 100 + i, type: 'ping' })
      await expectClosedWith(flooder, CloseCodes.rate_limited.code)
      // 5 tokens after connect; then burst + 1 consecutive refusals close the connection.
      assert.equal(s.gw.counters.get('rate_limited', 'commands'), 6)
      await calm.call({ type: 'publish', channel: 'calm', data: 1, msgId: 'c1' })
      await calm.until(() => calm.pubs('calm').length === 1)
      assert.equal(calm.closed, undefined)
    })

    it('the pong a ping asks for is free; unsolicited pongs are commands, and a pong flood closes with 4002', async () => {
      const s = await start({ commandRate: { perSecond: 5, burst: 5 }, pingIntervalMs: 100, pongTimeoutMs: 2000 })
      const heartbeating = client(s.url)
      await heartbeating.connect()
      // Five pings answered with the bucket empty: a ping's pong never takes a token.
      for (let i = 0; i < 5; i++) heartbeating.sendRaw({ id: 50 + i, type: 'ping' })
      await heartbeating.until(() => heartbeating.pushes.filter((p) => p.type === 'ping').length >= 5, 5000, 'five pings')
      assert.equal(heartbeating.closed, undefined, 'answered pings never close a connection with an empty bucket')
      assert.equal(s.gw.counters.get('rate_limited', 'commands'), 0)
      const flooder = client(s.url)
      await flooder.connect()
      flooder.answerPings = false
      for (let i = 0; i < 50; i++) flooder.sendRaw({ type: 'pong' })
      await expectClosedWith(flooder, CloseCodes.rate_limited.code)
      // 5 tokens after connect; then burst + 1 unsolicited pongs past the bucket close it.
      assert.equal(s.gw.counters.get('rate_limited', 'commands'), 6)
      assert.equal(heartbeating.closed, undefined)
    })
  })

  describe('inbound byte rate', () => {
    const BYTES = { perSecond: 40_000, burst: 100_000 }
    it('a frame past the byte budget is refused whole with 110; small commands pass again once it refills', async () => {
      const s = await start({ maxPayload: 70_000, inboundByteRate: BYTES })
      const c = client(s.url)
      const r = await c.connect()
      assert.deepEqual((r as unknown as { limits: Record<string, number> }).limits.bytesPerSecond, BYTES.perSecond)
      const big = 'x'.repeat(60_000)
      resultOf(await c.request({ type: 'publish', channel: 'b', data: big, msgId: 'm1' }))
      const second = errorOf(await c.request({ type: 'publish', channel: 'b', data: big, msgId: 'm2' }))
      assert.equal(second.code, ErrorCodes.rate_limited.code)
      assert.equal(s.gw.counters.get('rate_limited', 'bytes'), 1)
      assert.equal((await s.gw.history('b')).publications.length, 1, 'the refused publish was not stored')
      // 40 kB/s: a 60 kB frame fits again after at most 1.5 s.
      let ok = false
      for (let i = 0; i < 40 && !ok; i++) {
        await new Promise((res) => setTimeout(res, 100))
        ok = !('error' in (await c.request({ type: 'publish', channel: 'b', data: big, msgId: 'm2' })))
      }
      assert.ok(ok, 'the publish passes once the bucket refilled')
      assert.equal(c.closed, undefined)
    })

    it('publishers within their command rate but past the byte rate are refused, and a reading subscriber keeps up', async () => {
      const s = await start({ inboundByteRate: { perSecond: 100_000, burst: 200_000 }, maxQueueBytes: 256 * 1024 })
      const sub = client(s.url)
      await sub.connect()
      await sub.call({ type: 'subscribe', channel: 'flood' })
      const pubs = [client(s.url), client(s.url), client(s.url)]
      await Promise.all(pubs.map((p) => p.connect()))
      const data = 'y'.repeat(60_000)
      const replies = await Promise.all(
        pubs.flatMap((p, i) => Array.from({ length: 20 }, (_, j) => p.request({ type: 'publish', channel: 'flood', data, msgId: `${i}-${j}` }))),
      )
      const stored = replies.filter((x) => !('error' in x)).length
      // Each publisher gets its burst (3 x 60 kB frames) and no more within the run.
      assert.ok(stored <= 3 * 4, `at most the byte burst was stored, got ${stored}`)
      assert.ok(s.gw.counters.get('rate_limited', 'bytes') >= 60 - stored)
      await sub.until(() => sub.pubs('flood').length === stored, 10_000, 'every stored publication delivered')
      assert.equal(sub.closed, undefined, 'the subscriber was not evicted')
    })

    it('a burst smaller than the largest frame is refused as an option', async () => {
      const { Gateway } = await import('../src/gateway.js')
      assert.throws(() => new Gateway({ logger: false, maxPayload: 65_536, inboundByteRate: { perSecond: 1000, burst: 1000 } }), /inboundByteRate\.burst/)
    })
  })

  describe('per-IP limits', () => {
    it('maxConnectionsPerIp: the (N+1)th upgrade from one address gets 429 with no WebSocket; another address is accepted', async () => {
      const s = await start({ maxConnectionsPerIp: 3 })
      const open = [client(s.url), client(s.url), client(s.url)]
      await Promise.all(open.map((c) => c.connect()))
      const refused = await tryUpgrade(s.url)
      assert.ok(!isOpen(refused), 'the fourth upgrade was refused')
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['retry-after'], '1')
      assert.equal(JSON.parse(refused.body).error.code, 'too_many_connections')
      assert.equal(s.gw.connectionCount, 3, 'no connection object was created for the refused upgrade')
      assert.equal(s.gw.counters.get('connections_rejected', 'too_many_connections'), 1)

      // 127.0.0.0/8 is all loopback on Linux: a second source address is a second client machine.
      const elsewhere = await tryUpgrade(s.url, { localAddress: '127.0.0.2' })
      assert.ok(isOpen(elsewhere), `an upgrade from 127.0.0.2 was refused: ${JSON.stringify(elsewhere)}`)
      fx.socket(elsewhere.ws)
      await waitFor(() => s.gw.connectionCount === 4)
      assert.ok([...s.gw.connections].some((conn) => conn.ip === '127.0.0.2'))

      // Closing one of the first three frees its slot.
      open[0]?.close()
      await waitFor(() => s.gw.connectionCount === 3, 2000, 'the closed connection to be released')
      const again = client(s.url)
      await again.connect()
    })

    it('an upgrade refused after the IP slot was taken (bad token) gives the slot back', async () => {
      const secret = 'limits-test-secret-0123456789'
      const s = await start({ maxConnectionsPerIp: 2, jwt: { secret } })
      for (let i = 0; i < 5; i++) {
        const r = await tryUpgrade(s.url, { headers: { authorization: 'Bearer not-a-token' } })
        assert.equal(statusOf(r), 401)
      }
      const token = await mintToken({ secret, sub: 'alice' })
      const a = client(s.url)
      const b = client(s.url)
      await a.connect({ token })
      await b.connect({ token })
      assert.equal(statusOf(await tryUpgrade(s.url)), 429)
    })

    it('an upgrade that ws itself refuses (bad handshake) gives the IP slot back', async () => {
      const s = await start({ maxConnectionsPerIp: 2 })
      for (const version of ['99', '7']) {
        const res = await rawRequest(
          s.port,
          `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: ${version}\r\n\r\n`,
        )
        assert.match(res, /^HTTP\/1\.1 400 /, `version ${version}: ${res.slice(0, 80)}`)
      }
      const a = client(s.url)
      const b = client(s.url)
      await a.connect()
      await b.connect()
      assert.equal(s.gw.connectionCount, 2)
    })

    it('connectRatePerIp: attempts beyond the burst get 429', async () => {
      const s = await start({ connectRatePerIp: { perSecond: 1, burst: 2 } })
      const outcomes = []
      for (let i = 0; i < 3; i++) {
        const o = await tryUpgrade(s.url)
        if (isOpen(o)) fx.socket(o.ws)
        outcomes.push(isOpen(o) ? 101 : o.status)
      }
      assert.deepEqual(outcomes, [101, 101, 429])
      assert.equal(s.gw.counters.get('connections_rejected', 'rate_limited'), 1)
      // The rate is per address.
      const other = await tryUpgrade(s.url, { localAddress: '127.0.0.3' })
      assert.ok(isOpen(other))
      fx.socket(other.ws)
    })
  })

  describe('maxConnections', () => {
    it('the upgrade past the node limit gets 503, and a freed slot is reusable', async () => {
      const s = await start({ maxConnections: 2 })
      const a = client(s.url)
      const b = client(s.url)
      await Promise.all([a.connect(), b.connect()])
      const refused = await tryUpgrade(s.url)
      assert.ok(!isOpen(refused))
      assert.equal(refused.status, 503)
      assert.equal(refused.headers['retry-after'], '1')
      assert.equal(JSON.parse(refused.body).error.code, 'node_full')
      a.close()
      await waitFor(() => s.gw.connectionCount === 1)
      await client(s.url).connect()
    })

    it('holds under concurrent upgrades', async () => {
      const s = await start({ maxConnections: 5 })
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => tryUpgrade(s.url)))
      for (const o of outcomes) if (isOpen(o)) fx.socket(o.ws)
      assert.equal(outcomes.filter(isOpen).length, 5)
      assert.equal(outcomes.filter((o) => !isOpen(o) && o.status === 503).length, 15)
      assert.equal(s.gw.connectionCount, 5)
    })

    it('holds under concurrent upgrades that carry a token (verified asynchronously)', async () => {
      const secret = 'limits-test-secret-0123456789'
      const s = await start({ maxConnections: 5, jwt: { secret } })
      const token = await mintToken({ secret, sub: 'alice' })
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => tryUpgrade(s.url, { headers: { authorization: `Bearer ${token}` } })))
      for (const o of outcomes) if (isOpen(o)) fx.socket(o.ws)
      assert.equal(outcomes.filter(isOpen).length, 5, 'no more than maxConnections upgrades may be accepted at once')
      assert.equal(s.gw.connectionCount, 5)
    })
  })

  it('slow consumer: a client that stops reading is closed with 4003; a reading client gets everything in order', async () => {
    const s = await start({ maxQueueBytes: 64 * 1024, channels: { default: { historySize: 100_000 } } })
    const slow = client(s.url)
    const fast = client(s.url)
    await Promise.all([slow.connect(), fast.connect()])
    const sub = await slow.call<{ epoch: string }>({ type: 'subscribe', channel: 'firehose' })
    await fast.call({ type: 'subscribe', channel: 'firehose' })
    // Stop reading at the TCP level: the kernel buffers fill, then the server's send queue grows.
    const tcp = (slow.ws as unknown as { _socket: Socket })._socket
    tcp.pause()

    const payload = 'z'.repeat(1024)
    const perTurn = 32 // ~35 KB per event-loop turn: under the queue bound, so only a backlog can trip it
    const cap = 60_000 // ~64 MB: far beyond any loopback socket buffering
    let published = 0
    while (s.gw.counters.get('slow_consumer_closes') === 0) {
      assert.ok(published < cap, `the paused client was not closed after ${published} publications`)
      for (let i = 0; i < perTurn; i++) void s.gw.publish('firehose', { n: ++published, payload })
      await turn()
      // Keep the reading client current, so it can never be the slow one.
      const target = published
      await fast.until(() => fast.pushes.length >= target, 10_000, `fast client to reach ${target}`)
    }
    assert.equal(s.gw.counters.get('slow_consumer_closes'), 1)
    // A few more after the close: they reach the reading client, not the closed one.
    for (let i = 0; i < 10; i++) await s.gw.publish('firehose', { n: ++published, payload })
    await fast.until(() => fast.pushes.length >= published)

    // Resume reading: the slow client drains what the kernel held, then the disconnect push and 4003.
    tcp.resume()
    await expectClosedWith(slow, CloseCodes.slow_consumer.code, { ms: 20_000 })
    const got = slow.pubs('firehose').map((p) => p.offset)
    assert.ok(got.length < published, 'the slow client did not get everything')
    assert.deepEqual(got, got.map((_, i) => i + 1), 'what the slow client got is a gap-free prefix')

    const fastOffsets = fast.pubs('firehose').map((p) => p.offset)
    assert.equal(fastOffsets.length, published)
    assert.ok(fastOffsets.every((o, i) => o === i + 1), 'the reading client got every publication in order')
    assert.equal(fast.closed, undefined)
    await waitFor(() => s.gw.connectionCount === 1, 5000, 'the slow connection to be gone')

    // It recovers on reconnect: exactly what it missed.
    const back = client(s.url)
    await back.connect()
    const last = got.at(-1) ?? 0
    const r = await back.call<{ recovered: boolean; publications: Array<{ offset: number }> }>({
      type: 'subscribe',
      channel: 'firehose',
      recover: { offset: last, epoch: sub.epoch },
    })
    assert.equal(r.recovered, true)
    assert.equal(r.publications.length, published - last)
    assert.equal(r.publications[0]?.offset, last + 1)
  })
})
