// The HTTP-streaming fallback, end to end against a real node whose HTTP server refuses every
// WebSocket upgrade (as some proxies do): after two refused upgrades the client connects over
// HTTP streaming to the same node, with the same protocol (JSON and MessagePack), session,
// heartbeats, recovery and acks; a drain moves it on like any connection; once upgrades get
// through again a probe moves it back to WebSocket without losing a publication. The server side
// answers unknown streams, oversized frames and refused admissions with clear statuses.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { createHoldfast, type Holdfast, type HoldfastOptions } from '@holdfast/server'
import { guardHttpServer } from '@holdfast/server/internal'
import { HoldfastClient, type ClientOptions, type HoldfastError } from '../src/index.js'
import { waitFor } from './helpers/fake-server.js'
import { SharedEngine } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

interface Blocked {
  hf: Holdfast
  url: string
  base: string
  /** Let upgrades through (true) or refuse them with 403 (false). */
  allowUpgrades: boolean
  upgradesRefused: number
}

/** A node on node:http whose upgrades a "proxy" refuses while `allowUpgrades` is false. */
async function blockedNode(options: HoldfastOptions = {}, engine = new SharedEngine(), guard?: { connectionTimeoutMs: number }): Promise<Blocked> {
  const hf = createHoldfast({ logger: false, ...options, engine: engine.forNode() })
  await hf.ready()
  const state: Blocked = { hf, url: '', base: '', allowUpgrades: false, upgradesRefused: 0 }
  const server: Server = createServer((req, res) => {
    if (!hf.handleHttpStream(req, res)) res.writeHead(404).end()
  })
  server.on('upgrade', (req, socket, head) => {
    if (state.allowUpgrades) hf.handleUpgrade(req, socket, head)
    else {
      state.upgradesRefused++
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    }
  })
  if (guard !== undefined) guardHttpServer(server, guard)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  state.url = `ws://127.0.0.1:${port}/ws`
  state.base = `http://127.0.0.1:${port}/ws/stream`
  cleanups.push(async () => {
    await hf.close({ drainMs: 0 })
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    await engine.close()
  })
  return state
}

function makeClient(url: string | string[], options: ClientOptions = {}): { client: HoldfastClient; errors: HoldfastError[] } {
  const client = new HoldfastClient(url, { WebSocket, minReconnectDelayMs: 20, maxReconnectDelayMs: 100, restartJitterMs: 20, ...options })
  const errors: HoldfastError[] = []
  client.on('error', (e) => errors.push(e))
  cleanups.push(() => client.close())
  return { client, errors }
}

/** What carries each of the node's connections (its transport's socket class). */
const carriers = (hf: Holdfast) => [...(hf as unknown as { connections: Set<{ socket: object }> }).connections].map((c) => c.socket.constructor.name)
const codecs = (hf: Holdfast) => [...(hf as unknown as { connections: Set<{ codec: { name: string } }> }).connections].map((c) => c.codec.name)

for (const protocol of ['json', 'msgpack'] as const) {
  test(`upgrades refused: the client falls back to HTTP streaming (${protocol}) and publishes, subscribes, recovers and keeps its heartbeat`, async () => {
    const node = await blockedNode({ pingIntervalMs: 300, pongTimeoutMs: 300 })
    const { client } = makeClient(node.url, { protocol, maxServerPingDelayMs: 500 })
    const got: number[] = []
    const sub = client.subscribe('room')
    sub.on('publication', (p) => got.push(p.offset))
    client.connect()
    const connected = await waitFor(client, 'connected')
    assert.equal(node.upgradesRefused, 2, 'two refused upgrades, then the fallback')
    assert.deepEqual(codecs(node.hf), [protocol], 'the same protocol')
    assert.deepEqual(carriers(node.hf), ['StreamSocket'], 'over the HTTP stream')
    await waitFor(sub, 'subscribed')
    for (let i = 0; i < 5; i++) await node.hf.publish('room', { i })
    assert.deepEqual((await client.publish('room', { from: 'client' })).offset, 6)
    assert.deepEqual(await client.rpc('missing').catch((e: HoldfastError) => e.code), 'method_not_found')
    // Several ping intervals: pongs go up as POSTs, nobody times out.
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal(client.state, 'connected')
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6])

    // The connection drops (the node ends the stream): the client comes back over the stream, resumes and recovers.
    const resumed = waitFor(client, 'connected')
    for (const conn of (node.hf as unknown as { connections: Set<{ terminate(code: number, reason: string): void }> }).connections) conn.terminate(1006, 'test')
    await node.hf.publish('room', { while: 'away' })
    const again = await resumed
    assert.equal(again.session, connected.session)
    assert.equal(again.resumed, true)
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7])
  })
}

test('once upgrades get through again, a probe moves the connection back to WebSocket, and nothing is lost', async () => {
  const node = await blockedNode()
  const { client } = makeClient(node.url, { webSocketRetryMs: 300 })
  const got: number[] = []
  const sub = client.subscribe('room')
  sub.on('publication', (p) => got.push(p.offset))
  client.connect()
  await waitFor(sub, 'subscribed')
  const states: string[] = []
  client.on('state', (s) => states.push(`${s.to}:${s.reason.message}`))
  await node.hf.publish('room', { n: 1 })
  node.allowUpgrades = true
  const back = waitFor(client, 'connected', () => true, 5000)
  const publishing = (async () => {
    for (let n = 2; n <= 20; n++) {
      await node.hf.publish('room', { n })
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  await back
  await publishing
  const deadline = Date.now() + 3000
  while (got.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1))
  assert.ok(states.includes('disconnected:WebSocket gets through again: leaving the HTTP fallback'), states.join(' | '))
  assert.equal(node.hf.connectionCount, 1)
  assert.deepEqual(carriers(node.hf), ['HoldfastWebSocket'], 'the connection is a WebSocket again')
})

test('a drain reaches stream clients like any other: restart, then they come back (over the stream) and recover', async () => {
  const engine = new SharedEngine()
  const a = await blockedNode({}, engine)
  const b = await blockedNode({}, engine)
  const { client } = makeClient([a.url, b.url])
  const got: number[] = []
  const sub = client.subscribe('room')
  sub.on('publication', (p) => got.push(p.offset))
  const connected = waitFor(client, 'connected')
  client.connect()
  const first = await connected
  await waitFor(sub, 'subscribed')
  const drained = first.url === a.url ? a : b
  const other = drained === a ? b : a
  const moved = waitFor(client, 'connected', () => true, 10_000)
  void drained.hf.close({ drainMs: 0 })
  await other.hf.publish('room', { n: 1 })
  const second = await moved
  assert.equal(second.url, other.url)
  const deadline = Date.now() + 3000
  while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(got, [1])
})

test('server side: unknown stream 404, a frame over the limit 413 and the connection closed with 1009, admission refusals keep their status', async () => {
  const node = await blockedNode({ maxPayload: 1024, allowedOrigins: ['https://good.example'] })
  const unknown = await fetch(`${node.base}/nope`, { method: 'POST', body: '{}' })
  assert.equal(unknown.status, 404)
  const badOrigin = await fetch(node.base, { method: 'POST', headers: { origin: 'https://evil.example' } })
  assert.equal(badOrigin.status, 403)
  assert.equal(((await badOrigin.json()) as { error: { code: string } }).error.code, 'origin')
  const get = await fetch(node.base)
  assert.equal(get.status, 405)

  // Open a stream by hand and send an oversized frame.
  const res = await fetch(`${node.base}?protocol=holdfast.v1.json`, { method: 'POST', headers: { origin: 'https://good.example' } })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('x-accel-buffering'), 'no')
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let buf = new Uint8Array(0)
  const records: Array<{ type: number; body: string }> = []
  const pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      const next = new Uint8Array(buf.byteLength + value.byteLength)
      next.set(buf)
      next.set(value, buf.byteLength)
      buf = next
      while (buf.byteLength >= 5) {
        const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1)
        if (buf.byteLength < 5 + len) break
        records.push({ type: buf[0] as number, body: new TextDecoder().decode(buf.subarray(5, 5 + len)) })
        buf = buf.slice(5 + len)
      }
    }
  })()
  const deadline = Date.now() + 3000
  while (records.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  const open = JSON.parse(records[0]?.body ?? '{}') as { id: string; protocol: string }
  assert.equal(open.protocol, 'holdfast.v1.json')
  const big = await fetch(`${node.base}/${open.id}`, { method: 'POST', body: 'x'.repeat(64 * 1024) })
  assert.equal(big.status, 413)
  await pump
  const last = records.at(-1)
  assert.equal(last?.type, 3)
  assert.equal((JSON.parse(last?.body ?? '{}') as { code: number }).code, 1009)
})

test('when the fallback fails too (the node is down, not a proxy in the way), WebSocket gets its two tries again', async () => {
  let upgrades = 0
  let streams = 0
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/ws/stream') === true) streams++
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"engine_unavailable","message":"down"}}')
  })
  server.on('upgrade', (_req, socket) => {
    upgrades++
    socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())))
  const { client } = makeClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, { minReconnectDelayMs: 5, maxReconnectDelayMs: 10 })
  client.connect()
  const deadline = Date.now() + 5000
  while (streams < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  client.close()
  assert.ok(streams >= 3, `the fallback was tried ${streams} times`)
  // ws, ws, stream, ws, ws, stream, ...: two upgrades before each fallback attempt.
  assert.ok(upgrades >= 2 * streams && upgrades <= 2 * streams + 2, `${upgrades} upgrades for ${streams} fallback attempts`)
})

test('behind the HTTP guard (idle connections closed after a while), a stream outlives that idle time: heartbeats watch it instead', async () => {
  const node = await blockedNode({ pingIntervalMs: 5000 }, new SharedEngine(), { connectionTimeoutMs: 300 })
  const { client } = makeClient(node.url)
  client.connect()
  await waitFor(client, 'connected')
  const states: string[] = []
  client.on('state', (s) => states.push(`${s.to}: ${s.reason.message}`))
  await new Promise((r) => setTimeout(r, 1200))
  assert.deepEqual(states, [], 'the idle stream was not cut')
  assert.equal((await client.publish('idle', { ok: true })).offset, 1)
})
