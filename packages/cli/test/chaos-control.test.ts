import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { applyFaultPatch, isLoopbackHost, noFaults, startControlApi, type ChaosProxy, type FaultConfig } from '../src/chaos/index.js'
import { connectTo, startEcho, startProxy, within } from './chaos-helpers.js'

async function control(t: TestContext, proxy: ChaosProxy): Promise<(method: string, path: string, body?: string) => Promise<{ status: number; json: any }>> {
  const api = await startControlApi(proxy)
  t.after(() => api.close())
  assert.match(api.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  return async (method, path, body) => {
    const res = await within(5_000, `${method} ${path}`, fetch(`${api.url}${path}`, { method, ...(body === undefined ? {} : { body }) }))
    return { status: res.status, json: await res.json() }
  }
}

describe('applyFaultPatch', () => {
  test('top-level direction fields apply both ways; a direction object wins for its direction', () => {
    const f = applyFaultPatch(noFaults(), { latencyMs: 50, upstream: { latencyMs: 10, blackhole: true }, resetProbability: 0.5 })
    assert.equal(f.upstream.latencyMs, 10)
    assert.equal(f.downstream.latencyMs, 50)
    assert.equal(f.upstream.blackhole, true)
    assert.equal(f.downstream.blackhole, false)
    assert.equal(f.resetProbability, 0.5)
    // Patches accumulate; the input is not touched.
    const base = noFaults()
    const g = applyFaultPatch(base, { jitterMs: 5 })
    assert.equal(base.upstream.jitterMs, 0)
    assert.equal(applyFaultPatch(g, { latencyMs: 1 }).upstream.jitterMs, 5)
  })

  test('every bad value is refused with a TypeError naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [null, /faults must be a JSON object/],
      [[1], /faults must be a JSON object/],
      [{ latencyMs: -1 }, /^latencyMs must be a number from 0 to 600000, got -1$/],
      [{ latencyMs: '100' }, /^latencyMs must be a number/],
      [{ jitterMs: Number.NaN }, /^jitterMs/],
      [{ bandwidthBytesPerSec: 1.5 }, /^bandwidthBytesPerSec must be an integer/],
      [{ upstream: { sliceBytes: -3 } }, /^upstream\.sliceBytes/],
      [{ downstream: { closeAfterBytes: 'x' } }, /^downstream\.closeAfterBytes/],
      [{ downstream: 5 }, /^downstream must be an object/],
      [{ blackhole: 'yes' }, /^blackhole must be true or false/],
      [{ resetProbability: 2 }, /^resetProbability must be a number from 0 to 1/],
      [{ dropProbability: -0.1 }, /^dropProbability/],
      [{ blackholeMode: 'eat' }, /^blackholeMode must be one of drop, hold/],
      [{ latncyMs: 5 }, /^unknown field "latncyMs"$/],
      [{ upstream: { resetProbability: 1 } }, /^unknown field "upstream\.resetProbability"$/],
    ]
    for (const [patch, re] of bad) {
      assert.throws(() => applyFaultPatch(noFaults(), patch), (err: unknown) => err instanceof TypeError && re.test(err.message), JSON.stringify(patch))
    }
  })
})

describe('isLoopbackHost', () => {
  test('loopback addresses only', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h)
    for (const h of ['10.0.0.1', '0.0.0.0', '::', 'example.com', 'localhost.example.com', '128.0.0.1', '::ffff:10.0.0.1']) assert.equal(isLoopbackHost(h), false, h)
  })
})

describe('control API', () => {
  test('GET and PUT /faults round trip; POST /heal clears them', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const call = await control(t, proxy)
    assert.deepEqual(await call('GET', '/faults'), { status: 200, json: noFaults() })

    const put = await call('PUT', '/faults', JSON.stringify({ latencyMs: 25, downstream: { sliceBytes: 3 }, resetProbability: 0.01 }))
    assert.equal(put.status, 200)
    const faults = put.json as FaultConfig
    assert.equal(faults.upstream.latencyMs, 25)
    assert.equal(faults.downstream.latencyMs, 25)
    assert.equal(faults.downstream.sliceBytes, 3)
    assert.equal(faults.upstream.sliceBytes, 0)
    assert.deepEqual(proxy.faults, faults, 'the proxy itself changed')
    assert.deepEqual((await call('GET', '/faults')).json, faults)

    // GET's output is a valid PUT body, so a saved configuration can be restored as it is.
    assert.equal((await call('PUT', '/faults', JSON.stringify(faults))).status, 200)

    assert.deepEqual(await call('POST', '/heal'), { status: 200, json: noFaults() })
    assert.deepEqual(proxy.faults, noFaults())
  })

  test('bad input: 400 naming the field, and nothing changes', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port, { latencyMs: 7 })
    const call = await control(t, proxy)
    const before = proxy.faults
    const cases: [string, RegExp][] = [
      ['{"latencyMs": -5}', /latencyMs must be a number from 0 to 600000/],
      ['{"latencyMs": 5, "upstream": {"bandwidthBytesPerSec": "fast"}}', /upstream\.bandwidthBytesPerSec must be an integer/],
      ['{"latency": 5}', /unknown field "latency"/],
      ['{not json', /body must be a JSON object/],
      ['[]', /faults must be a JSON object/],
      ['', /body must be a JSON object/],
    ]
    for (const [body, re] of cases) {
      const res = await call('PUT', '/faults', body)
      assert.equal(res.status, 400, body)
      assert.match(res.json.error, re, body)
    }
    assert.deepEqual(proxy.faults, before)
  })

  test('POST /reset resets the current connections; GET /stats counts bytes and resets', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const call = await control(t, proxy)
    const client = await connectTo(t, proxy.port)
    client.socket.write('12345')
    await client.waitForBytes(5)
    const stats = await call('GET', '/stats')
    assert.equal(stats.status, 200)
    assert.deepEqual(
      { ...stats.json },
      {
        connections: 1,
        totalConnections: 1,
        pendingConnections: 0,
        accepting: true,
        bytesUpstream: 5,
        bytesDownstream: 5,
        bytesDropped: 0,
        resets: 0,
        refused: 0,
        closedAfterBytes: 0,
      },
    )
    assert.deepEqual(await call('POST', '/reset'), { status: 200, json: { reset: 1 } })
    assert.equal(await within(5_000, 'the client reset', client.closed), 'ECONNRESET')
    assert.equal((await call('GET', '/stats')).json.resets, 1)
  })

  test('POST /pause and /resume; unknown paths 404; wrong methods 405 with Allow', async (t) => {
    const echo = await startEcho(t)
    const proxy = await startProxy(t, echo.port)
    const call = await control(t, proxy)
    assert.deepEqual(await call('POST', '/pause'), { status: 200, json: { accepting: false } })
    assert.equal(proxy.accepting, false)
    assert.deepEqual(await call('POST', '/resume'), { status: 200, json: { accepting: true } })
    assert.equal((await call('GET', '/nope')).status, 404)
    assert.equal((await call('GET', '/__proto__')).status, 404)
    const wrong = await call('DELETE', '/faults')
    assert.equal(wrong.status, 405)
    assert.match(wrong.json.error, /use GET, PUT/)
  })
})
