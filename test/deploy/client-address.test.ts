/**
 * Real client addresses with `holdfast serve` as deployed: behind the deploy/nginx template with
 * `--trust-proxy`, the per-IP limits count each client, not nginx; with `--proxy-protocol`, a
 * TCP balancer's PROXY header names the client, and a header from anyone else is refused and
 * counted. Real processes, real nginx, clients from several loopback source addresses.
 */
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { startServe } from '../../packages/cli/test/helpers.js'
import { NGINX, requireBinary } from '../multinode/fleet.js'
import { Nginx } from '../multinode/nginx.js'

/** The HTTP status an upgrade through `url` from `localAddress` gets (101: accepted); the socket stays open. */
function upgrade(url: string, localAddress: string, open: WebSocket[]): Promise<number> {
  const ws = new WebSocket(url, { localAddress })
  open.push(ws)
  ws.on('error', () => {})
  return new Promise((resolve) => {
    ws.once('upgrade', () => resolve(101))
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
  })
}

/** Write raw bytes (a PROXY header, then an HTTP request) from `localAddress`; what came back before the close. */
async function raw(port: number, localAddress: string, bytes: string): Promise<string> {
  const s = connect({ port, host: '127.0.0.1', localAddress })
  await once(s, 'connect')
  s.write(bytes)
  let out = ''
  s.on('data', (d: Buffer) => (out += d.toString()))
  s.on('error', () => {})
  await once(s, 'close')
  return out
}

describe('client addresses with holdfast serve', () => {
  test('behind nginx with --trust-proxy, per-IP limits count each client, not nginx', async (t) => {
    if (!requireBinary(t, NGINX, 'nginx')) return
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-trust-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ maxConnectionsPerIp: 3 }))
    const node = await startServe(['--trust-proxy', '127.0.0.1', '--config', join(dir, 'c.json'), '--log-level', 'info'])
    t.after(() => node.child.kill('SIGKILL'))
    const nginx = await Nginx.start(t, [node.url.replace('http://', '')])
    const url = `ws://127.0.0.1:${nginx.port}/ws`
    const open: WebSocket[] = []
    t.after(() => open.forEach((ws) => ws.terminate()))
    // Three clients, each from its own address, all through the one nginx.
    for (const client of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      for (let i = 0; i < 3; i++) assert.equal(await upgrade(url, client, open), 101, `${client} connection ${i + 1}`)
    }
    // Each client's fourth is over its own limit; nobody else's is affected.
    assert.equal(await upgrade(url, '127.0.0.2', open), 429)
    assert.equal(await upgrade(url, '127.0.0.5', open), 101)
    // The refusal is logged with the client's address, not nginx's.
    await node.waitForLine(/"msg":"connection refused"/, 5000)
    const refused = node.stdout().split('\n').filter((l) => l.includes('"connection refused"')).map((l) => JSON.parse(l) as { ip: string; reason: string })
    assert.deepEqual(refused.map((r) => [r.ip, r.reason]), [['127.0.0.2', 'too_many_connections']])
  })

  test('--proxy-protocol: a trusted balancer names the client; a header from anyone else is refused and counted', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-proxyproto-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ maxConnectionsPerIp: 1 }))
    const node = await startServe(['--proxy-protocol', '--trust-proxy', '127.0.0.1', '--config', join(dir, 'c.json'), '--log-level', 'info'])
    t.after(() => node.child.kill('SIGKILL'))
    const port = Number(new URL(node.url).port)
    const get = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    // The balancer (127.0.0.1) with a header, and a probe without one: both served.
    assert.match(await raw(port, '127.0.0.1', `PROXY TCP4 198.51.100.7 10.0.0.1 40000 8080\r\n${get}`), /^HTTP\/1\.1 200/)
    assert.match(await raw(port, '127.0.0.1', get), /^HTTP\/1\.1 200/)
    // Someone else claiming an address: closed before HTTP.
    assert.equal(await raw(port, '127.0.0.9', `PROXY TCP4 203.0.113.1 10.0.0.1 40000 8080\r\n${get}`), '')
    // WebSockets through the balancer: one per client (maxConnectionsPerIp 1), distinct clients by their PROXY address.
    const upgradeVia = (client: string): Promise<string> =>
      raw(port, '127.0.0.1', `PROXY TCP4 ${client} 10.0.0.1 40000 8080\r\nGET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: holdfast.json\r\n\r\n`).catch(String)
    const held = connect({ port, host: '127.0.0.1' })
    held.on('error', () => {})
    t.after(() => held.destroy())
    await once(held, 'connect')
    held.write(`PROXY TCP4 198.51.100.20 10.0.0.1 40000 8080\r\nGET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
    const [first] = (await once(held, 'data')) as [Buffer]
    assert.match(first.toString(), /^HTTP\/1\.1 101/)
    assert.match(await upgradeVia('198.51.100.20'), /^HTTP\/1\.1 429/, 'the same client again: over its limit of 1')
    const metrics = await (await fetch(`${node.url}/metrics`)).text()
    assert.match(metrics, /holdfast_connections_rejected_total\{reason="proxy_protocol"\} 1\b/)
    assert.match(metrics, /holdfast_connections_rejected_total\{reason="too_many_connections"\} 1\b/)
  })
})
