import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { ChaosProxy } from '../src/chaos/index.js'
import { attempt, connectTo, sha256, sleep, startEcho, startProxy, startSink, until, within } from './chaos-helpers.js'

describe('ChaosProxy: forwarding', () => {
  test('4 MB of random bytes pass through unchanged both ways, and FIN is forwarded', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    const payload = randomBytes(4 * 1024 * 1024)
    // Many writes of odd sizes, so the proxy sees chunk boundaries that match nothing.
    for (let off = 0; off < payload.length; off += 65_521) client.socket.write(payload.subarray(off, off + 65_521))
    client.socket.end()
    await within(20_000, 'the echo to end', client.ended)
    assert.equal(client.data().length, payload.length)
    assert.equal(sha256(client.data()), sha256(payload))
    assert.equal(await within(5_000, 'close', client.closed), null)
    const stats = proxy.stats()
    assert.equal(stats.bytesUpstream, payload.length)
    assert.equal(stats.bytesDownstream, payload.length)
    await until(() => proxy.connections === 0, 'the connection to be forgotten')
    assert.equal(proxy.stats().totalConnections, 1)
  })

  test('options are validated with a TypeError naming the option', () => {
    assert.throws(() => new ChaosProxy({ target: { host: '127.0.0.1', port: 0 } }), /target\.port must be an integer from 1 to 65535/)
    assert.throws(() => new ChaosProxy({ target: { host: '', port: 80 } }), /target\.host/)
    assert.throws(() => new ChaosProxy({ target: { host: '127.0.0.1', port: 80 }, listen: { port: 70_000 } }), /listen\.port/)
    assert.throws(() => new ChaosProxy({ target: { host: '127.0.0.1', port: 80 }, faults: { latencyMs: -1 } }), /latencyMs/)
    assert.throws(() => new ChaosProxy({ target: { host: '127.0.0.1', port: 80 } }).port, /not listening/)
  })

  test('a refused target connection is seen by the client as a reset', async (t) => {
    const echo = await startEcho(t)
    await echo.close() // a port that was just free: nothing listens there now
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    assert.equal(await within(5_000, 'the client to be reset', client.closed), 'ECONNRESET')
  })
})

describe('ChaosProxy: latency and jitter', () => {
  test('latency is added each way: a round trip takes at least twice the latency', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port, { latencyMs: 100 })
    const client = await connectTo(t, proxy.port)
    const started = performance.now()
    client.socket.write('ping')
    await client.waitForBytes(4)
    const rtt = performance.now() - started
    // Timers may fire up to a millisecond early against performance.now(); the upper bound only
    // catches a delay applied far too often.
    assert.ok(rtt >= 198, `round trip ${rtt.toFixed(1)} ms, expected >= 200`)
    assert.ok(rtt < 2_000, `round trip ${rtt.toFixed(1)} ms`)
  })

  test('jitter never reorders: chunks with alternating 0 and 2x delays arrive in order', async (t) => {
    const echo = await startEcho(t)
    // Extreme jitter on purpose: every other chunk is due 60 ms before the one sent just before it.
    let flip = false
    const random = (): number => ((flip = !flip) ? 0.999 : 0)
    const proxy = await startProxy(t, echo.port, { upstream: { latencyMs: 30, jitterMs: 30 } }, random)
    const client = await connectTo(t, proxy.port)
    const sent: Buffer[] = []
    for (let i = 0; i < 100; i++) {
      const line = Buffer.from(`message ${i}\n`)
      sent.push(line)
      client.socket.write(line)
      // Separate chunks at the proxy, each with its own jitter.
      await sleep(1)
    }
    const all = Buffer.concat(sent)
    const got = await client.waitForBytes(all.length)
    assert.equal(got.toString(), all.toString())
  })
})

describe('ChaosProxy: bandwidth and back-pressure', () => {
  test('100 KB/s: 200 KB take about 2 s (within 30%)', async (t) => {
    const sink = await startSink(t)
    const proxy = await startProxy(t, sink.port, { upstream: { bandwidthBytesPerSec: 100_000 } })
    const client = await connectTo(t, proxy.port)
    const payload = randomBytes(200_000)
    const started = performance.now()
    client.socket.write(payload)
    const got = await sink.waitForBytes(payload.length, 10_000)
    const seconds = (performance.now() - started) / 1000
    assert.equal(sha256(got), sha256(payload))
    assert.ok(seconds > 1.4 && seconds < 2.6, `took ${seconds.toFixed(2)} s, expected 2 s +/- 30%`)
  })
  test('a delayed link pushes back on the sender instead of buffering without bound', async (t) => {
    const sink = await startSink(t)
    const proxy = await startProxy(t, sink.port, { upstream: { latencyMs: 1000 } })
    const client = await connectTo(t, proxy.port)
    // Far more than the proxy's 1 MiB queue limit plus what loopback socket buffers hold.
    const payload = randomBytes(48 * 1024 * 1024)
    client.socket.write(payload)
    await sleep(300)
    assert.equal(sink.received().length, 0)
    assert.ok(client.socket.writableLength > 0, 'the sender still holds bytes: the proxy stopped reading')
    proxy.heal()
    const got = await sink.waitForBytes(payload.length, 20_000)
    assert.equal(sha256(got), sha256(payload))
  })
})

describe('ChaosProxy: resets and refusals', () => {
  test('resetAll(): the client and the target both see ECONNRESET', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    client.socket.write('hello')
    await client.waitForBytes(5)
    const targetSide = echo.sockets[0]
    assert.ok(targetSide)
    const targetClosed = new Promise<string | undefined>((resolve) => {
      let code: string | undefined
      targetSide.on('error', (err: NodeJS.ErrnoException) => (code = err.code))
      targetSide.on('close', () => resolve(code))
    })
    assert.equal(proxy.resetAll(), 1)
    assert.equal(await within(5_000, 'the client to be reset', client.closed), 'ECONNRESET')
    assert.equal(await within(5_000, 'the target side to be reset', targetClosed), 'ECONNRESET')
    assert.equal(proxy.stats().resets, 1)
    await until(() => proxy.connections === 0, 'the connection to be forgotten')
  })

  test('resetProbability 1: every connection is reset within a check interval', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const clients = await Promise.all([connectTo(t, proxy.port), connectTo(t, proxy.port), connectTo(t, proxy.port)])
    await until(() => proxy.connections === 3, 'three proxied connections')
    proxy.setFaults({ resetProbability: 1 })
    for (const c of clients) assert.equal(await within(2_000, 'a reset', c.closed), 'ECONNRESET')
    assert.equal(proxy.stats().resets, 3)
  })

  test('dropProbability 1: a new connection is refused with a RST and never reaches the target', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port, { dropProbability: 1 })
    // The RST may come before or after the client's connect() completes; either way it is a reset.
    assert.equal(await within(5_000, 'the refusal', attempt(proxy.port)), 'ECONNRESET')
    assert.equal(echo.sockets.length, 0)
    assert.equal(proxy.stats().refused, 1)
    proxy.setFaults({ dropProbability: 0 })
    const next = await connectTo(t, proxy.port)
    next.socket.write('ok')
    assert.equal((await next.waitForBytes(2)).toString(), 'ok')
  })

  test('pause(): connections wait unread and unforwarded; resume() lets them through in order', async (t) => {
    const sink = await startSink(t)
    const proxy = await startProxy(t, sink.port)
    proxy.pause()
    const a = await connectTo(t, proxy.port)
    a.socket.write('first')
    const b = await connectTo(t, proxy.port)
    b.socket.write('second')
    await until(() => proxy.stats().pendingConnections === 2, 'two waiting connections')
    await sleep(200)
    assert.equal(sink.sockets.length, 0, 'nothing reached the target while paused')
    assert.equal(proxy.accepting, false)
    proxy.resume()
    assert.equal((await sink.waitForBytes(5, 5_000, 0)).toString(), 'first')
    assert.equal((await sink.waitForBytes(6, 5_000, 1)).toString(), 'second')
    assert.equal(proxy.connections, 2)
  })
})

describe('ChaosProxy: blackhole (half-open)', () => {
  test('drop mode: no data, no FIN, no RST either way for 500 ms; after heal new bytes flow', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    client.socket.write('before')
    await client.waitForBytes(6)
    const targetSide = echo.sockets[0]
    assert.ok(targetSide)
    const targetEvents: string[] = []
    targetSide.on('data', () => targetEvents.push('data'))
    targetSide.on('end', () => targetEvents.push('end'))
    targetSide.on('close', () => targetEvents.push('close'))
    const clientEventsBefore = client.events.length

    proxy.setFaults({ blackhole: true })
    client.socket.write('swallowed')
    // The target also tries to talk: its bytes must vanish as well.
    targetSide.write('lost too')
    await sleep(500)
    assert.deepEqual(targetEvents, [], 'the target saw nothing')
    assert.deepEqual(client.events.slice(clientEventsBefore), [], 'the client saw nothing')
    assert.equal(client.socket.destroyed, false)
    assert.ok(proxy.stats().bytesDropped >= 'swallowed'.length + 'lost too'.length)

    proxy.heal()
    client.socket.write('after')
    const got = await client.waitForBytes(11)
    // What was swallowed is gone, as on a partitioned network; what comes after flows again.
    assert.equal(got.toString(), 'beforeafter')
  })

  test('a FIN sent into a blackhole is held, and delivered after the heal', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    client.socket.write('x')
    await client.waitForBytes(1)
    const targetSide = echo.sockets[0]
    assert.ok(targetSide)
    let targetEnded = false
    const ended = new Promise<void>((resolve) =>
      targetSide.on('end', () => {
        targetEnded = true
        resolve()
      }),
    )
    proxy.setFaults({ blackhole: true })
    client.socket.end()
    await sleep(300)
    assert.equal(targetEnded, false)
    proxy.heal()
    await within(5_000, 'the FIN to reach the target after the heal', ended)
    await within(5_000, 'the echo to close the client side', client.ended)
  })

  test('a reset behind a blackhole is held until the heal', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    client.socket.write('x')
    await client.waitForBytes(1)
    const targetSide = echo.sockets[0]
    assert.ok(targetSide)
    const targetClosed = new Promise<void>((resolve) => targetSide.on('close', () => resolve()))
    proxy.setFaults({ blackhole: true })
    client.socket.resetAndDestroy()
    await sleep(300)
    assert.equal(targetSide.destroyed, false, 'the target must not hear of the reset during the partition')
    proxy.heal()
    await within(5_000, 'the reset to reach the target after the heal', targetClosed)
  })

  test('hold mode: nothing flows during the blackhole, then everything arrives late, complete and in order', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port, { blackholeMode: 'hold' })
    const client = await connectTo(t, proxy.port)
    client.socket.write('a')
    await client.waitForBytes(1)
    proxy.setFaults({ blackhole: true })
    const held = randomBytes(256 * 1024)
    client.socket.write(held)
    await sleep(300)
    assert.equal(client.data().length, 1)
    assert.equal(echo.sockets.length, 1)
    proxy.heal()
    const got = await client.waitForBytes(1 + held.length)
    assert.equal(sha256(got.subarray(1)), sha256(held))
    assert.equal(proxy.stats().bytesDropped, 0)
  })

  test('one-way blackhole: upstream swallowed, downstream still flows', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const client = await connectTo(t, proxy.port)
    client.socket.write('x')
    await client.waitForBytes(1)
    const targetSide = echo.sockets[0]
    assert.ok(targetSide)
    proxy.setFaults({ upstream: { blackhole: true } })
    assert.equal(proxy.faults.downstream.blackhole, false)
    client.socket.write('gone')
    targetSide.write('still here')
    const got = await client.waitForBytes(11)
    assert.equal(got.toString(), 'xstill here')
  })
})

describe('ChaosProxy: slicing and closeAfterBytes', () => {
  test('sliceBytes: the target gets the same bytes in many small reads', async (t) => {
    const sink = await startSink(t)
    const proxy = await startProxy(t, sink.port, { upstream: { sliceBytes: 100, sliceDelayMs: 1 } })
    const client = await connectTo(t, proxy.port)
    const payload = randomBytes(10_000)
    client.socket.write(payload)
    const got = await sink.waitForBytes(payload.length)
    assert.equal(sha256(got), sha256(payload))
    const reads = sink.chunks[0] ?? []
    // 100 slices written 1 ms apart; the kernel may still merge a few, never many.
    assert.ok(reads.length >= 50, `only ${reads.length} reads`)
    const small = reads.filter((c) => c.length <= 100).length
    assert.ok(small >= reads.length * 0.8, `${small} of ${reads.length} reads were at most 100 bytes`)
  })

  test('closeAfterBytes: exactly N bytes reach the target, then both sides get a FIN', async (t) => {
    const sink = await startSink(t)
    const proxy = await startProxy(t, sink.port, { upstream: { closeAfterBytes: 1000 } })
    const client = await connectTo(t, proxy.port)
    const payload = randomBytes(5000)
    for (let off = 0; off < payload.length; off += 300) client.socket.write(payload.subarray(off, off + 300))
    await within(5_000, 'the client to see the close', client.ended)
    await until(() => sink.ended[0] === true, 'the target to see the FIN')
    assert.deepEqual(sink.received(), payload.subarray(0, 1000))
    assert.equal(proxy.stats().closedAfterBytes, 1)
    // The test client allows half-open sockets, so it closes only once it ends its side too.
    client.socket.end()
    assert.equal(await within(5_000, 'the client socket to close', client.closed), null)
  })
})

describe('ChaosProxy: cleanup', () => {
  test('stop() leaves no sockets, servers or timers behind', async (t) => {
    const counts = (): Record<string, number> => {
      const out: Record<string, number> = {}
      for (const r of process.getActiveResourcesInfo()) {
        if (r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout') out[r] = (out[r] ?? 0) + 1
      }
      return out
    }
    // Handles of the previous test may still be closing (libuv closes them a tick later).
    for (let i = 0; i < 20 && Object.keys(counts()).some((k) => k !== 'Timeout'); i++) await sleep(50)
    const before = counts()
    const echo = await startEcho(t)
    // Every kind of timer the proxy has: delayed chunks, slice gaps, a throttle, the reset roll.
    const proxy = new ChaosProxy({
      target: { host: '127.0.0.1', port: echo.port },
      faults: { latencyMs: 5_000, sliceBytes: 10, sliceDelayMs: 1000, bandwidthBytesPerSec: 10, resetProbability: 0.0001 },
    })
    await proxy.start()
    proxy.pause()
    const waiting = await connectTo(t, proxy.port)
    proxy.resume()
    proxy.pause()
    const pending = await connectTo(t, proxy.port)
    const clients = [waiting, pending, await connectTo(t, proxy.port)]
    for (const c of clients) c.socket.write(randomBytes(5_000))
    await until(() => proxy.connections === 1 && proxy.stats().pendingConnections === 2, 'one proxied, two pending')
    assert.notDeepEqual(counts(), before)

    await proxy.stop()
    await proxy.stop() // twice is fine
    for (const c of clients) await within(5_000, 'the client to be closed by stop()', c.closed)
    await echo.close()
    // Polled with plain sleeps: a bounded-wait helper would itself hold a Timeout while counting.
    for (let i = 0; i < 40 && JSON.stringify(counts()) !== JSON.stringify(before); i++) await sleep(50)
    assert.deepEqual(counts(), before)
  })
})
