// Heartbeat timing under fake timers: the wheel, its clock and Date are all mocked, so the bounds
// below are exact, whatever the machine's load. End-to-end heartbeats over real sockets are in
// sessions-heartbeat.test.ts.
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { CloseCodes, codecFor } from '@holdfast/protocol'
import { Connection, ConnState, type ConnectionOwner } from '../src/connection.js'
import { Counters } from '../src/counters.js'
import { Heartbeats, heartbeatTick } from '../src/heartbeats.js'
import { resolveOptions } from '../src/options.js'
import type { TransportSocket } from '../src/transport/transport.js'

/** A socket that records what the connection sends, and when (on the mocked clock). */
class RecordingSocket implements TransportSocket {
  readonly protocol = ''
  readonly bufferedAmount = 0
  readonly pings: number[] = []
  terminatedAt: number | undefined
  write(data: Uint8Array): void {
    if (new TextDecoder().decode(data).includes('"type":"ping"')) this.pings.push(Date.now())
  }
  close(): void {}
  terminate(): void {
    this.terminatedAt ??= Date.now()
  }
}

function setup(pingIntervalMs: number, pongTimeoutMs: number, commandRate = { perSecond: 100, burst: 200 }): { hb: Heartbeats; conn: Connection; socket: RecordingSocket; counters: Counters } {
  const counters = new Counters()
  const options = resolveOptions({ pingIntervalMs, pongTimeoutMs, commandRate, logger: false })
  const hb = new Heartbeats({ options, counters, log: undefined }, () => Date.now())
  const owner: ConnectionOwner = { maxQueueBytes: 1 << 20, rates: options, log: undefined, counters, onSlowConsumer() {}, connectionFrame() {}, connectionClosed() {} }
  const socket = new RecordingSocket()
  const conn = new Connection(socket, codecFor(''), '127.0.0.1', 't', owner)
  conn.state = ConnState.Connected
  hb.connected(conn)
  return { hb, conn, socket, counters }
}

/** Advance the mocked clock in small steps, letting each step's queued frames flush (setImmediate is real). */
async function advance(ms: number, each?: () => void): Promise<void> {
  for (let t = 0; t < ms; t += 10) {
    mock.timers.tick(10)
    each?.()
    await new Promise((r) => setImmediate(r))
  }
}

describe('heartbeats (fake timers)', () => {
  let hb: Heartbeats | undefined
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 1_000_000 }))
  afterEach(() => {
    hb?.stop()
    hb = undefined
    mock.timers.reset()
  })

  for (const [ping, pong] of [
    [2000, 3000],
    [5000, 10_000],
    [25_000, 10_000],
    [400, 5000],
    [100, 1000],
  ] as const) {
    it(`ping ${ping} ms, pong timeout ${pong} ms: a ping at most every advertised interval, never later`, async () => {
      const s = setup(ping, pong)
      hb = s.hb
      const start = Date.now()
      let answered = 0
      // The client answers each ping 30 ms after it arrives.
      await advance(ping * 8, () => {
        const last = s.socket.pings.at(-1)
        if (last !== undefined && s.socket.pings.length > answered && Date.now() - last >= 30) {
          answered = s.socket.pings.length
          s.hb.pong(s.conn)
        }
      })
      assert.equal(s.conn.state, ConnState.Connected)
      const times = [start, ...s.socket.pings]
      assert.ok(s.socket.pings.length >= 7, `${s.socket.pings.length} pings`)
      const early = heartbeatTick(ping)
      for (let i = 1; i < times.length; i++) {
        const gap = (times[i] as number) - (times[i - 1] as number)
        assert.ok(gap <= ping, `ping ${i} came ${gap} ms after the one before (interval ${ping})`)
        // Aimed one tick before due, and 10 ms is the test's step.
        assert.ok(gap >= ping - early - 10, `ping ${i} came only ${gap} ms after the one before`)
      }
      assert.equal(s.counters.get('heartbeat_timeouts'), 0)
    })
  }

  it('a peer that never answers is dropped within ping + pongTimeout + one tick, not before the pong timeout', async () => {
    const ping = 2000
    const pong = 3000
    const s = setup(ping, pong)
    hb = s.hb
    const start = Date.now()
    await advance(ping + pong + 2 * heartbeatTick(ping))
    assert.equal(s.socket.pings.length, 1)
    assert.ok(s.socket.terminatedAt !== undefined, 'terminated')
    const firstPing = s.socket.pings[0] as number
    assert.ok(s.socket.terminatedAt - firstPing >= pong, 'not closed before the pong timeout')
    assert.ok(s.socket.terminatedAt - start <= ping + pong + heartbeatTick(ping), `closed ${s.socket.terminatedAt - start} ms after the last sign of life`)
    assert.equal(s.conn.closeCode, CloseCodes.heartbeat_timeout.code)
    assert.equal(s.counters.get('heartbeat_timeouts'), 1)
  })
  it('a ping drops the rate buckets that refilled, and keeps one still short of its burst', async () => {
    // One command per second, so a drained bucket stays short for minutes of real time (the
    // buckets read performance.now(), which the fake timers leave alone).
    const s = setup(2000, 3000, { perSecond: 1, burst: 200 })
    hb = s.hb
    const bytes = s.conn.bytes
    const commands = s.conn.bucket
    assert.equal(s.conn.bucket, commands, 'created once, then kept')
    assert.ok(commands.take(performance.now(), 200))
    await advance(2000)
    assert.equal(s.socket.pings.length, 1)
    assert.equal(s.conn.bucket, commands, 'the drained command bucket is kept')
    assert.notEqual(s.conn.bytes, bytes, 'the full byte bucket was dropped (a new one is created on use)')
    assert.equal(s.conn.bytes.tokens(performance.now()), s.conn.bytes.burst, 'and the new one is full')
    // Long after: refilled, so dropped at the next chance.
    s.conn.releaseIdle(performance.now() + 300_000)
    assert.notEqual(s.conn.bucket, commands)
    assert.equal(s.conn.bucket.tokens(performance.now()), 200)
  })
})
