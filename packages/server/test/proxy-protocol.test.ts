/**
 * PROXY protocol v1/v2 on a real listener: a gateway on a node:http server with
 * acceptProxyProtocol, and raw TCP sockets that write what a load balancer writes (the header,
 * possibly one byte at a time, then the client's HTTP upgrade) or what an attacker would (a header
 * from a peer that is not a trusted balancer, a broken header). Headers are built with
 * proxy-protocol-js, the library the listener parses them with, and by hand for v1.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import WebSocket from 'ws'
import { IPv4Address, IPv4ProxyAddress, IPv6Address, IPv6ProxyAddress, Command, TransportProtocol, V2ProxyProtocol, UnspecProxyAddress } from 'proxy-protocol-js'
import { jsonCodec } from '@holdfast/protocol'
import { Gateway } from '../src/gateway.js'
import { connectedAddress } from './address-helpers.js'
import { resolveTrustProxy } from '../src/client-address.js'
import { acceptProxyProtocol, scanProxyHeader, type ProxyRefusal } from '../src/transport/proxy-protocol.js'

interface Fixture {
  gw: Gateway
  http: Server
  port: number
  refused: Array<{ reason: ProxyRefusal; peer: string }>
}

const servers: Fixture[] = []
after(async () => {
  for (const s of servers) {
    await s.gw.close({ drainMs: 0 })
    s.http.closeAllConnections()
    s.http.close()
  }
})

/** A gateway whose listener takes PROXY headers from `trust` (the balancer's addresses). */
async function start(trust: string, headerTimeoutMs = 5000): Promise<Fixture> {
  const trusted = resolveTrustProxy(trust)
  assert.ok(trusted !== undefined)
  const gw = new Gateway({ logger: false, trustProxy: trust })
  const http = createServer((req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end(`peer ${req.socket.remoteAddress}`)
  })
  gw.attach(http)
  const refused: Fixture['refused'] = []
  acceptProxyProtocol(http, { trusted, headerTimeoutMs, onRefused: (reason, peer) => refused.push({ reason, peer }) })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  await gw.ready()
  const f = { gw, http, port: (http.address() as AddressInfo).port, refused }
  servers.push(f)
  return f
}

function v1(src: string, family: 'TCP4' | 'TCP6' = 'TCP4'): Buffer {
  return Buffer.from(`PROXY ${family} ${src} ${family === 'TCP4' ? '10.0.0.1' : '2001:db8::1'} 51234 443\r\n`, 'latin1')
}

function v2ipv4(src: [number, number, number, number]): Buffer {
  const addr = new IPv4ProxyAddress(new IPv4Address(src), 51234, new IPv4Address([10, 0, 0, 1]), 443)
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, addr).build())
}

function v2ipv6(src: number[]): Buffer {
  const addr = new IPv6ProxyAddress(IPv6Address.createFrom(src), 51234, IPv6Address.createWithEmptyAddress(), 443)
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, addr).build())
}

/** A TCP socket from `localAddress` that has written `header` (in `chunks` pieces) before anything else. */
async function tcpWith(port: number, header: Buffer, opts: { localAddress?: string; chunks?: number } = {}): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress ?? '127.0.0.1' })
  await once(socket, 'connect')
  const chunks = opts.chunks ?? 1
  const size = Math.ceil(header.length / chunks)
  for (let i = 0; i < header.length; i += size) {
    socket.write(header.subarray(i, i + size))
    // Separate segments: the listener must reassemble the header.
    if (chunks > 1) await new Promise((r) => setTimeout(r, 5))
  }
  return socket
}

/** Upgrade over a socket that already carries `header`, connect, and return the address the gateway saw. */
async function addressThrough(f: Fixture, header: Buffer, opts: { localAddress?: string; chunks?: number; headers?: Record<string, string> } = {}): Promise<string> {
  const socket = await tcpWith(f.port, header, opts)
  return connectedAddress(f.gw, new WebSocket(`ws://127.0.0.1:${f.port}/ws`, [jsonCodec.subprotocol], { createConnection: () => socket, ...(opts.headers === undefined ? {} : { headers: opts.headers }) }))
}

/** A plain HTTP GET over a socket that carries `header` first: the body, or the error that ended it. */
async function getThrough(f: Fixture, header: Buffer, localAddress = '127.0.0.1'): Promise<string> {
  const socket = await tcpWith(f.port, header, { localAddress })
  socket.write('GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
  let out = ''
  socket.on('data', (d: Buffer) => (out += d.toString()))
  await new Promise((resolve) => socket.once('close', resolve))
  return out
}

describe('scanProxyHeader', () => {
  test('tells a header from HTTP after the first differing byte, and waits for the rest of a header', () => {
    assert.deepEqual(scanProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'none' })
    assert.deepEqual(scanProxyHeader(Buffer.from('G')), { kind: 'none' })
    assert.deepEqual(scanProxyHeader(Buffer.from('PROX')), { kind: 'more' })
    assert.deepEqual(scanProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2')), { kind: 'more' })
    assert.deepEqual(scanProxyHeader(v1('198.51.100.9')), { kind: 'header', length: v1('198.51.100.9').length, address: '198.51.100.9', port: 51234 })
    assert.deepEqual(scanProxyHeader(Buffer.from('PROXY UNKNOWN\r\nGET')), { kind: 'header', length: 15, address: undefined, port: undefined })
    const v2 = v2ipv4([203, 0, 113, 5])
    assert.deepEqual(scanProxyHeader(v2.subarray(0, 15)), { kind: 'more' })
    assert.deepEqual(scanProxyHeader(v2), { kind: 'header', length: v2.length, address: '203.0.113.5', port: 51234 })
  })

  test('refuses broken and oversized headers', () => {
    assert.equal(scanProxyHeader(Buffer.from('PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n')).kind, 'bad')
    assert.equal(scanProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)).kind, 'bad', 'a v1 line longer than 107 bytes')
    const huge = Buffer.from(v2ipv4([1, 2, 3, 4]))
    huge.writeUInt16BE(60_000, 14)
    assert.equal(scanProxyHeader(huge).kind, 'bad', 'a v2 header announcing 60 kB of TLVs')
    const badVersion = Buffer.from(v2ipv4([1, 2, 3, 4]))
    badVersion[12] = 0x31
    assert.equal(scanProxyHeader(badVersion).kind, 'bad')
  })

  test('v2 LOCAL (a balancer health check) names no client', () => {
    const local = Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress()).build())
    assert.deepEqual(scanProxyHeader(local), { kind: 'header', length: 16, address: undefined, port: undefined })
  })
})

describe('acceptProxyProtocol on a live gateway (real sockets)', () => {
  test('v1 and v2 (IPv4, IPv6, IPv4-mapped) from the trusted balancer name the client, also when split over many segments', async () => {
    const f = await start('127.0.0.1')
    assert.equal(await addressThrough(f, v1('198.51.100.9')), '198.51.100.9')
    assert.equal(await addressThrough(f, v1('2001:db8::77', 'TCP6')), '2001:db8::77')
    assert.equal(await addressThrough(f, v2ipv4([203, 0, 113, 5])), '203.0.113.5')
    assert.equal(await addressThrough(f, v2ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42])), '2001:db8::42')
    assert.equal(await addressThrough(f, v2ipv6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 44])), '192.0.2.44')
    assert.equal(await addressThrough(f, v1('198.51.100.10'), { chunks: 7 }), '198.51.100.10')
    assert.equal(await addressThrough(f, v2ipv4([203, 0, 113, 6]), { chunks: 5 }), '203.0.113.6')
    assert.deepEqual(f.refused, [])
  })

  test('the client behind PROXY is not a trusted hop: its own X-Forwarded-For is ignored', async () => {
    const f = await start('127.0.0.1')
    assert.equal(await addressThrough(f, v1('198.51.100.9'), { headers: { 'x-forwarded-for': '6.6.6.6' } }), '198.51.100.9')
  })

  test('a trusted peer without a header (a probe) is served with its own address; plain HTTP passes too', async () => {
    const f = await start('127.0.0.1')
    assert.equal(await addressThrough(f, Buffer.alloc(0)), '127.0.0.1')
    const body = await getThrough(f, v1('198.51.100.9'))
    assert.match(body, /^HTTP\/1\.1 200/)
    assert.match(body, /peer 198\.51\.100\.9$/, 'the HTTP side sees the client too')
    const res = await fetch(`http://127.0.0.1:${f.port}/x`)
    assert.equal(await res.text(), 'peer 127.0.0.1')
  })

  test('a header from a peer that is not a trusted balancer closes the connection before HTTP', async () => {
    // 127.0.0.1 is the balancer; 127.0.0.2 connects directly and claims another address.
    const f = await start('127.0.0.1')
    assert.equal(await getThrough(f, v1('203.0.113.66'), '127.0.0.2'), '')
    assert.deepEqual(f.refused, [{ reason: 'untrusted_header', peer: '127.0.0.2' }])
    // Without a header that peer is an ordinary client.
    assert.match(await getThrough(f, Buffer.alloc(0), '127.0.0.2'), /peer 127\.0\.0\.2$/)
  })

  test('a broken header, or one that stops half-way, closes the connection; the listener keeps serving', async () => {
    const f = await start('127.0.0.1', 300)
    assert.equal(await getThrough(f, Buffer.from('PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n')), '')
    const socket = await tcpWith(f.port, Buffer.from('PROXY TCP4 198.51'))
    await once(socket, 'close')
    assert.deepEqual(f.refused.map((r) => r.reason), ['bad_header', 'header_timeout'])
    assert.equal(await addressThrough(f, v1('198.51.100.9')), '198.51.100.9')
  })
})
