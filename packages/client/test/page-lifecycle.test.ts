// The page lifecycle under mock timers (setTimeout + Date) with an in-memory socket: a page that
// comes back (visible, resumed, online on a new network) checks its connection with a ping and
// drops it when no reply comes in time; a watchdog whose own timer ran late asks for that check
// instead of declaring the server dead; the back/forward cache closes the socket and pageshow
// reconnects. Chromium runs the same paths for real in browser-lifecycle.test.ts.
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import { HoldfastClient, type DisconnectedEvent, type StateChange } from '../src/index.js'
import { Watchdog } from '../src/watchdog.js'
import { FakeSocket, microtasks, useFakeClock } from './helpers/fake-socket.js'

useFakeClock()

/** A window (globalThis) and a document with the events a browser page has. */
function fakePage(t: TestContext): { window: EventTarget; document: EventTarget & { visibilityState: string } } {
  const window = new EventTarget()
  const document = Object.assign(new EventTarget(), { visibilityState: 'visible' })
  const g = globalThis as { addEventListener?: unknown; removeEventListener?: unknown; document?: unknown }
  g.addEventListener = window.addEventListener.bind(window)
  g.removeEventListener = window.removeEventListener.bind(window)
  g.document = document
  t.after(() => {
    delete g.addEventListener
    delete g.removeEventListener
    delete g.document
  })
  return { window, document }
}

function pageEvent(type: string, persisted?: boolean): Event {
  return Object.assign(new Event(type), persisted === undefined ? {} : { persisted })
}

async function connected(options = {}): Promise<{ client: HoldfastClient; states: StateChange[]; drops: DisconnectedEvent[]; socket: FakeSocket }> {
  const client = new HoldfastClient('ws://test/ws', { WebSocket: FakeSocket, httpFallback: false, healthCheckTimeoutMs: 2000, ...options })
  const states: StateChange[] = []
  const drops: DisconnectedEvent[] = []
  client.on('state', (s) => states.push(s))
  client.on('disconnected', (d) => drops.push(d))
  client.on('error', () => {})
  client.connect()
  const socket = FakeSocket.last
  await socket.accept({ ping: 25_000 })
  return { client, states, drops, socket }
}

test('watchdog: silence past the bound fires; a timer that itself ran late asks for a check instead', () => {
  const fired: string[] = []
  const dog = new Watchdog(
    (silent) => fired.push(`timeout ${silent}`),
    (late) => fired.push(`suspect ${late}`),
  )
  dog.start(1000)
  mock.timers.tick(1000)
  assert.deepEqual(fired, ['timeout 1000'])

  dog.start(1000)
  // The event loop stalls (a frozen page): the clock moves 60 s while the timer cannot run.
  mock.timers.setTime(Date.now() + 60_000)
  mock.timers.tick(0)
  assert.deepEqual(fired.slice(1), ['suspect 59000'])
  assert.ok(dog.running, 'it keeps watching, from now')
  mock.timers.tick(999)
  assert.equal(fired.length, 2)
  mock.timers.tick(1)
  assert.deepEqual(fired.slice(2), ['timeout 1000'])
  dog.stop()
})

test('visible again: a ping with a short deadline; a reply keeps the connection', async (t) => {
  const { document } = fakePage(t)
  const { client, socket } = await connected()
  document.visibilityState = 'hidden'
  document.dispatchEvent(pageEvent('visibilitychange'))
  await microtasks()
  assert.equal(socket.allOf('ping').length, 0, 'going hidden changes nothing')
  document.visibilityState = 'visible'
  document.dispatchEvent(pageEvent('visibilitychange'))
  document.dispatchEvent(pageEvent('visibilitychange'))
  await microtasks()
  const pings = socket.allOf('ping')
  assert.equal(pings.length, 1, 'one check at a time')
  mock.timers.tick(1999)
  socket.receive({ id: pings[0]?.id as number, result: {} })
  mock.timers.tick(10_000)
  assert.equal(client.state, 'connected')
  client.close()
})

test('resumed after a freeze and no reply in time: dropped as heartbeat_timeout and reconnected', async (t) => {
  const { document } = fakePage(t)
  const { client, states, socket } = await connected()
  document.dispatchEvent(pageEvent('resume'))
  await microtasks()
  assert.equal(socket.allOf('ping').length, 1)
  mock.timers.tick(1999)
  assert.equal(client.state, 'connected')
  mock.timers.tick(1)
  assert.equal(client.state, 'disconnected')
  assert.equal(states.at(-1)?.reason.name, 'heartbeat_timeout')
  assert.match(states.at(-1)?.reason.message ?? '', /page resumed after a freeze: no reply to a ping within 2000 ms/)
  assert.ok(socket.terminated)
  mock.timers.tick(1000)
  assert.equal(FakeSocket.instances.length, 2, 'a new attempt after the backoff')
  client.close()
})

test('a watchdog timer that ran late (throttled tab) checks with a ping instead of dropping a live connection', async () => {
  const { client, socket } = await connected({ maxServerPingDelayMs: 5000 })
  mock.timers.setTime(Date.now() + 5 * 60_000)
  mock.timers.tick(0)
  await microtasks()
  assert.equal(client.state, 'connected', 'no false heartbeat timeout')
  const ping = socket.lastOf('ping')
  socket.receive({ id: ping.id, result: {} })
  mock.timers.tick(30_000 - 1)
  assert.equal(client.state, 'connected')
  mock.timers.tick(1)
  assert.equal(client.state, 'disconnected', 'real silence still counts')
  client.close()
})

test('visible while waiting out a backoff: the next attempt is made now', async (t) => {
  const { document } = fakePage(t)
  const { client, drops } = await connected()
  FakeSocket.last.serverClose(4001) // try later: backoff
  assert.ok((drops.at(-1)?.reconnectInMs ?? 0) > 0)
  assert.equal(FakeSocket.instances.length, 1)
  document.dispatchEvent(pageEvent('visibilitychange'))
  assert.equal(client.state, 'connecting')
  assert.equal(FakeSocket.instances.length, 2)
  client.close()
})

test('back/forward cache: pagehide (persisted) closes the socket and schedules nothing; pageshow reconnects', async (t) => {
  const { window } = fakePage(t)
  const { client, drops, socket } = await connected()
  window.dispatchEvent(pageEvent('pagehide', false))
  assert.equal(client.state, 'connected', 'an unloading page is left to the browser')
  window.dispatchEvent(pageEvent('pagehide', true))
  assert.equal(client.state, 'disconnected')
  assert.equal(drops.at(-1)?.reconnectInMs, null)
  assert.equal(drops.at(-1)?.reason.name, 'going_away')
  assert.deepEqual(socket.closedWith?.code, 1000, 'closed cleanly (a page may only send 1000 or 4xxx)')
  mock.timers.tick(10 * 60_000)
  assert.equal(FakeSocket.instances.length, 1)
  window.dispatchEvent(pageEvent('pageshow', true))
  assert.equal(client.state, 'connecting')
  await FakeSocket.last.accept()
  assert.equal(client.state, 'connected')
  client.close()
})

test('online while connected (the network changed under the socket): checked with a ping', async (t) => {
  const { window } = fakePage(t)
  const { client, socket } = await connected()
  window.dispatchEvent(pageEvent('online'))
  await microtasks()
  assert.equal(socket.allOf('ping').length, 1)
  mock.timers.tick(2000)
  assert.equal(client.state, 'disconnected')
  client.close()
  window.dispatchEvent(pageEvent('pageshow', true))
  window.dispatchEvent(pageEvent('online'))
  assert.equal(client.state, 'closed', 'close() removed the listeners')
})
