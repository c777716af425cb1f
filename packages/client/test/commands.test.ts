// publish/rpc/presence/history through the outbox, against an in-memory socket with mock timers.
import assert from 'node:assert/strict'
import { mock, test } from 'node:test'
import { HoldfastError, type PublishCommand } from '@holdfast/protocol'
import type { ClientOptions } from '../src/options.js'
import { HoldfastClient, type QueueEvent } from '../src/index.js'
import { FakeSocket, microtasks, useFakeClock } from './helpers/fake-socket.js'

useFakeClock()

function makeClient(options: ClientOptions = {}): { client: HoldfastClient; queue: QueueEvent[] } {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket, ...options })
  const queue: QueueEvent[] = []
  client.on('queue', (q) => queue.push(q))
  client.on('error', () => {})
  return { client, queue }
}

async function connected(client: HoldfastClient): Promise<FakeSocket> {
  client.connect()
  await FakeSocket.last.accept({ ping: 0 })
  return FakeSocket.last
}

/** Settle a promise without awaiting it forever: the state it reached after the microtasks ran. */
function track<T>(p: Promise<T>): { value?: T; error?: unknown; settled: boolean } {
  const out: { value?: T; error?: unknown; settled: boolean } = { settled: false }
  p.then(
    (value) => Object.assign(out, { value, settled: true }),
    (error: unknown) => Object.assign(out, { error, settled: true }),
  )
  return out
}

test('offline publishes wait in order, go out in one frame after connect, and resolve with the ack', async () => {
  const { client, queue } = makeClient()
  const a = track(client.publish('chat', 'a'))
  const b = track(client.publish('chat', 'b'))
  assert.equal(client.queueSize, 2)
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  const pubs = socket.allOf('publish')
  assert.deepEqual(pubs.map((p) => p.data), ['a', 'b'])
  assert.equal(socket.frames, 2, 'connect in one frame, then both publishes batched in one')
  assert.notEqual(pubs[0]?.msgId, pubs[1]?.msgId)
  socket.receive({ id: pubs[1]!.id, result: { offset: 2, epoch: 'e' } }, { id: pubs[0]!.id, result: { offset: 1, epoch: 'e' } })
  await microtasks()
  assert.deepEqual(a.value, { offset: 1, epoch: 'e' })
  assert.deepEqual(b.value, { offset: 2, epoch: 'e' })
  assert.deepEqual(queue.map((q) => q.size), [1, 2, 1, 0])
  assert.equal(queue.at(-1)?.bytes, 0)
  client.close()
})

test('commands in flight when the connection drops are resent with the same msgId; one ack settles them', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const p = track(client.publish('chat', 'x'))
  const r = track(client.rpc('echo', { n: 1 }))
  await microtasks()
  const first = socket.lastOf('publish')
  const firstRpc = socket.lastOf('rpc')
  socket.serverClose(1006)
  mock.timers.tick(1000)
  const socket2 = FakeSocket.last
  await socket2.accept({ ping: 0 })
  const again = socket2.lastOf('publish')
  const againRpc = socket2.lastOf('rpc')
  assert.equal(again.msgId, first.msgId)
  assert.equal(againRpc.msgId, firstRpc.msgId)
  socket2.receive({ id: again.id, result: { offset: 7, epoch: 'e', duplicate: true } }, { id: againRpc.id, result: { data: { n: 1 } } })
  await microtasks()
  assert.deepEqual(p.value, { offset: 7, epoch: 'e', duplicate: true })
  assert.deepEqual(r.value, { n: 1 })
  // A late ack for the first send (old connection) cannot settle anything twice.
  assert.equal(client.queueSize, 0)
  client.close()
})

test('a call made in a "connected" listener queues behind the older offline ones', async () => {
  const { client } = makeClient()
  void client.publish('c', 'old-1').catch(() => {})
  void client.publish('c', 'old-2').catch(() => {})
  client.on('connected', () => void client.publish('c', 'new').catch(() => {}))
  client.on('state', (s) => {
    if (s.to === 'connected') void client.publish('c', 'from-state').catch(() => {})
  })
  const socket = await connected(client)
  assert.deepEqual(socket.allOf('publish').map((p) => p.data), ['old-1', 'old-2', 'from-state', 'new'])
  client.close()
})

test('outbox overflow rejects the newest with queue_full, by count and by bytes', async () => {
  const { client } = makeClient({ maxQueuedCommands: 3 })
  const kept = [1, 2, 3].map((n) => track(client.publish('c', n)))
  await assert.rejects(client.publish('c', 4), (e: unknown) => e instanceof HoldfastError && e.code === 'queue_full')
  assert.equal(client.queueSize, 3)
  const socket = await connected(client)
  assert.deepEqual(socket.allOf('publish').map((p) => p.data), [1, 2, 3])
  assert.ok(kept.every((k) => !k.settled))
  client.close()

  const small = makeClient({ maxQueuedBytes: 300 }).client
  const ok = track(small.publish('c', 'x'.repeat(100)))
  await assert.rejects(small.publish('c', 'y'.repeat(200)), (e: unknown) => e instanceof HoldfastError && e.code === 'queue_full' && /bytes/.test(e.message))
  small.close()
  await microtasks()
  assert.ok(ok.error instanceof HoldfastError && ok.error.code === 'client_closed')
})

test('temporary server errors are retried with backoff and the same msgId; permanent ones reject', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const p = track(client.publish('c', 'x'))
  await microtasks()
  const first = socket.lastOf('publish')
  socket.receive({ id: first.id, error: { code: 110, message: 'slow down', temporary: true } })
  await microtasks()
  assert.equal(p.settled, false)
  mock.timers.tick(749) // backoff(1) with random 0.5
  await microtasks()
  assert.equal(socket.allOf('publish').length, 1)
  mock.timers.tick(1)
  await microtasks()
  const retry = socket.lastOf('publish')
  assert.equal(retry.msgId, first.msgId)
  assert.notEqual(retry.id, first.id)
  socket.receive({ id: retry.id, error: { code: 103, message: 'no publishing here', temporary: false } })
  await microtasks()
  assert.ok(p.error instanceof HoldfastError)
  assert.equal(p.error.code, 'permission_denied')
  assert.equal(p.error.message, 'no publishing here')
  client.close()
})

test('commandTimeoutMs rejects with timeout and removes the command from the outbox; per-call override', async () => {
  const { client } = makeClient({ commandTimeoutMs: 5000 })
  const p = track(client.publish('c', 'late'))
  const q = track(client.presence('c', { timeoutMs: 1000 }))
  mock.timers.tick(1000)
  await microtasks()
  assert.ok(q.error instanceof HoldfastError && q.error.code === 'timeout')
  assert.equal(p.settled, false)
  mock.timers.tick(4000)
  await microtasks()
  assert.ok(p.error instanceof HoldfastError && p.error.code === 'timeout')
  assert.equal(client.queueSize, 0)
  const socket = await connected(client)
  assert.equal(socket.allOf('publish').length, 0, 'a timed-out command is never sent later')
  // Sent but never acked: the outcome is unknown, and the message says so.
  const r = track(client.rpc('slow', undefined, { timeoutMs: 2000 }))
  await microtasks()
  const rpc = socket.lastOf('rpc')
  mock.timers.tick(2000)
  await microtasks()
  assert.ok(r.error instanceof HoldfastError && /may or may not/.test(r.error.message))
  socket.receive({ id: rpc.id, result: { data: 'too late' } })
  await microtasks()
  assert.equal(client.queueSize, 0)
  client.close()
})

test('close() rejects everything pending with client_closed; calls after close reject at once', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const inFlight = track(client.publish('c', 1))
  await microtasks()
  socket.serverClose(1006)
  const queued = track(client.history('c', { limit: 10 }))
  client.close()
  await microtasks()
  for (const p of [inFlight, queued]) assert.ok(p.error instanceof HoldfastError && p.error.code === 'client_closed')
  await assert.rejects(client.publish('c', 2), (e: unknown) => e instanceof HoldfastError && e.code === 'client_closed')
})

test('a stop advice (taken over) rejects what is pending: it would never be sent', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const p = track(client.publish('c', 1))
  await microtasks()
  socket.serverClose(4011, 'taken over')
  await microtasks()
  assert.ok(p.error instanceof HoldfastError && p.error.code === 'client_closed')
  assert.match((p.error as Error).message, /taken over/)
})

test('rpc, presence, presenceStats and history send their commands and resolve with the results', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const rpc = track(client.rpc<number[], { sum: number }>('add', [1, 2]))
  const pres = track(client.presence('room'))
  const stats = track(client.presenceStats('room'))
  const hist = track(client.history('room', { since: { offset: 3, epoch: 'e' }, limit: 2, reverse: false }))
  await microtasks()
  assert.equal(socket.frames, 2, 'four commands issued in one tick travel in one frame')
  const h = socket.lastOf('history')
  assert.deepEqual({ since: h.since, limit: h.limit, reverse: h.reverse }, { since: { offset: 3, epoch: 'e' }, limit: 2, reverse: false })
  assert.equal(socket.lastOf('presence').channel, 'room')
  socket.receive(
    { id: socket.lastOf('rpc').id, result: { data: { sum: 3 } } },
    { id: socket.lastOf('presence').id, result: { clients: { c1: { client: 'c1', user: 'u' } } } },
    { id: socket.lastOf('presence_stats').id, result: { clients: 1, users: 1 } },
    { id: h.id, result: { epoch: 'e', offset: 5, publications: [{ offset: 4, data: 'd' }] } },
  )
  await microtasks()
  assert.deepEqual(rpc.value, { sum: 3 })
  assert.deepEqual(pres.value, { clients: { c1: { client: 'c1', user: 'u' } } })
  assert.deepEqual(stats.value, { clients: 1, users: 1 })
  assert.equal((hist.value as { offset: number }).offset, 5)
  client.close()
})

test('bad arguments reject with a HoldfastError, not a throw', async () => {
  const { client } = makeClient()
  await assert.rejects(client.publish('', 1), (e: unknown) => e instanceof HoldfastError && e.code === 'bad_request')
  await assert.rejects(client.publish('c', 1n), (e: unknown) => e instanceof HoldfastError && e.code === 'bad_request')
  await assert.rejects(client.rpc('m', 1, { timeoutMs: -1 }), (e: unknown) => e instanceof HoldfastError && e.code === 'bad_request')
  assert.equal(client.queueSize, 0)
})

test('the batch is split into frames by maxBatch', async () => {
  const { client } = makeClient({ maxBatch: 4 })
  const socket = await connected(client)
  const framesBefore = socket.frames
  for (let i = 0; i < 10; i++) void client.publish('c', i).catch(() => {})
  await microtasks()
  assert.equal(socket.frames - framesBefore, 3)
  assert.deepEqual(socket.allOf('publish').map((p: PublishCommand) => p.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  client.close()
})

test('a throwing listener does not stop the client', async () => {
  const { client } = makeClient()
  client.on('state', () => {
    throw new Error('state listener bug')
  })
  client.on('connected', () => {
    throw new Error('connected listener bug')
  })
  client.on('queue', () => {
    throw new Error('queue listener bug')
  })
  const p = track(client.publish('c', 1))
  const socket = await connected(client)
  assert.equal(client.state, 'connected')
  socket.receive({ id: socket.lastOf('publish').id, result: { offset: 1, epoch: 'e' } })
  await microtasks()
  assert.deepEqual(p.value, { offset: 1, epoch: 'e' })
  client.close()
})

test('temporary refusals keep their place: later calls wait behind the retry, then all go in issue order', async () => {
  const { client } = makeClient()
  const socket = await connected(client)
  const calls = [1, 2, 3].map((n) => track(client.publish('c', n)))
  await microtasks()
  const [p1, p2, p3] = socket.allOf('publish')
  // The server accepted 1 and refused the rest of the frame for rate.
  socket.receive(
    { id: p1!.id, result: { offset: 1, epoch: 'e' } },
    { id: p2!.id, error: { code: 110, message: 'slow down', temporary: true } },
    { id: p3!.id, error: { code: 110, message: 'slow down', temporary: true } },
  )
  const later = track(client.publish('c', 4))
  await microtasks()
  assert.equal(socket.allOf('publish').length, 3, 'nothing overtakes the refused ones')
  mock.timers.tick(750)
  await microtasks()
  const resent = socket.allOf('publish').slice(3)
  assert.deepEqual(resent.map((p) => p.data), [2, 3, 4])
  assert.deepEqual(resent.slice(0, 2).map((p) => p.msgId), [p2!.msgId, p3!.msgId])
  socket.receive(...resent.map((p, i) => ({ id: p.id, result: { offset: i + 2, epoch: 'e' } })))
  await microtasks()
  assert.deepEqual([...calls, later].map((c) => (c.value as { offset: number }).offset), [1, 2, 3, 4])
  client.close()
})

const unavailable = { code: 112, message: 'engine unavailable', temporary: true }

/** Publishes 1 and 2 in flight; publish `refused` gets a temporary refusal, and its retry hold runs out. */
async function refusedWhileOtherInFlight(refused: 1 | 2) {
  const { client } = makeClient()
  const socket = await connected(client)
  const calls = [1, 2].map((n) => track(client.publish('c', n)))
  await microtasks()
  const [p1, p2] = socket.allOf('publish')
  socket.receive({ id: (refused === 1 ? p1 : p2)!.id, error: unavailable })
  await microtasks()
  mock.timers.tick(5000)
  await microtasks()
  return { client, socket, calls, p1, p2 }
}

test('a retry never overtakes an older command still in flight: it goes after that one is settled', async () => {
  // 2 is refused while 1 is still in flight: 1 may be refused too, and its retry must land first.
  const { client, socket, calls, p1, p2 } = await refusedWhileOtherInFlight(2)
  assert.equal(socket.allOf('publish').length, 2, 'the retry of 2 waits while 1 is in flight')
  socket.receive({ id: p1!.id, error: unavailable })
  await microtasks()
  mock.timers.tick(5000)
  await microtasks()
  const resent = socket.allOf('publish').slice(2)
  assert.deepEqual(resent.map((p) => p.msgId), [p1!.msgId, p2!.msgId], 'both again, in issue order')
  socket.receive(...resent.map((p, i) => ({ id: p.id, result: { offset: i + 1, epoch: 'e' } })))
  await microtasks()
  assert.deepEqual(calls.map((c) => (c.value as { offset: number }).offset), [1, 2])
  client.close()
})

test('after a temporary refusal, a new publish waits behind the older ones still in flight: they may be refused too', async () => {
  // 1 is refused while 2 is in flight; the retry hold ends before 2's reply comes back.
  const { client, socket, calls, p1, p2 } = await refusedWhileOtherInFlight(1)
  calls.push(track(client.publish('c', 3)))
  await microtasks()
  mock.timers.tick(5000)
  await microtasks()
  assert.deepEqual(
    socket.allOf('publish').slice(2).map((p) => p.data),
    [1],
    'the retry of 1 may go (it is older than 2), 3 may not overtake 2',
  )
  // 2 is refused too; the retry of 1 is stored: 2 goes again before 3.
  socket.receive({ id: p2!.id, error: unavailable })
  await microtasks()
  const [r1] = socket.allOf('publish').slice(2)
  socket.receive({ id: r1!.id, result: { offset: 1, epoch: 'e' } })
  await microtasks()
  mock.timers.tick(5000)
  await microtasks()
  const later = socket.allOf('publish').slice(3)
  assert.deepEqual(later.map((p) => p.data), [2, 3], 'then 2, then 3: issue order')
  socket.receive(...later.map((p, i) => ({ id: p.id, result: { offset: i + 2, epoch: 'e' } })))
  await microtasks()
  assert.deepEqual(calls.map((c) => (c.value as { offset: number }).offset), [1, 2, 3])
  client.close()
})

test('an offline queue of large publishes is paced by the server-announced byte budget too, in order', async () => {
  const { client } = makeClient()
  const big = 'x'.repeat(9000)
  for (let i = 0; i < 6; i++) void client.publish('c', { i, big }).catch(() => {})
  client.connect()
  const socket = FakeSocket.last
  // 10 kB/s with a burst of 20 kB -> planned at 9 kB/s, half the burst (10 kB): one 9 kB publish
  // now (the connect took its envelope), then one per second.
  await socket.accept({ ping: 0, limits: { commandsPerSecond: 1000, commandBurst: 1000, bytesPerSecond: 10_000, bytesBurst: 20_000, maxPayload: 65536, maxBatch: 100 } })
  const sent = (): number[] => socket.allOf('publish').map((p) => (p.data as { i: number }).i)
  assert.deepEqual(sent(), [0])
  for (let step = 0; step < 5; step++) {
    mock.timers.tick(1100)
    await microtasks()
  }
  assert.deepEqual(sent(), [0, 1, 2, 3, 4, 5], 'every publish went, in order, none refused')
  client.close()
})

test('an offline queue is flushed at the pace of the server-announced command budget, in frames of its maxBatch', async () => {
  const { client } = makeClient()
  for (let i = 0; i < 12; i++) void client.publish('c', i).catch(() => {})
  client.connect()
  const socket = FakeSocket.last
  // Budget: 10/s with a burst of 8 -> the client plans with 90% of the rate and half the burst
  // (the rest absorbs frames that reach the server in clumps): 9/s, burst 4, minus the connect.
  await socket.accept({ ping: 0, limits: { commandsPerSecond: 10, commandBurst: 8, maxPayload: 65536, maxBatch: 2 } })
  assert.deepEqual(socket.allOf('publish').map((p) => p.data), [0, 1, 2])
  assert.equal(socket.frames, 3, 'connect, then 3 publishes in frames of at most 2')
  mock.timers.tick(111)
  await microtasks()
  assert.equal(socket.allOf('publish').length, 3)
  mock.timers.tick(1)
  await microtasks()
  assert.equal(socket.allOf('publish').length, 4)
  // One more per ~111 ms: the remaining 8 need about 0.9 s.
  for (let step = 0; step < 8; step++) {
    mock.timers.tick(112)
    await microtasks()
  }
  assert.deepEqual(socket.allOf('publish').map((p) => p.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  client.close()
})
