import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Connection } from '../src/connection.js'
import type { MemoryEngine } from '../src/engine/memory-engine.js'
import type { HoldfastOptions } from '../src/options.js'
import { isScheduled } from '../src/timer-wheel.js'
import { RawClient, TEST_TRANSPORT, startServer, turn, waitFor, type TestServer } from './helpers.js'

/** node:test runs this file in a child process without --expose-gc; V8 can still hand us gc(). */
function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc
  if (typeof g === 'function') return g
  setFlagsFromString('--expose_gc')
  return runInNewContext('gc') as () => void
}

const gc = getGc()

async function settledHeap(): Promise<number> {
  // Several rounds with turns between them: WeakRef targets and sockets' native parts are freed late.
  for (let i = 0; i < 4; i++) {
    await turn()
    gc()
  }
  return process.memoryUsage().heapUsed
}

function resources(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1
  return out
}

/**
 * Closed connections still on the timer wheel. A function of its own: a suspended async function
 * keeps its registers, and a stale one would hold the last connection deref'd here.
 */
function countScheduled(refs: Array<WeakRef<Connection>>): number {
  let n = 0
  for (const r of refs) {
    const conn = r.deref()
    if (conn !== undefined && isScheduled(conn)) n++
  }
  return n
}

function countAlive(refs: Array<WeakRef<Connection>>): number {
  return refs.filter((r) => r.deref() !== undefined).length
}

const CHANNELS = 50
const BATCH = 500
const OPTIONS: HoldfastOptions = {
  maxConnectionsPerIp: 100_000,
  connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
  // Pings flow during the test, so heartbeat rescheduling is part of what must leave no trace.
  pingIntervalMs: 1000,
  channels: { namespaces: { p: { presence: true } } },
}

const channelOf = (i: number): string => (i % 2 === 0 ? `leak-${i % CHANNELS}` : `p:leak-${i % CHANNELS}`)

interface Opened {
  clients: RawClient[]
  ids: string[]
}

/** Open `n` connections in batches, each connected and subscribed to one of CHANNELS channels. */
async function openMany(s: TestServer, n: number): Promise<Opened> {
  const clients: RawClient[] = []
  const ids: string[] = []
  for (let start = 0; start < n; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, n - start) }, (_, k) => start + k)
    const opened = await Promise.all(
      batch.map(async (i) => {
        const c = new RawClient(s.url, { protocol: i % 3 === 0 ? 'msgpack' : 'json' })
        const r = await c.connect()
        await c.call({ type: 'subscribe', channel: channelOf(i) })
        return { c, id: r.client }
      }),
    )
    for (const o of opened) {
      clients.push(o.c)
      ids.push(o.id)
    }
  }
  return { clients, ids }
}

describe('no leaks after 5,000 connections', { timeout: 120_000 }, () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer(OPTIONS)
  })
  after(async () => {
    await srv.close()
  })

  it('opens 5,000 connections, closes them every way, and returns to the baseline', async (t) => {
    const gw = srv.gw
    // Warm up: module state, JIT, buffer pools, channel streams in the engine and the counters'
    // keys are created once; the baseline is taken after that.
    {
      const warm = await openMany(srv, 500)
      for (const c of warm.clients) c.ws.close(1000)
      await waitFor(() => gw.connectionCount === 0 && warm.clients.every((c) => c.closed !== undefined), 10_000, 'warm-up to close')
      const warm2 = await openMany(srv, 200)
      await Promise.all(warm2.ids.map((client) => gw.disconnect({ client })))
      await waitFor(() => gw.connectionCount === 0 && warm2.clients.every((c) => c.closed !== undefined), 10_000, 'warm-up to close')
    }
    const baseResources = resources()
    const baseHeap = await settledHeap()

    const N = 5000
    const { clients, ids } = await openMany(srv, N)
    assert.equal(gw.connectionCount, N)
    assert.equal(gw.hub.size, CHANNELS)
    assert.equal(gw.bySession.size, N)
    const engine = gw.engine as MemoryEngine
    assert.equal(engine.counts().presence, N / 2)
    // Weak references to the server's connection objects: they must all be collectable at the end,
    // which proves nothing (timer wheel, hub, session map, send queue, closures) still holds one.
    const refs = [...gw.connections].map((c) => new WeakRef<Connection>(c))

    // Traffic: a publication per channel reaches every subscriber.
    for (let k = 0; k < CHANNELS; k++) {
      await gw.publish(`leak-${k}`, { k })
      await gw.publish(`p:leak-${k}`, { k })
    }
    await waitFor(() => clients.every((c) => c.pubs().length === 1), 20_000, 'every subscriber to get its publication')

    // Close: a quarter by a client close handshake, a quarter by dropping TCP, half by the server.
    const serverSide: Array<Promise<void>> = []
    for (let i = 0; i < N; i++) {
      const c = clients[i] as RawClient
      if (i % 4 === 0) c.ws.close(1000, 'bye')
      else if (i % 4 === 2) c.ws.terminate()
      else serverSide.push(gw.disconnect({ client: ids[i] as string }))
    }
    await Promise.all(serverSide)
    await waitFor(() => gw.connectionCount === 0, 20_000, 'every connection to be gone on the server')
    await waitFor(() => clients.every((c) => c.closed !== undefined), 20_000, 'every client to see its close')
    const kicked = clients.filter((c, i) => i % 4 === 1 || i % 4 === 3).every((c) => c.closed?.code === 4012)
    assert.ok(kicked, 'server-side closes carry the kicked code')

    assert.equal(gw.connectionCount, 0)
    assert.equal(gw.hub.size, 0, 'no channel left in the hub')
    assert.equal(gw.bySession.size, 0, 'no session left')
    assert.equal(engine.counts().presence, 0, 'no presence left')
    assert.equal(countScheduled(refs), 0, 'the timer wheel still holds closed connections')

    // Drop the client side too, then measure.
    clients.length = 0
    ids.length = 0
    serverSide.length = 0
    const heap = await settledHeap()
    const alive = countAlive(refs)
    assert.equal(alive, 0, `${alive} closed connection objects are still reachable`)
    assert.deepEqual(resources(), baseResources, 'active handles and timers are back to the baseline')
    const growthMb = (heap - baseHeap) / 1024 / 1024
    t.diagnostic(`heap after close vs baseline: ${growthMb >= 0 ? '+' : ''}${growthMb.toFixed(2)} MB; baseline resources: ${JSON.stringify(baseResources)}`)
    assert.ok(growthMb < 10, `heap grew by ${growthMb.toFixed(1)} MB`)
  })

  it('a drained node releases everything it held', async () => {
    const baseResources = resources()
    const other = await startServer(OPTIONS)
    const { clients } = await openMany(other, 500)
    assert.equal(other.gw.connectionCount, 500)
    const refs = [...other.gw.connections].map((c) => new WeakRef<Connection>(c))
    await other.close() // drain with drainMs 0, then close the HTTP server
    await waitFor(() => clients.every((c) => c.closed !== undefined), 10_000, 'every client to see the drain')
    assert.ok(clients.every((c) => c.closed?.code === 4000), 'drained connections close with restart')
    assert.equal(other.gw.connectionCount, 0)
    assert.equal(other.gw.hub.size, 0)
    assert.equal(other.gw.bySession.size, 0)
    clients.length = 0
    await settledHeap()
    assert.equal(countAlive(refs), 0, 'connection objects of the drained node are still reachable')
    assert.deepEqual(resources(), baseResources, 'the drained node left handles or timers behind')
  })

  it('an open connection does not keep its HTTP upgrade request alive', { skip: TEST_TRANSPORT === 'uws' ? 'uWS has no IncomingMessage: its request is copied into a plain object' : false }, async () => {
    const other = await startServer(OPTIONS)
    const requests: Array<WeakRef<object>> = []
    other.http?.prependListener('upgrade', (req: object) => requests.push(new WeakRef(req)))
    const { clients } = await openMany(other, 200)
    assert.equal(requests.length, 200)
    await settledHeap()
    const alive = requests.filter((r) => r.deref() !== undefined).length
    // Each retained request would cost its headers and parser state: kilobytes per connection.
    assert.equal(alive, 0, `${alive} of 200 upgrade requests are still reachable from open connections`)
    assert.equal(other.gw.connectionCount, 200)
    for (const c of clients) c.close()
    await other.close()
  })
})
