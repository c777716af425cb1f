import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { RawClient, startServer, waitFor } from './helpers.js'

describe('drain', () => {
  it('closes connections with restart spread over the window, refuses new ones, and resolves when empty', async (t) => {
    const srv = await startServer()
    // A failed assertion must not leave the node open: the test file would never exit.
    t.after(() => srv.close())
    const n = 200
    const clients = Array.from({ length: n }, () => new RawClient(srv.url))
    await Promise.all(clients.map((c) => c.connect()))
    assert.equal(srv.gw.connectionCount, n)
    assert.equal(srv.gw.isReady(), true)
    const closedAt: number[] = []
    for (const c of clients) c.ws.on('close', () => closedAt.push(Date.now()))
    const t0 = Date.now()
    const drained = srv.gw.close({ drainMs: 1000 })
    assert.equal(srv.gw.isReady(), false, 'not ready as soon as the drain starts')
    assert.equal(srv.gw.draining, true)
    // A new connection during the drain is refused before the upgrade: 503 where the HTTP server
    // is the application's (ws transport), no listener at all where the node owns it (uWS closes
    // its listening socket as the drain starts, so that another process on the port takes them).
    const late = new RawClient(srv.url)
    await assert.rejects(late.opened(), (err: Error & { status?: number }) =>
      srv.gw.options.transport === 'uws' ? /ECONNREFUSED/.test(err.message) : err.status === 503,
    )
    await drained
    await waitFor(() => closedAt.length === n, 3000, 'all clients closed')
    for (const c of clients) assert.equal(c.closed?.code, CloseCodes.restart.code)
    const rel = closedAt.map((t) => t - t0).sort((a, b) => a - b)
    assert.ok((rel[0] as number) < 250, `first close at ${rel[0]} ms`)
    assert.ok((rel[n - 1] as number) > 700, `last close at ${rel[n - 1]} ms: not spread`)
    // No 100 ms window holds more than a third of the clients (unspread, all 200 land in one).
    let peak = 0
    for (let i = 0, j = 0; i < n; i++) {
      while ((rel[i] as number) - (rel[j] as number) > 100) j++
      peak = Math.max(peak, i - j + 1)
    }
    assert.ok(peak <= n / 3, `peak of ${peak} closes in 100 ms`)
    assert.equal(srv.gw.connectionCount, 0)
    await srv.close()
  })

  it('drainMs 0 closes everything at once', async () => {
    const srv = await startServer()
    const clients = Array.from({ length: 20 }, () => new RawClient(srv.url))
    await Promise.all(clients.map((c) => c.connect()))
    await srv.close()
    await Promise.all(clients.map((c) => c.waitClosed()))
    for (const c of clients) assert.equal(c.closed?.code, CloseCodes.restart.code)
  })
})
