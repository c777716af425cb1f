// The client against a scripted server on a real WebSocket (ws, 127.0.0.1, port 0): connection and
// session resume, pongs on the wire, codecs, recovery replies, duplicates and gaps, acks after a
// reset, outbox overflow, close advice per code, failover between URLs, listener exceptions, and
// that close() leaves nothing behind. Real time, short delays, bounded waits. What is about timing
// (token refresh, unauthorized then getToken, the heartbeat watchdog, the connect timeout) is in
// timers.test.ts, under fake timers.
import assert from 'node:assert/strict'
import { afterEach, beforeEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastError, PROTOCOL_VERSION, type PubPush } from '@holdfast/protocol'
import type { ClientOptions } from '../src/options.js'
import { HoldfastClient, type ConnectionState } from '../src/index.js'
import { FakeServer, refusedPort, waitFor, type FakeConnection } from './helpers/fake-server.js'

let server: FakeServer
const clients: HoldfastClient[] = []

beforeEach(async () => {
  server = await FakeServer.start()
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server.close()
})

/** Fast timings so that reconnects take milliseconds. */
function makeClient(options: ClientOptions = {}, url: string | string[] = server.url): HoldfastClient {
  const client = new HoldfastClient(url, {
    WebSocket,
    minReconnectDelayMs: 5,
    maxReconnectDelayMs: 50,
    restartJitterMs: 50,
    ...options,
  })
  client.on('error', () => {})
  clients.push(client)
  return client
}

const inState = (client: HoldfastClient, to: ConnectionState) =>
  client.state === to ? Promise.resolve() : waitFor(client, 'state', (s) => s.to === to).then(() => undefined)

async function connect(client: HoldfastClient, over: Parameters<FakeConnection['acceptConnect']>[0] = {}): Promise<FakeConnection> {
  client.connect()
  const conn = await server.nextConnection()
  await conn.acceptConnect(over)
  await inState(client, 'connected')
  return conn
}

const pub = (offset: number, epoch = 'E', channel = 'ch'): PubPush => ({ type: 'pub', channel, epoch, offset, data: `d${offset}` })

test('connect speaks the protocol: subprotocol, version, text frames; a reconnect resumes the session', async () => {
  const client = makeClient({ name: 'tester', data: { app: 1 } })
  const conn = await connect(client)
  assert.equal(conn.ws.protocol, 'holdfast.v1.json')
  const cmd = conn.received[0]
  assert.ok(cmd !== undefined && cmd.type === 'connect')
  assert.equal(cmd.version, PROTOCOL_VERSION)
  assert.equal(cmd.name, 'tester')
  assert.deepEqual(cmd.data, { app: 1 })
  assert.equal(cmd.session, undefined)
  assert.deepEqual(conn.frames, [false], 'JSON goes out as text frames')
  const resumed = waitFor(client, 'connected')
  conn.terminate()
  const conn2 = await server.nextConnection()
  const again = await conn2.acceptConnect()
  assert.deepEqual(again.session, { id: 'session-1', token: 'session-token-1' })
  assert.equal((await resumed).resumed, true)
})

test('server pings are answered with pongs', async () => {
  const client = makeClient()
  const conn = await connect(client)
  conn.send({ type: 'ping' })
  await conn.next('pong')
  conn.send({ type: 'ping' }, { type: 'ping' })
  await conn.next('pong')
  await conn.next('pong')
})

test('msgpack: negotiated by subprotocol, binary frames both ways', async () => {
  const client = makeClient({ protocol: 'msgpack' })
  const conn = await connect(client)
  assert.equal(conn.ws.protocol, 'holdfast.v1.msgpack')
  const p = client.publish('ch', { bytes: new Uint8Array([1, 2, 3]) })
  const cmd = await conn.next('publish')
  assert.deepEqual(cmd.data, { bytes: new Uint8Array([1, 2, 3]) })
  conn.reply(cmd, { offset: 1, epoch: 'E' })
  assert.deepEqual(await p, { offset: 1, epoch: 'E' })
  assert.ok(conn.frames.every((binary) => binary))
})

test('duplicates and gaps: the app sees each publication once, in order; a gap resubscribes with recover', async () => {
  const client = makeClient()
  const sub = client.subscribe('ch')
  const seen: number[] = []
  sub.on('publication', (p) => seen.push(p.offset))
  const conn = await connect(client)
  const first = await conn.next('subscribe')
  conn.reply(first, { epoch: 'E', offset: 0, recovered: false, wasRecovering: false, publications: [] })
  conn.send(pub(1), pub(2), pub(2), pub(1), pub(3), pub(5), pub(6))
  await conn.next('unsubscribe')
  const resub = await conn.next('subscribe')
  assert.deepEqual(resub.recover, { offset: 3, epoch: 'E' })
  conn.send(pub(6), pub(7))
  conn.reply(resub, {
    epoch: 'E',
    offset: 6,
    recovered: true,
    wasRecovering: true,
    publications: [4, 5, 6].map((o) => ({ offset: o, data: `d${o}` })),
  })
  const last = waitFor(sub, 'publication', (p) => p.offset === 8)
  conn.send(pub(7), pub(8))
  await last
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8])
})

test('after a reset: resubscribe with recover; recovered:true replays, recovered:false asks the app to reload', async () => {
  const client = makeClient()
  const sub = client.subscribe('ch')
  const seen: number[] = []
  sub.on('publication', (p) => seen.push(p.offset))
  let conn = await connect(client)
  conn.reply(await conn.next('subscribe'), { epoch: 'E', offset: 10, recovered: false, wasRecovering: false, publications: [] })
  const live = waitFor(sub, 'publication', (p) => p.offset === 11)
  conn.send(pub(11))
  await live

  conn.terminate()
  conn = await server.nextConnection()
  await conn.acceptConnect()
  let cmd = await conn.next('subscribe')
  assert.deepEqual(cmd.recover, { offset: 11, epoch: 'E' })
  const recovered = waitFor(sub, 'subscribed')
  const replayed = waitFor(sub, 'publication', (p) => p.offset === 13)
  conn.reply(cmd, { epoch: 'E', offset: 13, recovered: true, wasRecovering: true, publications: [12, 13].map((o) => ({ offset: o, data: o })) })
  assert.deepEqual(await recovered, { channel: 'ch', recovered: true, wasRecovering: true, epoch: 'E', offset: 11 })
  await replayed

  conn.terminate()
  conn = await server.nextConnection()
  await conn.acceptConnect()
  cmd = await conn.next('subscribe')
  assert.deepEqual(cmd.recover, { offset: 13, epoch: 'E' })
  const lost = waitFor(sub, 'subscribed')
  conn.reply(cmd, { epoch: 'E2', offset: 40, recovered: false, wasRecovering: true, publications: [] })
  assert.deepEqual(await lost, { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'E2', offset: 40 })
  const after = waitFor(sub, 'publication', (p) => p.offset === 41)
  conn.send(pub(41, 'E2'))
  await after
  assert.deepEqual(seen, [11, 12, 13, 41])
})

test('a publish stored but not acked before a reset is resent with the same msgId and settles once', async () => {
  const client = makeClient()
  let conn = await connect(client)
  const p = client.publish('ch', 'once')
  const first = await conn.next('publish')
  conn.terminate() // the server stored it, the ack is lost with the connection
  conn = await server.nextConnection()
  await conn.acceptConnect()
  const resend = await conn.next('publish')
  assert.equal(resend.msgId, first.msgId)
  assert.deepEqual(resend.data, 'once')
  conn.reply(resend, { offset: 1, epoch: 'E', duplicate: true })
  assert.deepEqual(await p, { offset: 1, epoch: 'E', duplicate: true })
})

test('outbox overflow while the server is away: the newest is refused, the rest delivered in order', async () => {
  const client = makeClient({ maxQueuedCommands: 2 })
  const a = client.publish('ch', 'a')
  const b = client.publish('ch', 'b')
  await assert.rejects(client.publish('ch', 'c'), (e: unknown) => e instanceof HoldfastError && e.code === 'queue_full')
  const conn = await connect(client)
  const pa = await conn.next('publish')
  const pb = await conn.next('publish')
  assert.deepEqual([pa.data, pb.data], ['a', 'b'])
  conn.reply(pa, { offset: 1, epoch: 'E' })
  conn.reply(pb, { offset: 2, epoch: 'E' })
  assert.deepEqual(await Promise.all([a, b]), [{ offset: 1, epoch: 'E' }, { offset: 2, epoch: 'E' }])
})

test('close advice: restart reconnects within the jitter window', async () => {
  const client = makeClient({ restartJitterMs: 1000, minReconnectDelayMs: 5000, maxReconnectDelayMs: 10_000 })
  const conn = await connect(client)
  const dropped = waitFor(client, 'disconnected')
  conn.close(4000, 'draining')
  const { reason, reconnectInMs } = await dropped
  assert.equal(reason.name, 'restart')
  assert.ok(reconnectInMs !== null && reconnectInMs < 1000, `restart waited ${reconnectInMs} ms`)
  const started = Date.now()
  await (await server.nextConnection(2000)).acceptConnect()
  await inState(client, 'connected')
  assert.ok(Date.now() - started < 1500)
})

test('close advice: taken over stops for good, pending calls are rejected', async () => {
  const client = makeClient()
  const conn = await connect(client)
  const p = client.rpc('slow')
  await conn.next('rpc')
  const closed = inState(client, 'closed')
  conn.send({ type: 'disconnect', code: 4011, reason: 'taken over by a newer connection' })
  conn.close(4011, 'taken over')
  await closed
  await assert.rejects(p, (e: unknown) => e instanceof HoldfastError && e.code === 'client_closed')
  assert.equal(client.state, 'closed')
  assert.equal(server.connections.length, 1)
})

test('several URLs: a refused endpoint rotates to the next', async () => {
  const dead = `ws://127.0.0.1:${await refusedPort()}/ws`
  const client = makeClient({}, [dead, server.url])
  const urls: string[] = []
  client.on('connecting', (c) => urls.push(c.url))
  await connect(client)
  assert.deepEqual(urls, [dead, server.url])
})

test('exceptions in application listeners do not break the client', async () => {
  const client = makeClient()
  const errors: string[] = []
  client.on('error', (e) => errors.push(e.message))
  for (const event of ['state', 'connecting', 'connected', 'queue'] as const) {
    client.on(event, () => {
      throw new Error(`${event} listener bug`)
    })
  }
  const sub = client.subscribe('ch')
  sub.on('publication', () => {
    throw new Error('publication listener bug')
  })
  const subErrors: string[] = []
  sub.on('error', (e) => subErrors.push(e.message))
  const seen: number[] = []
  sub.on('publication', (p) => seen.push(p.offset))
  const conn = await connect(client)
  conn.reply(await conn.next('subscribe'), { epoch: 'E', offset: 0, recovered: false, wasRecovering: false, publications: [] })
  const second = waitFor(sub, 'publication', (p) => p.offset === 2)
  conn.send(pub(1), pub(2))
  await second
  const p = client.publish('ch', 'x')
  conn.reply(await conn.next('publish'), { offset: 3, epoch: 'E' })
  await p
  assert.deepEqual(seen, [1, 2])
  assert.ok(errors.some((m) => /connected listener bug/.test(m)))
  assert.equal(subErrors.filter((m) => /publication listener bug/.test(m)).length, 2)
})

/** Handles that would keep a process alive (sockets, timers), as counted by Node. */
function liveHandles(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'Timeout' || r.startsWith('TCP'))
    .sort()
}

async function handlesBackTo(baseline: string[], timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (JSON.stringify(liveHandles()) === JSON.stringify(baseline)) return
    await new Promise((r) => setImmediate(r))
  }
  assert.deepEqual(liveHandles(), baseline, `close() left handles behind: ${process.getActiveResourcesInfo().join(', ')}`)
}

test('close() leaves no timers or sockets behind, from any state', async () => {
  // Earlier tests' sockets may still be closing: start from a settled state (only this test's server).
  const baseline = ['TCPServerWrap']
  await handlesBackTo(baseline)
  // Connected, with a subscription, a pending publish, a pending refresh timer and a watchdog.
  const client = makeClient({ getToken: () => 't' })
  client.subscribe('ch')
  const conn = await connect(client, { ping: 10_000, expiresIn: 60_000 })
  await conn.next('subscribe')
  const p = client.publish('ch', 1).catch((e: unknown) => e)
  await conn.next('publish')
  client.close()
  assert.ok(((await p) as HoldfastError).code === 'client_closed')
  await conn.closed
  await handlesBackTo(baseline)

  // Waiting for a reconnect (backoff timer pending) with a queued command.
  const dead = `ws://127.0.0.1:${await refusedPort()}/ws`
  const waiting = makeClient({ minReconnectDelayMs: 10_000, maxReconnectDelayMs: 20_000 }, dead)
  waiting.connect()
  await inState(waiting, 'disconnected')
  const q = waiting.publish('ch', 2).catch((e: unknown) => e)
  waiting.close()
  assert.ok(((await q) as HoldfastError).code === 'client_closed')
  await handlesBackTo(baseline)

  // Mid-handshake.
  const connecting = makeClient()
  connecting.connect()
  const c3 = await server.nextConnection()
  connecting.close()
  await c3.closed
  await handlesBackTo(baseline)
})
