// The client against the real server (createHoldfast on node:http, 127.0.0.1, port 0). Real time;
// every wait is for an event, bounded.
import assert from 'node:assert/strict'
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import { afterEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { mintToken } from '@holdfast/server/internal'
import type { ClientOptions } from '../src/options.js'
import { HoldfastClient, type ConnectionState, type PublicationEvent, type Subscription } from '../src/index.js'
import { waitFor } from './helpers/fake-server.js'
import { createNode, SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function makeClient(url: string | string[], options: ClientOptions = {}): HoldfastClient {
  const client = new HoldfastClient(url, {
    WebSocket,
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 200,
    restartJitterMs: 50,
    ...options,
  })
  client.on('error', () => {})
  cleanups.push(() => client.close())
  return client
}

/**
 * uWebSockets.js cannot listen again on a port that still has (or just had) connections in this
 * process: it sets no SO_REUSEADDR (docs/transports.md). Restart-on-the-same-port tests run on ws only.
 */
const SAME_PORT_RESTART = process.env['HOLDFAST_TEST_TRANSPORT'] === 'uws' ? 'uws cannot re-listen on a port with recent connections' : false

async function node(engine: SharedEngine, port = 0, options = {}): Promise<Node> {
  const n = await startNode(engine, options, port)
  cleanups.push(() => n.stop())
  return n
}

function sharedEngine(): SharedEngine {
  const engine = new SharedEngine()
  cleanups.push(() => engine.close())
  return engine
}

const inState = (client: HoldfastClient, to: ConnectionState, timeoutMs = 5000) =>
  client.state === to ? Promise.resolve() : waitFor(client, 'state', (s) => s.to === to, timeoutMs).then(() => undefined)

/** Records what the application sees on a subscription. */
function record(sub: Subscription): { pubs: PublicationEvent[]; recoveries: Array<{ recovered: boolean; wasRecovering: boolean }>; until(n: number): Promise<void> } {
  const pubs: PublicationEvent[] = []
  const recoveries: Array<{ recovered: boolean; wasRecovering: boolean }> = []
  sub.on('publication', (p) => pubs.push(p))
  sub.on('subscribed', (s) => recoveries.push({ recovered: s.recovered, wasRecovering: s.wasRecovering }))
  return {
    pubs,
    recoveries,
    until: (n) => (pubs.length >= n ? Promise.resolve() : waitFor(sub, 'publication', () => pubs.length >= n, 10_000).then(() => undefined)),
  }
}

/** Offsets 1..n, each once, in order. */
function assertExactlyOnceInOrder(pubs: PublicationEvent[], n: number): void {
  assert.deepEqual(
    pubs.map((p) => p.offset),
    Array.from({ length: n }, (_, i) => i + 1),
  )
}

test('subscribe, publish, and see the publication once, acked with its offset', async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  const client = makeClient(a.url)
  const sub = client.subscribe('chat:lobby')
  const seen = record(sub)
  client.connect()
  await waitFor(sub, 'subscribed')
  const ack = await client.publish('chat:lobby', { text: 'hello' })
  await seen.until(1)
  assert.equal(ack.offset, 1)
  assert.deepEqual(seen.pubs[0]?.data, { text: 'hello' })
  assert.equal(seen.pubs[0]?.epoch, ack.epoch)
  const history = await client.history('chat:lobby', { limit: 10 })
  assert.equal(history.publications.length, 1)
})

test('server restart on the same port: reconnect, resubscribe, recover; offline publishes land exactly once', { skip: SAME_PORT_RESTART }, async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  const port = a.port
  const client = makeClient(a.url)
  const sub = client.subscribe('chat:room')
  const seen = record(sub)
  client.connect()
  await waitFor(sub, 'subscribed')

  for (let i = 1; i <= 20; i++) await a.hf.publish('chat:room', { n: i })
  await seen.until(20)

  const down = inState(client, 'disconnected')
  await a.stop()
  await down

  // The new node publishes before it listens: the client can only get these by recovery.
  const b = await createNode(engine)
  for (let i = 21; i <= 40; i++) await b.hf.publish('chat:room', { n: i })
  // Offline publishes wait in the outbox.
  const offline = Array.from({ length: 5 }, (_, k) => client.publish('chat:room', { offline: k }))
  assert.equal(client.queueSize, 5)

  const bNode = await b.listen(port)
  cleanups.push(() => bNode.stop())
  const acks = await Promise.all(offline)
  assert.deepEqual(acks.map((x) => x.duplicate ?? false), [false, false, false, false, false])
  for (let i = 46; i <= 60; i++) await b.hf.publish('chat:room', { n: i })
  await seen.until(60)

  assertExactlyOnceInOrder(seen.pubs, 60)
  assert.ok(seen.recoveries.some((r) => r.recovered && r.wasRecovering), `recoveries: ${JSON.stringify(seen.recoveries)}`)
  const datas = seen.pubs.map((p) => JSON.stringify(p.data))
  for (let k = 0; k < 5; k++) assert.equal(datas.filter((d) => d === JSON.stringify({ offline: k })).length, 1)
  for (let i = 1; i <= 40; i++) assert.equal(datas.filter((d) => d === JSON.stringify({ n: i })).length, 1)
  const history = await client.history('chat:room', { limit: 100 })
  assert.equal(history.publications.length, 60)
})

/** A TCP proxy that can cut the connection right after the server sent a publish ack. */
async function ackCuttingProxy(targetPort: number): Promise<{ url: string; cutNextAck: () => void; close(): Promise<void> }> {
  let cut = false
  const sockets = new Set<Socket>()
  const server: TcpServer = createTcpServer((down) => {
    const up = tcpConnect(targetPort, '127.0.0.1')
    sockets.add(down).add(up)
    const kill = () => {
      down.destroy()
      up.destroy()
    }
    down.on('error', kill).on('close', kill)
    up.on('error', kill).on('close', kill)
    down.pipe(up)
    up.on('data', (chunk: Buffer) => {
      // Server frames are unmasked, so a JSON ack is visible in the bytes.
      if (cut && chunk.includes('"result":{"offset"')) {
        cut = false
        kill()
        return
      }
      down.write(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    cutNextAck: () => {
      cut = true
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

test('a reset after the server stored a publish but before the ack arrived: retried, one publication', async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  const proxy = await ackCuttingProxy(a.port)
  cleanups.push(() => proxy.close())
  const client = makeClient(proxy.url)
  client.connect()
  await inState(client, 'connected')
  proxy.cutNextAck()
  const dropped = waitFor(client, 'disconnected')
  const ack = client.publish('orders', { id: 'order-1' })
  await dropped
  const result = await ack
  assert.equal(result.duplicate, true, 'the resend was recognised by its msgId')
  const history = await a.hf.history('orders', { limit: 10 })
  assert.equal(history.publications.length, 1)
  assert.deepEqual(history.publications[0]?.data, { id: 'order-1' })
})

test('endpoint failover: the first node goes away, the client moves to the second and recovers', async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  const b = await node(engine)
  const client = makeClient([a.url, b.url])
  const urls: string[] = []
  client.on('connected', (c) => urls.push(c.url))
  const sub = client.subscribe('feed')
  const seen = record(sub)
  client.connect()
  await waitFor(sub, 'subscribed')
  for (let i = 1; i <= 10; i++) await a.hf.publish('feed', i)
  await seen.until(10)
  await a.stop()
  for (let i = 11; i <= 20; i++) await b.hf.publish('feed', i)
  await seen.until(20)
  assertExactlyOnceInOrder(seen.pubs, 20)
  assert.deepEqual(urls, [a.url, b.url])
})

test('unauthorized: a bad token is replaced through getToken(), then the client connects', async () => {
  const secret = 'integration-secret-0123456789'
  const engine = sharedEngine()
  const a = await node(engine, 0, { jwt: { secret }, allowAnonymous: false })
  let calls = 0
  const client = makeClient(a.url, {
    token: 'not-a-jwt',
    getToken: async () => {
      calls++
      return mintToken({ secret, sub: 'alice' })
    },
  })
  client.connect()
  await inState(client, 'connected')
  assert.equal(calls, 1)
})

test('unauthorized twice (getToken keeps returning bad tokens): closed', async () => {
  const engine = sharedEngine()
  const a = await node(engine, 0, { jwt: { secret: 'integration-secret-0123456789' }, allowAnonymous: false })
  const client = makeClient(a.url, { token: 'bad', getToken: () => 'still-bad' })
  client.connect()
  await inState(client, 'closed')
})

test('server-side subscription (subscribeUser): announced, recovered by the client after a restart, ended by unsubscribeUser', { skip: SAME_PORT_RESTART }, async () => {
  const secret = 'integration-secret-0123456789'
  const engine = sharedEngine()
  const a = await node(engine, 0, { jwt: { secret } })
  const port = a.port
  const client = makeClient(a.url, { getToken: () => mintToken({ secret, sub: 'bob' }) })
  client.connect()
  await inState(client, 'connected')
  const created = waitFor(client, 'subscription')
  await a.hf.subscribeUser('bob', 'news')
  const sub: Subscription = await created
  assert.equal(sub.channel, 'news')
  const seen = record(sub)
  await a.hf.publish('news', 1)
  await seen.until(1)
  const down = inState(client, 'disconnected')
  await a.stop()
  await down
  const b = await createNode(engine, { jwt: { secret } })
  await b.hf.publish('news', 2)
  const bNode = await b.listen(port)
  cleanups.push(() => bNode.stop())
  await seen.until(2)
  await b.hf.publish('news', 3)
  await seen.until(3)
  assertExactlyOnceInOrder(seen.pubs, 3)
  assert.ok(seen.recoveries.some((r) => r.recovered && r.wasRecovering))
  const ended = waitFor(sub, 'unsubscribed')
  await b.hf.unsubscribeUser('bob', 'news')
  assert.equal((await ended).code, 4012)
  assert.equal(client.getSubscription('news'), undefined)
})

/** A `ws` WebSocket that also hands every incoming text frame to a spy (to read the session token). */
function spyingWebSocket(onFrame: (text: string) => void): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      this.addEventListener('message', (ev) => {
        if (typeof ev.data === 'string') onFrame(ev.data)
      })
    }
  } as typeof WebSocket
}

test('taken over: a newer connection resumes the session, the older client stops for good', async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  let session: { id: string; token: string } | undefined
  const Spy = spyingWebSocket((text) => {
    for (const line of text.split('\n')) {
      const msg = JSON.parse(line) as { result?: { session?: { id: string; token: string } } }
      if (msg.result?.session !== undefined) session = msg.result.session
    }
  })
  const client = makeClient(a.url, { WebSocket: Spy })
  const p = client.publish('x', 1)
  client.connect()
  await p
  assert.ok(session !== undefined)
  const closed = waitFor(client, 'state', (st) => st.to === 'closed')
  let attempts = 0
  client.on('connecting', () => attempts++)
  const thief = new WebSocket(a.url, 'holdfast.v1.json')
  cleanups.push(() => thief.terminate())
  await new Promise((r) => thief.once('open', r))
  thief.send(JSON.stringify({ id: 1, type: 'connect', version: 1, session }))
  const { reason } = await closed
  assert.equal(reason.name, 'taken_over')
  assert.equal(attempts, 0, 'no reconnect attempt after a takeover')
})

test('kicked by the server API: closed, pending calls rejected', async () => {
  const engine = sharedEngine()
  const a = await node(engine)
  const client = makeClient(a.url)
  const connected = waitFor(client, 'connected')
  client.connect()
  const { client: id } = await connected
  const closed = waitFor(client, 'state', (s) => s.to === 'closed')
  await a.hf.disconnect({ client: id })
  const { reason } = await closed
  assert.equal(reason.name, 'kicked')
})

test('a large offline queue is flushed at the server-announced rate: no refusals, no rate-limit close', async () => {
  const engine = sharedEngine()
  const a = await node(engine, 0, { commandRate: { perSecond: 400, burst: 50 } })
  const client = makeClient(a.url)
  const drops: string[] = []
  client.on('disconnected', (d) => drops.push(d.reason.name))
  const acks = Array.from({ length: 300 }, (_, i) => client.publish('bulk', { i }))
  client.connect()
  const results = await Promise.all(acks)
  assert.deepEqual(
    results.map((r) => r.offset),
    Array.from({ length: 300 }, (_, i) => i + 1),
  )
  assert.deepEqual(drops, [])
  assert.equal(a.hf.counters.get('rate_limited', 'commands') + a.hf.counters.get('rate_limited', 'bytes'), 0, 'the server never had to refuse a command for rate')
})
