import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { RawClient, startServer, type TestServer } from './helpers.js'

describe('sessions', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  it('resuming a session from a second connection closes the older one with taken_over', async () => {
    srv = await startServer()
    const a = new RawClient(srv.url)
    const r1 = await a.connect()
    const b = new RawClient(srv.url)
    const r2 = await b.connect({ session: r1.session })
    assert.equal(r2.resumed, true)
    assert.equal(r2.session.id, r1.session.id)
    const closed = await a.waitClosed()
    assert.equal(closed.code, CloseCodes.taken_over.code)
    const push = a.pushes.find((p) => p.type === 'disconnect')
    assert.deepEqual(push && { type: push.type, code: (push as { code: number }).code }, { type: 'disconnect', code: 4011 })
    // The newer connection is unaffected.
    assert.deepEqual(await b.call({ type: 'ping' }), {})
    assert.equal(srv.gw.bySession.size, 1)
    b.close()
  })

  it('a forged or foreign session token starts a new session instead', async () => {
    srv = await startServer()
    const a = new RawClient(srv.url)
    const r1 = await a.connect()
    const b = new RawClient(srv.url)
    const r2 = await b.connect({ session: { id: r1.session.id, token: 'forged' } })
    assert.equal(r2.resumed, false)
    assert.notEqual(r2.session.id, r1.session.id)
    assert.equal(a.closed, undefined)
    a.close()
    b.close()
  })

  it('a session survives reconnects: a later connection resumes it with the token of the last connect', async () => {
    srv = await startServer()
    const a = new RawClient(srv.url)
    const r1 = await a.connect()
    a.close()
    await a.waitClosed()
    const b = new RawClient(srv.url)
    const r2 = await b.connect({ session: r1.session })
    assert.equal(r2.resumed, true)
    b.close()
  })
})

describe('heartbeats', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  it('sends pings and keeps a client that answers', async () => {
    srv = await startServer({ pingIntervalMs: 100, pongTimeoutMs: 100 })
    const c = new RawClient(srv.url)
    await c.connect()
    await c.until(() => c.pushes.filter((p) => p.type === 'ping').length >= 4, 3000, '4 pings')
    assert.equal(c.closed, undefined)
    assert.ok(srv.gw.counters.observations('ping_rtt_ms').count >= 3)
    c.close()
  })

  it('with a ping interval shorter than the pong timeout, pings still come every interval', async () => {
    // The advertised interval is what a client watchdog allows for (plus its grace); a server that
    // waited for the pong deadline before the next ping would stretch it to the pong timeout.
    srv = await startServer({ pingIntervalMs: 200, pongTimeoutMs: 5000 })
    const c = new RawClient(srv.url)
    await c.connect()
    const t0 = Date.now()
    await c.until(() => c.pushes.filter((p) => p.type === 'ping').length >= 4, 4000, '4 pings')
    // Four periods of 200 ms plus one 250 ms wheel tick each at most, far below one pong timeout.
    assert.ok(Date.now() - t0 < 5000, 'pings every interval, not every pong timeout')
    assert.equal(c.closed, undefined)
    c.close()
  })

  it('closes a client that stops answering (no FIN) within ping interval + pong timeout', async () => {
    srv = await startServer({ pingIntervalMs: 200, pongTimeoutMs: 200 })
    const c = new RawClient(srv.url)
    await c.connect()
    c.answerPings = false
    const t0 = Date.now()
    const closed = await c.waitClosed(3000)
    const elapsed = Date.now() - t0
    // The server terminates (no closing handshake with a silent peer), so the client sees 1006;
    // the server records the heartbeat code.
    assert.ok(closed.code === CloseCodes.heartbeat_timeout.code || closed.code === 1006, `code ${closed.code}`)
    // ping interval + pong timeout + one wheel tick, plus slack for a loaded 2-core CI machine.
    assert.ok(elapsed <= 200 + 200 + 250 + 1000, `closed after ${elapsed} ms`)
    assert.equal(srv.gw.counters.get('heartbeat_timeouts'), 1)
    assert.equal(srv.gw.counters.get('disconnects', String(CloseCodes.heartbeat_timeout.code)), 1)
  })

  it('closes a socket that never sends connect with connect_timeout', async () => {
    srv = await startServer({ connectTimeoutMs: 200 })
    const c = new RawClient(srv.url)
    await c.opened()
    const closed = await c.waitClosed(2000)
    assert.equal(closed.code, CloseCodes.connect_timeout.code)
  })
})
