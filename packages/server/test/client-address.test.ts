/**
 * trustProxy: the client's address from X-Forwarded-For / X-Real-IP, believed only from trusted
 * hops, over real sockets: a gateway on a real node:http server, `ws` clients from 127.0.0.x
 * source addresses sending the headers a proxy (or a client pretending to be one) would send. The
 * address the gateway settles on is what the `connect` event, the per-IP limits and the refusal
 * log see.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { jsonCodec } from '@holdfast/protocol'
import { clientAddress, resolveTrustProxy } from '../src/client-address.js'
import { connectedAddress } from './address-helpers.js'
import { serverPerTest, type TestServer } from './helpers.js'

/** Open a WebSocket from `localAddress` with `headers`, connect, and return the address the gateway gave the connection. */
function addressSeen(srv: TestServer, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<string> {
  return connectedAddress(srv.gw, new WebSocket(srv.url, [jsonCodec.subprotocol], { headers, localAddress }))
}

/** The HTTP status of an upgrade (101 when accepted). */
async function upgradeStatus(srv: TestServer, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<{ status: number; ws: WebSocket }> {
  const ws = new WebSocket(srv.url, [jsonCodec.subprotocol], { headers, localAddress })
  ws.on('error', () => {})
  return new Promise((resolve) => {
    ws.once('upgrade', () => resolve({ status: 101, ws }))
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, ws }))
  })
}

describe('resolveTrustProxy', () => {
  test('takes a list or a comma-separated string, with named ranges; nothing trusted by default', () => {
    assert.equal(resolveTrustProxy(undefined), undefined)
    assert.equal(resolveTrustProxy(''), undefined)
    const t = resolveTrustProxy(' 10.0.0.0/8, loopback ,2001:db8::/32')
    assert.ok(t !== undefined)
    assert.deepEqual(t.list, ['10.0.0.0/8', 'loopback', '2001:db8::/32'])
    assert.equal(t.trusts('10.1.2.3'), true)
    assert.equal(t.trusts('127.0.0.1'), true)
    assert.equal(t.trusts('::ffff:10.0.0.1'), true, 'an IPv4-mapped peer matches its IPv4 range')
    assert.equal(t.trusts('2001:db8::5'), true)
    assert.equal(t.trusts('11.0.0.1'), false)
    assert.equal(t.trusts('not-an-ip'), false)
    assert.deepEqual(resolveTrustProxy(['192.168.0.0/16'])?.list, ['192.168.0.0/16'])
  })

  test('an entry that is not an address, a CIDR or a named range is a TypeError naming the option', () => {
    assert.throws(() => resolveTrustProxy('10.0.0.0/8,nginx'), { name: 'TypeError', message: /"trustProxy".*invalid IP address: nginx/ })
    assert.throws(() => resolveTrustProxy('10.0.0.0/33'), { name: 'TypeError', message: /invalid range/ })
    assert.throws(() => resolveTrustProxy(42), { name: 'TypeError', message: /"trustProxy" must be a list of CIDRs/ })
  })
})

describe('clientAddress', () => {
  const req = (remoteAddress: string, headers: Record<string, string> = {}): Parameters<typeof clientAddress>[0] => ({ headers, socket: { remoteAddress } })
  const lb = resolveTrustProxy('10.0.0.0/8')

  test('walks X-Forwarded-For right to left past trusted hops, and never further', () => {
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '203.0.113.7' }), lb), '203.0.113.7')
    // The client wrote the first entry itself; the hop nginx added is the one to believe.
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '1.1.1.1, 203.0.113.7' }), lb), '203.0.113.7')
    // Two trusted hops (an L7 balancer in front of nginx).
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '198.51.100.1, 10.9.9.9' }), lb), '198.51.100.1')
    // Every hop trusted: the leftmost is the origin.
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '10.1.1.1, 10.2.2.2' }), lb), '10.1.1.1')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '::ffff:203.0.113.9' }), lb), '203.0.113.9')
  })

  test('headers from an untrusted peer, or with nobody trusted, are ignored', () => {
    assert.equal(clientAddress(req('198.51.100.4', { 'x-forwarded-for': '203.0.113.7', 'x-real-ip': '203.0.113.8' }), lb), '198.51.100.4')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '203.0.113.7' }), undefined), '10.0.0.5')
    assert.equal(clientAddress(req('::ffff:10.0.0.5'), undefined), '10.0.0.5')
  })

  test('X-Real-IP when there is no X-Forwarded-For; an entry that is not an address stops at the last trusted hop', () => {
    assert.equal(clientAddress(req('10.0.0.5', { 'x-real-ip': '203.0.113.8' }), lb), '203.0.113.8')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-real-ip': 'garbage' }), lb), '10.0.0.5')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': 'garbage' }), lb), '10.0.0.5')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': '203.0.113.7:4431' }), lb), '10.0.0.5')
    assert.equal(clientAddress(req('10.0.0.5', { 'x-forwarded-for': 'garbage, 10.3.3.3' }), lb), '10.3.3.3')
  })
})

describe('trustProxy on a live gateway (real sockets)', () => {
  const fixture = serverPerTest()

  test('a trusted hop names the client; the same headers from an untrusted source address are ignored', async () => {
    // 127.0.0.1 is the proxy; 127.0.0.2 is a client that connects directly and lies.
    const srv = await fixture.start({ trustProxy: ['127.0.0.1'] })
    assert.equal(await addressSeen(srv, { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' }), '203.0.113.7')
    assert.equal(await addressSeen(srv, { 'x-real-ip': '203.0.113.8' }), '203.0.113.8')
    assert.equal(await addressSeen(srv, { 'x-forwarded-for': '203.0.113.7' }, '127.0.0.2'), '127.0.0.2')
    assert.equal(await addressSeen(srv, {}), '127.0.0.1')
  })

  test('without trustProxy every header is ignored', async () => {
    const srv = await fixture.start()
    assert.equal(await addressSeen(srv, { 'x-forwarded-for': '203.0.113.7', 'x-real-ip': '203.0.113.8' }), '127.0.0.1')
  })

  test('per-IP limits count each client behind the proxy, not the proxy', async () => {
    const srv = await fixture.start({ trustProxy: 'loopback', maxConnectionsPerIp: 2 })
    const open: WebSocket[] = []
    try {
      for (let i = 0; i < 2; i++) {
        const r = await upgradeStatus(srv, { 'x-forwarded-for': '203.0.113.1' })
        open.push(r.ws)
        assert.equal(r.status, 101)
      }
      const third = await upgradeStatus(srv, { 'x-forwarded-for': '203.0.113.1' })
      open.push(third.ws)
      assert.equal(third.status, 429, 'the third connection of one client is refused')
      // Other clients behind the same proxy are not affected by that one.
      for (const client of ['203.0.113.2', '203.0.113.3']) {
        const r = await upgradeStatus(srv, { 'x-forwarded-for': client })
        open.push(r.ws)
        assert.equal(r.status, 101, client)
      }
      assert.equal(srv.gw.counters.get('connections_rejected', 'too_many_connections'), 1)
    } finally {
      for (const ws of open) ws.terminate()
    }
  })

  test('a bad trustProxy is refused when the gateway is created', async () => {
    await assert.rejects(() => fixture.start({ trustProxy: ['10.0.0.0/8', 'not-an-address'] }), { name: 'TypeError', message: /trustProxy/ })
  })
})
