// Subscriptions against an in-memory socket: positions, dedupe, gaps, recovery and its merge,
// server-side subscriptions. The application must see each publication once, in offset order.
import assert from 'node:assert/strict'
import { mock, test } from 'node:test'
import type { PubPush, SubscribeResult } from '@holdfast/protocol'
import { HoldfastClient, type PublicationEvent, type SubscribedEvent, type Subscription, type UnsubscribedEvent } from '../src/index.js'
import { FakeSocket, microtasks, useFakeClock } from './helpers/fake-socket.js'

useFakeClock()

interface Seen {
  pubs: number[]
  subscribed: SubscribedEvent[]
  unsubscribed: UnsubscribedEvent[]
  errors: string[]
}

function watch(sub: Subscription): Seen {
  const seen: Seen = { pubs: [], subscribed: [], unsubscribed: [], errors: [] }
  sub.on('publication', (p: PublicationEvent) => seen.pubs.push(p.offset))
  sub.on('subscribed', (s) => seen.subscribed.push(s))
  sub.on('unsubscribed', (u) => seen.unsubscribed.push(u))
  sub.on('error', (e) => seen.errors.push(e.code))
  return seen
}

const pub = (offset: number, epoch = 'E', channel = 'ch'): PubPush => ({ type: 'pub', channel, epoch, offset, data: { n: offset } })

function result(offset: number, over: Partial<SubscribeResult> = {}): SubscribeResult {
  return { epoch: 'E', offset, recovered: false, wasRecovering: false, publications: [], ...over }
}

async function setup(): Promise<{ client: HoldfastClient; sub: Subscription; seen: Seen; socket: FakeSocket }> {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.on('error', () => {})
  const sub = client.subscribe('ch')
  const seen = watch(sub)
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  const cmd = socket.lastOf('subscribe')
  assert.equal(cmd.recover, undefined, 'the first subscribe has no position to recover')
  socket.receive({ id: cmd.id, result: result(10) })
  await microtasks()
  return { client, sub, seen, socket }
}

async function reconnect(client: HoldfastClient): Promise<FakeSocket> {
  FakeSocket.last.serverClose(1006)
  mock.timers.tick(1000)
  await FakeSocket.last.accept({ ping: 0 })
  assert.equal(client.state, 'connected')
  return FakeSocket.last
}

test('the first subscribe result gives the position; live publications are delivered in order', async () => {
  const { client, sub, seen, socket } = await setup()
  assert.deepEqual(seen.subscribed, [{ channel: 'ch', recovered: false, wasRecovering: false, epoch: 'E', offset: 10 }])
  assert.equal(sub.state, 'subscribed')
  socket.receive(pub(11), pub(12), pub(13))
  assert.deepEqual(seen.pubs, [11, 12, 13])
  assert.deepEqual(sub.position, { epoch: 'E', offset: 13 })
  client.close()
})

test('duplicates (offset already delivered) are dropped', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(11), pub(11), pub(9), pub(12), pub(10), pub(12))
  assert.deepEqual(seen.pubs, [11, 12])
  client.close()
})

test('a gap triggers a recovering resubscribe; replay and held live publications merge without loss or duplicates', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(11), pub(14))
  assert.deepEqual(seen.pubs, [11])
  await microtasks()
  const unsub = socket.lastOf('unsubscribe')
  const resub = socket.lastOf('subscribe')
  assert.ok(unsub.id < resub.id, 'the server subscription is dropped before resubscribing')
  assert.deepEqual(resub.recover, { offset: 11, epoch: 'E' })
  // Live traffic keeps coming while the recovery is in flight; it is held, not lost.
  socket.receive(pub(15), pub(16))
  assert.deepEqual(seen.pubs, [11])
  socket.receive({
    id: resub.id,
    result: result(15, { recovered: true, wasRecovering: true, publications: [12, 13, 14, 15].map((o) => ({ offset: o, data: o })) }),
  })
  assert.deepEqual(seen.pubs, [11, 12, 13, 14, 15, 16])
  assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: true, wasRecovering: true, epoch: 'E', offset: 11 })
  socket.receive(pub(16), pub(17))
  assert.deepEqual(seen.pubs, [11, 12, 13, 14, 15, 16, 17])
  client.close()
})

test('after a reconnect it resubscribes with recover and replays what was missed, exactly once', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(11), pub(12))
  const s2 = await reconnect(client)
  const cmd = s2.lastOf('subscribe')
  assert.deepEqual(cmd.recover, { offset: 12, epoch: 'E' })
  s2.receive(pub(14)) // live, arrives before the reply: held
  s2.receive({ id: cmd.id, result: result(14, { recovered: true, wasRecovering: true, publications: [12, 13, 14].map((o) => ({ offset: o, data: o })) }) })
  s2.receive(pub(14), pub(15))
  assert.deepEqual(seen.pubs, [11, 12, 13, 14, 15])
  assert.equal(seen.subscribed.at(-1)?.recovered, true)
  client.close()
})

test('recovered:false tells the app (reload) and adopts the new position', async () => {
  const { client, sub, seen, socket } = await setup()
  socket.receive(pub(11))
  const s2 = await reconnect(client)
  const cmd = s2.lastOf('subscribe')
  s2.receive({ id: cmd.id, result: { epoch: 'F', offset: 3, recovered: false, wasRecovering: true, publications: [] } })
  assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'F', offset: 3 })
  assert.deepEqual(sub.position, { epoch: 'F', offset: 3 })
  s2.receive(pub(4, 'F'))
  assert.deepEqual(seen.pubs, [11, 4])
  client.close()
})

test('a live publication from another epoch resubscribes with recover (and learns recovered:false)', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(1, 'NEW'))
  await microtasks()
  const cmd = socket.lastOf('subscribe')
  assert.deepEqual(cmd.recover, { offset: 10, epoch: 'E' })
  socket.receive({ id: cmd.id, result: { epoch: 'NEW', offset: 1, recovered: false, wasRecovering: true, publications: [] } })
  assert.equal(seen.subscribed.at(-1)?.recovered, false)
  assert.deepEqual(seen.pubs, [])
  client.close()
})

test('"recovered" that stops short of the stream top is treated as a gap, not skipped', async () => {
  const { client, seen, socket } = await setup()
  const s2 = await reconnect(client)
  const cmd = s2.lastOf('subscribe')
  s2.receive({ id: cmd.id, result: result(13, { recovered: true, wasRecovering: true, publications: [{ offset: 11, data: 11 }] }) })
  await microtasks()
  assert.deepEqual(seen.pubs, [11])
  const again = s2.lastOf('subscribe')
  assert.notEqual(again.id, cmd.id)
  assert.deepEqual(again.recover, { offset: 11, epoch: 'E' })
  client.close()
})

test('a gap right after a gap backs off instead of spinning', async () => {
  const { client, socket } = await setup()
  const before = socket.allOf('subscribe').length
  socket.receive(pub(20))
  await microtasks()
  const first = socket.lastOf('subscribe')
  assert.equal(socket.allOf('subscribe').length, before + 1, 'a live gap resubscribes at once')
  // The recovery comes back "recovered" yet short of the top: a second problem in a row.
  socket.receive({ id: first.id, result: result(13, { recovered: true, wasRecovering: true }) })
  await microtasks()
  assert.equal(socket.lastOf('subscribe').id, first.id, 'the repeat waits for a backoff')
  mock.timers.tick(1250) // backoff(2) with random 0.5
  await microtasks()
  const second = socket.lastOf('subscribe')
  assert.notEqual(second.id, first.id)
  assert.deepEqual(second.recover, { offset: 10, epoch: 'E' })
  socket.receive({ id: second.id, result: result(11, { recovered: true, wasRecovering: true, publications: [{ offset: 11, data: 11 }] }) })
  socket.receive(pub(12))
  await microtasks()
  assert.equal(socket.lastOf('subscribe').id, second.id, 'healthy again: no more resubscribes')
  client.close()
})

test('refusals: a permanent error ends the subscription; a temporary one retries after backoff', async () => {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.on('error', () => {})
  const denied = watch(client.subscribe('secret'))
  const busy = watch(client.subscribe('busy'))
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  const subs = socket.allOf('subscribe')
  const secret = subs.find((s) => s.channel === 'secret')!
  const b = subs.find((s) => s.channel === 'busy')!
  socket.receive({ id: secret.id, error: { code: 103, message: 'denied', temporary: false } })
  socket.receive({ id: b.id, error: { code: 112, message: 'engine down', temporary: true } })
  assert.deepEqual(denied.errors, ['permission_denied'])
  assert.equal(denied.unsubscribed.length, 1)
  assert.equal(denied.unsubscribed[0]?.error?.code, 'permission_denied')
  assert.equal(client.getSubscription('secret'), undefined)
  assert.deepEqual(busy.errors, ['engine_unavailable'])
  mock.timers.tick(750)
  await microtasks()
  const retry = socket.allOf('subscribe').filter((s) => s.channel === 'busy')
  assert.equal(retry.length, 2)
  socket.receive({ id: retry[1]!.id, result: result(0) })
  assert.equal(busy.subscribed.length, 1)
  client.close()
})

test('unrecoverable_position: subscribe fresh and report a failed recovery', async () => {
  const { client, seen } = await setup()
  const s2 = await reconnect(client)
  const cmd = s2.lastOf('subscribe')
  s2.receive({ id: cmd.id, error: { code: 115, message: 'trimmed', temporary: false } })
  await microtasks()
  const fresh = s2.lastOf('subscribe')
  assert.equal(fresh.recover, undefined)
  s2.receive({ id: fresh.id, result: result(50) })
  assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'E', offset: 50 })
  client.close()
})

test('unsubscribe(): sends unsubscribe, emits, forgets the position; subscribe() again starts fresh', async () => {
  const { client, sub, seen, socket } = await setup()
  sub.unsubscribe()
  await microtasks()
  assert.equal(socket.lastOf('unsubscribe').channel, 'ch')
  assert.equal(seen.unsubscribed[0]?.code, 1000)
  assert.equal(sub.state, 'unsubscribed')
  socket.receive(pub(11))
  assert.deepEqual(seen.pubs, [])
  const again = client.subscribe('ch')
  assert.notEqual(again, sub)
  await microtasks()
  assert.equal(socket.lastOf('subscribe').recover, undefined)
  client.close()
})

test('server-side subscriptions: announced, delivered, resubscribed or ended by the code advice', async () => {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  let seen: Seen | undefined
  client.on('subscription', (sub) => {
    seen = watch(sub)
  })
  socket.receive({ type: 'subscribe', channel: 'ch', epoch: 'E', offset: 5 })
  assert.ok(seen)
  assert.deepEqual(seen.subscribed, [{ channel: 'ch', recovered: false, wasRecovering: false, epoch: 'E', offset: 5 }])
  socket.receive(pub(6), { type: 'join', channel: 'ch', info: { client: 'x', user: 'u' } })
  assert.deepEqual(seen.pubs, [6])
  // The server ends it with "restart" advice: come back quickly, with recovery.
  socket.receive({ type: 'unsubscribe', channel: 'ch', code: 4000, reason: 'moving' })
  mock.timers.tick(500)
  await microtasks()
  assert.deepEqual(socket.lastOf('subscribe').recover, { offset: 6, epoch: 'E' })
  socket.receive({ id: socket.lastOf('subscribe').id, result: result(6, { recovered: true, wasRecovering: true }) })
  socket.receive({ type: 'unsubscribe', channel: 'ch', code: 4012, reason: 'kicked' })
  assert.equal(seen.unsubscribed.at(-1)?.code, 4012)
  assert.equal(client.getSubscription('ch'), undefined)
  client.close()
})

test('join and leave reach the subscription', async () => {
  const { client, sub, socket } = await setup()
  const events: string[] = []
  sub.on('join', (j) => events.push(`join ${j.info.user}`))
  sub.on('leave', (l) => events.push(`leave ${l.info.user}`))
  socket.receive({ type: 'join', channel: 'ch', info: { client: 'a', user: 'ann' } }, { type: 'leave', channel: 'ch', info: { client: 'a', user: 'ann' } })
  assert.deepEqual(events, ['join ann', 'leave ann'])
  client.close()
})

test('a throwing publication listener does not cost the others a publication', async () => {
  const { client, sub, seen, socket } = await setup()
  const errors: string[] = []
  sub.on('error', (e) => errors.push(e.message))
  sub.on('publication', (p) => {
    if (p.offset === 12) throw new Error('app bug')
  })
  socket.receive(pub(11), pub(12), pub(13))
  assert.deepEqual(seen.pubs, [11, 12, 13])
  assert.equal(errors.length, 1)
  assert.match(errors[0] ?? '', /app bug/)
  client.close()
})

test('close() keeps the positions: connect() again recovers', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(11))
  client.close()
  client.connect()
  await FakeSocket.last.accept({ ping: 0 })
  assert.deepEqual(FakeSocket.last.lastOf('subscribe').recover, { offset: 11, epoch: 'E' })
  assert.deepEqual(seen.pubs, [11])
  client.close()
})

test('a hot channel during a slow recovery: held publications are bounded; past the bound, resubscribe from the position', async () => {
  const { client, seen, socket } = await setup()
  socket.receive(pub(11), pub(13)) // gap: recovery in flight
  await microtasks()
  const first = socket.lastOf('subscribe')
  for (let o = 13; o < 13 + 10_001; o++) socket.receive(pub(o))
  socket.receive({ id: first.id, result: result(12, { recovered: true, wasRecovering: true, publications: [{ offset: 12, data: 12 }] }) })
  // Second trouble in a row (a gap, then an overflow): the resubscribe waits out backoff(2).
  mock.timers.tick(1250)
  await microtasks()
  const second = socket.lastOf('subscribe')
  assert.notEqual(second.id, first.id, 'the overflow made it resubscribe')
  assert.deepEqual(second.recover, { offset: 12, epoch: 'E' })
  assert.deepEqual(seen.pubs, [11, 12])
  client.close()
})

test('a malformed subscribe result is a refusal, not a crash', async () => {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.on('error', () => {})
  const seen = watch(client.subscribe('ch'))
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  socket.receive({ id: socket.lastOf('subscribe').id, result: { offset: 'x' } })
  assert.deepEqual(seen.errors, ['bad_request'])
  assert.equal(seen.unsubscribed.length, 1)
  assert.equal(client.state, 'connected')
  client.close()
})

test('a position at offset 0 takes offset 1 of any epoch, live and in a recovery; a later epoch change is still a gap', async () => {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.on('error', () => {})
  const sub = client.subscribe('ch')
  const seen = watch(sub)
  client.connect()
  let socket = FakeSocket.last
  await socket.accept({ ping: 0 })
  socket.receive({ id: socket.lastOf('subscribe').id, result: result(0, { epoch: 'EMPTY' }) })
  await microtasks()
  // The channel had never been published: its first publication comes in the stream's own epoch.
  socket.receive(pub(1, 'F'), pub(2, 'F'))
  await microtasks()
  assert.deepEqual(seen.pubs, [1, 2])
  assert.equal(socket.allOf('unsubscribe').length, 0, 'no resync')
  // Another epoch past offset 0 is a gap: the subscription recovers.
  socket.receive(pub(3, 'G'))
  await microtasks()
  assert.deepEqual(seen.pubs, [1, 2])
  assert.equal(socket.allOf('unsubscribe').length, 1)
  // A recovery from offset 0 of one epoch into another is a real recovery.
  const other = client.subscribe('zero')
  const zeroSeen = watch(other)
  await microtasks()
  const zeroCmd = socket.allOf('subscribe').find((c) => c.channel === 'zero')
  socket.receive({ id: zeroCmd?.id as number, result: result(0, { epoch: 'A' }) })
  await microtasks()
  socket = await reconnect(client)
  const cmd = socket.allOf('subscribe').find((c) => c.channel === 'zero')
  assert.deepEqual(cmd?.recover, { offset: 0, epoch: 'A' })
  socket.receive({ id: cmd?.id as number, result: result(2, { epoch: 'B', recovered: true, wasRecovering: true, publications: [{ offset: 1, data: 1 }, { offset: 2, data: 2 }] }) })
  await microtasks()
  assert.deepEqual(zeroSeen.pubs, [1, 2])
  assert.equal(zeroSeen.subscribed.at(-1)?.recovered, true)
  client.close()
})

test('a stored position is used only when the subscription knows none: it never rewinds a known one', async () => {
  const restore = (sub: Subscription, epoch: string, offset: number): void => (sub as unknown as { _restore(p: { epoch: string; offset: number }): void })._restore({ epoch, offset })
  // Before the first subscribe: the position recovered from.
  const fresh = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  fresh.on('error', () => {})
  const restored = fresh.subscribe('ch')
  restore(restored, 'S', 4)
  fresh.connect()
  await FakeSocket.last.accept({ ping: 0 })
  assert.deepEqual(FakeSocket.last.lastOf('subscribe').recover, { epoch: 'S', offset: 4 })
  fresh.close()

  // Known (E:10), and the connection dropped: an older stored position (another tab's, say) changes nothing.
  const { client, sub } = await setup()
  FakeSocket.last.serverClose(1006)
  restore(sub, 'OLD', 3)
  mock.timers.tick(1000)
  await FakeSocket.last.accept({ ping: 0 })
  assert.deepEqual(FakeSocket.last.lastOf('subscribe').recover, { epoch: 'E', offset: 10 })
  client.close()
})

test('a publication its schema refuses, in the middle of a recovery, is skipped: the rest of the replay is delivered', async () => {
  // A Standard Schema by hand: offset 12's data does not match.
  const schema = {
    '~standard': {
      version: 1 as const,
      vendor: 'test',
      validate: (d: unknown) => ((d as { n: number }).n === 12 ? { issues: [{ message: 'not this one' }] } : { value: d as { n: number } }),
    },
  }
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket })
  client.on('error', () => {})
  const sub = client.subscribe('ch', { schema })
  const seen = watch(sub)
  client.connect()
  await FakeSocket.last.accept({ ping: 0 })
  FakeSocket.last.receive({ id: FakeSocket.last.lastOf('subscribe').id, result: result(10) })
  await microtasks()
  const socket = await reconnect(client)
  const cmd = socket.lastOf('subscribe')
  assert.deepEqual(cmd.recover, { epoch: 'E', offset: 10 })
  const replay = [11, 12, 13].map((offset) => ({ offset, data: { n: offset } }))
  socket.receive({ id: cmd.id, result: result(13, { recovered: true, wasRecovering: true, publications: replay }) })
  await microtasks()
  socket.receive(pub(14))
  await microtasks()
  assert.deepEqual(seen.pubs, [11, 13, 14])
  assert.deepEqual(seen.errors, ['bad_request'])
  assert.equal(sub.state, 'subscribed')
  client.close()
})
