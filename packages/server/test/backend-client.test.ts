import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { after, afterEach, before, describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { Registry } from 'prom-client'
import { BackendClient, MAX_REPLY_BYTES } from '../src/backend/backend-client.js'
import { BackendMetrics } from '../src/backend/backend-metrics.js'
import type { ResolvedProxyEvent } from '../src/backend/options.js'
import { TestBackend } from './backend-helpers.js'

/** The answer's socket, to tell whether calls shared a kept-alive connection. */
function port(res: ServerResponse): number {
  return res.socket?.remotePort ?? -1
}

describe('BackendClient: reading answers', () => {
  const backend = new TestBackend()
  let registry: Registry
  let client: BackendClient
  before(() => backend.start())
  after(() => backend.stop())
  afterEach(() => client.close())

  function newClient(): BackendClient {
    registry = new Registry()
    const breaker = { errorThresholdPercentage: 50, volumeThreshold: 1000, resetTimeoutMs: 2000, rollingWindowMs: 10_000 }
    client = new BackendClient({ maxConnections: 1, breaker, metrics: new BackendMetrics(registry), log: undefined })
    return client
  }
  function target(timeoutMs = 1000): ResolvedProxyEvent {
    return { url: `${backend.url}/rpc`, origin: backend.url, path: '/rpc', timeoutMs, headers: { exact: new Set(), prefixes: [] }, namespaces: undefined }
  }
  const trace = '0af7651916cd43dd8448eb211c80319c'
  async function failure(p: Promise<unknown>): Promise<HoldfastError> {
    const err = await p.then(
      () => assert.fail('expected a failure'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof HoldfastError)
    assert.equal(err.code, 'backend_unavailable')
    return err
  }
  async function errorsOf(kind: string): Promise<number> {
    const m = /holdfast_proxy_errors_total\{event="rpc",kind="(\w+)"\} (\d+)/g
    let n = 0
    for (const [, k, v] of (await registry.metrics()).matchAll(m)) if (k === kind) n += Number(v)
    return n
  }

  it('joins an answer written in several chunks, a character split between two of them', async () => {
    const c = newClient()
    const body = Buffer.from(JSON.stringify({ result: { data: 'é'.repeat(5) } }))
    const cut = body.indexOf(Buffer.from('é')) + 1
    backend.handlers['/rpc'] = () => (res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write(body.subarray(0, cut))
      setTimeout(() => res.end(body.subarray(cut)), 20)
    }
    assert.deepEqual(await c.call('rpc', target(), { method: 'm' }, trace), { kind: 'result', result: { data: 'ééééé' } })
  })

  it('an HTTP 500 is a `status` failure that keeps the connection for the next call', async () => {
    const c = newClient()
    const ports: number[] = []
    backend.handlers['/rpc'] = () => (res) => {
      ports.push(port(res))
      res.writeHead(500, { 'content-type': 'text/plain' }).end('down for a moment')
    }
    await failure(c.call('rpc', target(), {}, trace))
    backend.handlers['/rpc'] = () => (res) => {
      ports.push(port(res))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":{"data":1}}')
    }
    assert.deepEqual(await c.call('rpc', target(), {}, trace), { kind: 'result', result: { data: 1 } })
    assert.equal(ports.length, 2)
    assert.equal(ports[0], ports[1], 'the second call reused the first one\'s connection')
    assert.equal(await errorsOf('status'), 1)
  })

  it('an answer past MAX_REPLY_BYTES is `invalid`, by its content-length or by its bytes', async () => {
    const c = newClient()
    backend.handlers['/rpc'] = () => (res) => res.writeHead(200, { 'content-length': String(MAX_REPLY_BYTES + 1) }).end('x'.repeat(MAX_REPLY_BYTES + 1))
    await failure(c.call('rpc', target(), {}, trace))
    // Chunked, no length announced: counted as it arrives.
    backend.handlers['/rpc'] = () => (res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write(`{"result":{"data":"${'x'.repeat(MAX_REPLY_BYTES / 2)}`)
      res.end(`${'x'.repeat(MAX_REPLY_BYTES / 2)}"}}`)
    }
    await failure(c.call('rpc', target(), {}, trace))
    assert.equal(await errorsOf('invalid'), 2)
    // The client is still usable (a new connection replaces the destroyed one).
    backend.handlers['/rpc'] = () => ({ result: { data: 'ok' } })
    assert.deepEqual(await c.call('rpc', target(), {}, trace), { kind: 'result', result: { data: 'ok' } })
  })

  it('an answer whose body stalls is a `timeout` after timeoutMs', async () => {
    const c = newClient()
    backend.handlers['/rpc'] = () => (res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"result":')
    }
    const err = await failure(c.call('rpc', target(150), {}, trace))
    assert.match(err.message, /within 150 ms/)
    assert.equal(await errorsOf('timeout'), 1)
  })

  it('sends the JSON body with a traceparent carrying the trace id', async () => {
    const c = newClient()
    backend.calls.length = 0
    backend.handlers['/rpc'] = () => ({ result: {} })
    await c.call('rpc', target(), { method: 'm', data: [1] }, trace)
    const call = backend.calls.at(-1)
    assert.deepEqual(call?.body, { method: 'm', data: [1] })
    assert.match(String(call?.headers['traceparent']), new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`))
    assert.equal(call?.headers['content-type'], 'application/json')
  })
})
