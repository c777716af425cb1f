// Connection timing under node:test's mock timers (setTimeout + Date), with an in-memory socket:
// backoff scheduling, the stable reset, the heartbeat watchdog, the connect timeout, token refresh,
// close advice and the browser offline/online events. Math.random is pinned to 0.5, so every
// jittered delay is the middle of its window.
import assert from 'node:assert/strict'
import { mock, test } from 'node:test'
import type { ClientOptions } from '../src/options.js'
import { HoldfastClient, type DisconnectedEvent, type StateChange } from '../src/index.js'
import { FakeSocket, microtasks, useFakeClock } from './helpers/fake-socket.js'

useFakeClock()

function makeClient(options: ClientOptions = {}): { client: HoldfastClient; states: StateChange[]; drops: DisconnectedEvent[] } {
  // An in-memory socket and no HTTP server: the HTTP-streaming fallback has nothing to talk to here.
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket, httpFallback: false, ...options })
  const states: StateChange[] = []
  const drops: DisconnectedEvent[] = []
  client.on('state', (s) => states.push(s))
  client.on('disconnected', (d) => drops.push(d))
  client.on('error', () => {})
  return { client, states, drops }
}

/** backoff(attempt) with random 0.5 and defaults min 500, max 20000. */
const mid = (attempt: number) => 500 + 0.5 * (Math.min(20_000, 500 * 2 ** attempt) - 500)

test('failed attempts are retried after the full-jitter backoff of attempts 1, 2, 3…', async () => {
  const { client, drops } = makeClient()
  client.connect()
  assert.equal(client.state, 'connecting')
  for (let attempt = 1; attempt <= 8; attempt++) {
    const sockets = FakeSocket.instances.length
    FakeSocket.last.serverClose(1006)
    assert.equal(client.state, 'disconnected')
    const delay = mid(attempt)
    assert.equal(drops.at(-1)?.reconnectInMs, delay)
    mock.timers.tick(delay - 1)
    assert.equal(FakeSocket.instances.length, sockets, `attempt ${attempt} came early`)
    mock.timers.tick(1)
    assert.equal(FakeSocket.instances.length, sockets + 1, `attempt ${attempt} did not come`)
    assert.equal(client.state, 'connecting')
  }
  assert.equal(mid(8), 500 + 0.5 * 19_500, "attempt 8 is at the cap")
  client.close()
})

test('the attempt counter resets only after the connection stayed up stableAfterMs', async () => {
  const { client, drops } = makeClient({ stableAfterMs: 5000 })
  client.connect()
  FakeSocket.last.serverClose(1006) // attempt 1
  mock.timers.tick(mid(1))
  FakeSocket.last.serverClose(1006) // attempt 2
  mock.timers.tick(mid(2))
  await FakeSocket.last.accept()
  assert.equal(client.state, 'connected')
  mock.timers.tick(4999)
  FakeSocket.last.serverClose(1006) // not stable yet: attempt 3
  assert.equal(drops.at(-1)?.reconnectInMs, mid(3))
  mock.timers.tick(mid(3))
  await FakeSocket.last.accept()
  mock.timers.tick(5000)
  FakeSocket.last.serverClose(1006) // stable: back to attempt 1
  assert.equal(drops.at(-1)?.reconnectInMs, mid(1))
  client.close()
})

test('maxReconnectAttempts: the client closes instead of trying again', () => {
  const { client, states } = makeClient({ maxReconnectAttempts: 2 })
  client.connect()
  FakeSocket.last.serverClose(1006)
  mock.timers.tick(mid(1))
  FakeSocket.last.serverClose(1006)
  mock.timers.tick(mid(2))
  FakeSocket.last.serverClose(1006)
  assert.equal(client.state, 'closed')
  assert.match(states.at(-1)?.reason.message ?? '', /gave up after 2/)
  mock.timers.tick(60_000)
  assert.equal(FakeSocket.instances.length, 3)
})

test('restart close: the first reconnect comes within restartJitterMs, to the next URL', async () => {
  const client = new HoldfastClient(['ws://a/ws', 'ws://b/ws'], { WebSocket: FakeSocket })
  const drops: DisconnectedEvent[] = []
  client.on('disconnected', (d) => drops.push(d))
  client.connect()
  await FakeSocket.last.accept()
  mock.timers.tick(10_000)
  FakeSocket.last.serverClose(4000, 'draining')
  assert.equal(drops.at(-1)?.reconnectInMs, 500)
  assert.equal(drops.at(-1)?.reason.name, 'restart')
  mock.timers.tick(500)
  assert.equal(FakeSocket.last.url, 'ws://b/ws')
  client.close()
})

test('a disconnect push decides, not the close code a proxy rewrote', async () => {
  const { client, states } = makeClient()
  client.connect()
  await FakeSocket.last.accept()
  const socket = FakeSocket.last
  socket.receive({ type: 'disconnect', code: 4011, reason: 'session taken over' })
  socket.serverClose(1006)
  assert.equal(client.state, 'closed')
  assert.equal(states.at(-1)?.reason.name, 'taken_over')
  mock.timers.tick(120_000)
  assert.equal(FakeSocket.instances.length, 1)
})

test('heartbeat watchdog: frames keep it quiet, silence beyond ping + maxServerPingDelayMs drops the socket', async () => {
  const { client, states } = makeClient({ maxServerPingDelayMs: 500 })
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 1000 })
  for (let i = 0; i < 10; i++) {
    mock.timers.tick(1000)
    socket.receive({ type: 'ping' })
  }
  await microtasks()
  assert.equal(socket.allOf('pong').length, 10)
  assert.equal(client.state, 'connected')
  mock.timers.tick(1499)
  assert.equal(client.state, 'connected')
  mock.timers.tick(1)
  assert.equal(client.state, 'disconnected')
  assert.equal(states.at(-1)?.reason.code, 4005)
  assert.equal(states.at(-1)?.reason.name, 'heartbeat_timeout')
  assert.ok(socket.terminated, 'a half-open socket is terminated, not closed politely')
  client.close()
})

test('watchdog uses one timer: 10,000 frames create no timers', async () => {
  const { client } = makeClient()
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 1000 })
  let created = 0
  const real = globalThis.setTimeout
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    created++
    return real(...args)
  }) as typeof setTimeout
  try {
    for (let i = 0; i < 10_000; i++) socket.receive({ type: 'message', data: i })
  } finally {
    globalThis.setTimeout = real
  }
  assert.equal(created, 0)
  client.close()
})

test('connect timeout covers the socket opening and the connect reply', async () => {
  const { client, states } = makeClient({ connectTimeoutMs: 3000 })
  client.connect()
  mock.timers.tick(2999)
  assert.equal(client.state, 'connecting')
  mock.timers.tick(1)
  assert.equal(client.state, 'disconnected')
  assert.equal(states.at(-1)?.reason.code, 4006)
  assert.ok(FakeSocket.last.terminated)
  mock.timers.tick(mid(1))
  FakeSocket.last.open() // opens, but the connect reply never comes
  mock.timers.tick(3000)
  assert.equal(client.state, 'disconnected')
  assert.equal(states.at(-1)?.reason.name, 'connect_timeout')
  client.close()
})

test('token refresh: getToken shortly before expiry, then a refresh command', async () => {
  let n = 0
  const getToken = mock.fn(async () => `t${++n}`)
  const { client } = makeClient({ getToken })
  client.connect()
  await microtasks()
  assert.equal(getToken.mock.callCount(), 1, 'no token: getToken before the first connect')
  const socket = FakeSocket.last
  await socket.accept({ expiresIn: 60_000, ping: 0 }) // no watchdog: this test is about the token
  assert.equal(socket.lastOf('connect').token, 't1')
  mock.timers.tick(49_999)
  assert.equal(getToken.mock.callCount(), 1)
  mock.timers.tick(1)
  await microtasks()
  assert.equal(getToken.mock.callCount(), 2)
  const refresh = socket.lastOf('refresh')
  assert.equal(refresh.token, 't2')
  socket.receive({ id: refresh.id, result: { expiresIn: 8000 } })
  mock.timers.tick(3999)
  assert.equal(getToken.mock.callCount(), 2)
  mock.timers.tick(1)
  await microtasks()
  assert.equal(socket.lastOf('refresh').token, 't3')
  assert.equal(client.state, 'connected')
  client.close()
})

test('unauthorized: getToken, reconnect quickly; unauthorized again: closed', async () => {
  let n = 0
  const getToken = mock.fn(() => `t${++n}`)
  const { client, states } = makeClient({ token: 't0', getToken })
  client.connect()
  await FakeSocket.last.accept()
  mock.timers.tick(10_000)
  FakeSocket.last.serverClose(4009, 'bad token')
  assert.equal(client.state, 'disconnected')
  mock.timers.tick(500)
  await microtasks()
  assert.equal(getToken.mock.callCount(), 1)
  FakeSocket.last.open()
  await microtasks()
  assert.equal(FakeSocket.last.lastOf('connect').token, 't1')
  FakeSocket.last.serverClose(4009, 'still bad')
  assert.equal(client.state, 'closed')
  assert.match(states.at(-1)?.reason.message ?? '', /twice/)
  assert.equal(FakeSocket.instances.length, 2)
})

test('an unauthorized connect reply counts like the close code', async () => {
  const { client } = makeClient({ token: 'old', getToken: () => 'new' })
  client.connect()
  const socket = FakeSocket.last
  socket.open()
  await microtasks()
  socket.receive({ id: socket.lastOf('connect').id, error: { code: 101, message: 'invalid token', temporary: false } })
  assert.equal(client.state, 'disconnected')
  mock.timers.tick(500)
  await microtasks()
  FakeSocket.last.open()
  await microtasks()
  assert.equal(FakeSocket.last.lastOf('connect').token, 'new')
  client.close()
})

test('without getToken an unauthorized close stops the client', async () => {
  const { client } = makeClient({ token: 't' })
  client.connect()
  await FakeSocket.last.accept()
  FakeSocket.last.serverClose(4008)
  assert.equal(client.state, 'closed')
})

test('session resume: the session from the connect result is sent on every reconnect', async () => {
  const { client } = makeClient()
  const resumed: boolean[] = []
  client.on('connected', (c) => resumed.push(c.resumed))
  client.connect()
  await FakeSocket.last.accept({ session: 'S' })
  assert.equal(FakeSocket.last.lastOf('connect').session, undefined)
  FakeSocket.last.serverClose(1006)
  mock.timers.tick(mid(1))
  await FakeSocket.last.accept({ session: 'S' })
  assert.deepEqual(FakeSocket.last.lastOf('connect').session, { id: 'S', token: 'st1' })
  assert.deepEqual(resumed, [false, true])
  assert.equal(client.sessionId, 'S')
  client.close()
})

test('browser offline drops at once and waits; online reconnects at once; close() removes the listeners', async (t) => {
  const target = new EventTarget()
  const g = globalThis as { addEventListener?: unknown; removeEventListener?: unknown }
  g.addEventListener = target.addEventListener.bind(target)
  g.removeEventListener = target.removeEventListener.bind(target)
  t.after(() => {
    delete g.addEventListener
    delete g.removeEventListener
  })
  const { client, drops } = makeClient()
  client.connect()
  await FakeSocket.last.accept()
  target.dispatchEvent(new Event('visibilitychange'))
  assert.equal(client.state, 'connected')
  target.dispatchEvent(new Event('offline'))
  assert.equal(client.state, 'disconnected')
  assert.equal(drops.at(-1)?.reconnectInMs, null)
  assert.ok(FakeSocket.last.terminated)
  mock.timers.tick(10 * 60_000)
  assert.equal(FakeSocket.instances.length, 1, 'no attempts while offline')
  target.dispatchEvent(new Event('online'))
  assert.equal(client.state, 'connecting')
  assert.equal(FakeSocket.instances.length, 2)
  await FakeSocket.last.accept()
  client.close()
  target.dispatchEvent(new Event('offline'))
  target.dispatchEvent(new Event('online'))
  assert.equal(client.state, 'closed')
  assert.equal(FakeSocket.instances.length, 2)
})

test('close() during a pending reconnect cancels it; connect() after close() starts over', () => {
  const { client, states } = makeClient()
  client.connect()
  FakeSocket.last.serverClose(1006)
  client.close()
  mock.timers.tick(60_000)
  assert.equal(FakeSocket.instances.length, 1)
  assert.deepEqual(
    states.map((s) => s.to),
    ['connecting', 'disconnected', 'closed'],
  )
  client.connect()
  assert.equal(client.state, 'connecting')
  assert.equal(FakeSocket.instances.length, 2)
  client.close()
})

test('close() while getToken is pending: the late token opens nothing', async () => {
  let release: (t: string) => void = () => {}
  const { client } = makeClient({ getToken: () => new Promise<string>((r) => (release = r)) })
  client.connect()
  await microtasks()
  client.close()
  release('late')
  await microtasks()
  assert.equal(FakeSocket.instances.length, 0)
  assert.equal(client.state, 'closed')
})

test('a malformed connect result is a protocol error: drop and back off, no crash', async () => {
  const { client, states } = makeClient()
  client.connect()
  const socket = FakeSocket.last
  socket.open()
  await microtasks()
  socket.receive({ id: socket.lastOf('connect').id, result: { client: 'c' } })
  assert.equal(client.state, 'disconnected')
  assert.equal(states.at(-1)?.reason.name, 'bad_request')
  mock.timers.tick(mid(1))
  assert.equal(FakeSocket.instances.length, 2)
  client.close()
})
