import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import pino from 'pino'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import { parseReply } from '../src/backend/backend-client.js'
import type { HoldfastOptions } from '../src/options.js'
import { TestBackend } from './backend-helpers.js'
import { expectClosedWith, serverPerTest, waitFor, type TestServer } from './helpers.js'

interface Reply {
  id: number
  result?: Record<string, unknown>
  error?: { code: number; message: string; temporary: boolean }
}

/** A backend that lets in whoever brings a `session=<user>` cookie, and allows everything else. */
function cookieBackend(b: TestBackend): void {
  b.handlers = {
    '/connect': ({ body }) => {
      const cookie = (body['headers'] as Record<string, string>)['cookie'] ?? ''
      const m = /session=([a-z]+)/.exec(cookie)
      return m === null ? { error: { code: ErrorCodes.unauthorized.code, message: 'no session' } } : { result: { user: m[1], info: { name: m[1] } } }
    },
    '/subscribe': () => ({ result: {} }),
    '/publish': () => ({ result: {} }),
    '/rpc': ({ body }) => ({ result: { data: { echo: body['data'] } } }),
    '/refresh': () => ({ result: {} }),
  }
}

describe('backend proxy', () => {
  const backend = new TestBackend()
  const fx = serverPerTest()
  beforeEach(async () => {
    await backend.start()
    backend.calls.length = 0
    cookieBackend(backend)
  })
  afterEach(() => backend.stop())
  after(() => backend.stop())

  function start(extra: HoldfastOptions = {}): Promise<TestServer> {
    return fx.start({ proxy: { url: backend.url, timeoutMs: 500, breaker: { volumeThreshold: 1000 } }, ...extra })
  }
  async function login(s: TestServer, user = 'alice', headers: Record<string, string> = {}) {
    const c = fx.client(s.url, { headers: { cookie: `session=${user}`, ...headers } })
    await c.connect()
    return c
  }

  describe('connect', () => {
    it('authenticates by the upgrade cookie; the body carries the contract fields, forwarded headers and the trace id', async () => {
      const s = await start()
      const c = fx.client(s.url, { headers: { cookie: 'session=alice', 'x-app': 'web', 'user-agent': 'test', traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` } })
      const r = await c.connect({ data: { device: 'phone' } })
      assert.equal(typeof r.client, 'string')
      const [call] = backend.callsTo('/connect')
      assert.ok(call !== undefined)
      assert.equal(call.body['client'], r.client)
      assert.equal(call.body['user'], '')
      assert.equal(call.body['remoteAddr'], '127.0.0.1')
      assert.equal(call.body['protocol'], 'json')
      assert.equal(call.body['traceId'], 'ab'.repeat(16))
      assert.deepEqual(call.body['data'], { device: 'phone' })
      assert.deepEqual(call.body['headers'], { cookie: 'session=alice', 'x-app': 'web' }, 'only the allow-listed headers')
      assert.match(String(call.headers['traceparent']), new RegExp(`^00-${'ab'.repeat(16)}-[0-9a-f]{16}-01$`))
      // The user the backend named is who the connection is, on every later event.
      await c.call({ type: 'subscribe', channel: 'room' })
      assert.equal(backend.callsTo('/subscribe')[0]?.body['user'], 'alice')
      assert.deepEqual(backend.callsTo('/subscribe')[0]?.body['headers'], { cookie: 'session=alice', 'x-app': 'web' })
    })

    it('a token in the connect command reaches the backend; a backend error closes with the mapped code', async () => {
      const s = await start()
      backend.handlers['/connect'] = ({ body }) =>
        body['token'] === 'good'
          ? { result: { user: 'tok' } }
          : body['token'] === 'banned'
            ? { error: { code: ErrorCodes.permission_denied.code, message: 'banned' } }
            : { error: { code: ErrorCodes.unauthorized.code, message: 'bad token' } }
      const ok = fx.client(s.url)
      await ok.connect({ token: 'good' })
      const bad = fx.client(s.url)
      await bad.opened()
      bad.sendRaw({ type: 'connect', version: 1, id: 1, token: 'nope' })
      await expectClosedWith(bad, CloseCodes.unauthorized.code)
      const banned = fx.client(s.url)
      await banned.opened()
      banned.sendRaw({ type: 'connect', version: 1, id: 1, token: 'banned' })
      await expectClosedWith(banned, CloseCodes.forbidden.code)
    })

    it('a disconnect answer closes with the backend\'s close code and reason', async () => {
      const s = await start()
      backend.handlers['/connect'] = () => ({ disconnect: { code: 4321, reason: 'go away' } })
      const c = fx.client(s.url)
      await c.opened()
      c.sendRaw({ type: 'connect', version: 1, id: 1 })
      const closed = await expectClosedWith(c, 4321)
      assert.equal(closed.reason, 'go away')
    })

    for (const [name, setup] of [
      ['down', async (b: TestBackend) => b.stop()],
      ['slow (past timeoutMs)', (b: TestBackend) => void (b.handlers['/connect'] = () => new Promise(() => {}))],
      ['answering garbage', (b: TestBackend) => void (b.handlers['/connect'] = () => (res) => res.writeHead(200).end('<html>oops</html>'))],
      ['answering HTTP 500', (b: TestBackend) => void (b.handlers['/connect'] = () => (res) => res.writeHead(500).end('{}'))],
      ['answering an unknown error code', (b: TestBackend) => void (b.handlers['/connect'] = () => ({ error: { code: 99999, message: 'x' } }))],
    ] as const) {
      it(`a backend ${name} closes the connect with try_later (backoff advice) within the timeout`, async () => {
        const s = await start()
        await setup(backend)
        const c = fx.client(s.url, { headers: { cookie: 'session=alice' } })
        await c.opened()
        const t0 = performance.now()
        c.sendRaw({ type: 'connect', version: 1, id: 1 })
        await expectClosedWith(c, CloseCodes.try_later.code, { ms: 3000 })
        assert.equal(CloseCodes.try_later.advice, 'backoff')
        assert.ok(performance.now() - t0 < 2500, 'bounded by the timeout, not a hang')
        const scrape = await s.gw.metricsText()
        assert.match(scrape, /holdfast_proxy_calls_total\{event="connect",outcome="failed"\} 1/)
      })
    }
  })

  describe('subscribe', () => {
    it('allows with channel info and a presence override, refuses with the backend\'s code, only in the chosen namespaces', async () => {
      const s = await start({ proxy: { url: backend.url, subscribe: { namespaces: ['private'] } } })
      backend.handlers['/subscribe'] = ({ body }) =>
        body['channel'] === 'private:ok'
          ? { result: { info: { role: 'mod' }, presence: true } }
          : { error: { code: ErrorCodes.permission_denied.code, message: 'not a member' } }
      const c = await login(s)
      await c.call({ type: 'subscribe', channel: 'private:ok', data: { invite: 'x' } })
      assert.deepEqual(backend.callsTo('/subscribe')[0]?.body['data'], { invite: 'x' })
      // The presence override made presence kept for this subscription, with the granted info.
      const presence = await s.gw.presence('private:ok')
      assert.deepEqual(Object.values(presence), [{ client: Object.keys(presence)[0], user: 'alice', info: { role: 'mod' } }])
      const refused = (await c.request({ type: 'subscribe', channel: 'private:no' })) as Reply
      assert.equal(refused.error?.code, ErrorCodes.permission_denied.code)
      assert.equal(refused.error?.message, 'not a member')
      // Outside the proxied namespaces the backend is not asked.
      await c.call({ type: 'subscribe', channel: 'public' })
      assert.equal(backend.callsTo('/subscribe').length, 2)
    })

    it('a backend down gives a temporary backend_unavailable reply, and the connection stays', async () => {
      const s = await start()
      const c = await login(s)
      await backend.stop()
      const r = (await c.request({ type: 'subscribe', channel: 'room' })) as Reply
      assert.equal(r.error?.code, ErrorCodes.backend_unavailable.code)
      assert.equal(r.error?.temporary, true)
      assert.equal(c.closed, undefined)
      assert.equal(s.gw.connectionCount, 1)
    })
  })

  describe('publish', () => {
    it('allows, replaces the data, or refuses; a retry of a stored publication does not call the backend again', async () => {
      const s = await start()
      backend.handlers['/publish'] = ({ body }) =>
        body['data'] === 'bad word' ? { result: { data: '***' } } : body['data'] === 'spam' ? { error: { code: ErrorCodes.permission_denied.code, message: 'spam' } } : { result: {} }
      const c = await login(s)
      await c.call({ type: 'subscribe', channel: 'chat' })
      const first = await c.call<{ offset: number; epoch: string }>({ type: 'publish', channel: 'chat', data: 'hello', msgId: 'p1' })
      await c.call({ type: 'publish', channel: 'chat', data: 'bad word', msgId: 'p2' })
      const refused = (await c.request({ type: 'publish', channel: 'chat', data: 'spam', msgId: 'p3' })) as Reply
      assert.equal(refused.error?.code, ErrorCodes.permission_denied.code)
      await c.until(() => c.pubs('chat').length === 2)
      assert.deepEqual(c.pubs('chat').map((p) => p.data), ['hello', '***'])
      const calls = backend.callsTo('/publish').length
      const again = await c.call({ type: 'publish', channel: 'chat', data: 'hello', msgId: 'p1' })
      assert.deepEqual(again, { offset: first.offset, epoch: first.epoch, duplicate: true })
      assert.equal(backend.callsTo('/publish').length, calls, 'the retry was answered from the stored outcome')
      // A refused publish is not stored: its retry asks again.
      await c.request({ type: 'publish', channel: 'chat', data: 'spam', msgId: 'p3' })
      assert.equal(backend.callsTo('/publish').length, calls + 1)
      assert.equal((await s.gw.history('chat')).publications.length, 2)
    })

    it('a backend failure stores nothing, and the retry with the same id publishes once the backend is back', async () => {
      const s = await start()
      const c = await login(s)
      await backend.stop()
      const r = (await c.request({ type: 'publish', channel: 'chat', data: 1, msgId: 'x1' })) as Reply
      assert.equal(r.error?.code, ErrorCodes.backend_unavailable.code)
      assert.equal((await s.gw.history('chat')).publications.length, 0)
      await backend.start()
      await c.call({ type: 'publish', channel: 'chat', data: 1, msgId: 'x1' })
      assert.equal((await s.gw.history('chat')).publications.length, 1)
    })
  })

  describe('rpc', () => {
    it('the backend answers methods without a local handler; a retry is answered from the stored outcome, errors included', async () => {
      const s = await start()
      s.gw.onRpc('local', () => 'from node')
      backend.handlers['/rpc'] = ({ body }) =>
        body['method'] === 'fail' ? { error: { code: ErrorCodes.bad_request.code, message: 'nope' } } : { result: { data: { method: body['method'], got: body['data'] } } }
      const c = await login(s)
      assert.deepEqual(await c.call({ type: 'rpc', method: 'sum', data: [1, 2], msgId: 'r1' }), { data: { method: 'sum', got: [1, 2] } })
      assert.deepEqual(await c.call({ type: 'rpc', method: 'sum', data: [1, 2], msgId: 'r1' }), { data: { method: 'sum', got: [1, 2] } })
      const e1 = (await c.request({ type: 'rpc', method: 'fail', msgId: 'r2' })) as Reply
      const e2 = (await c.request({ type: 'rpc', method: 'fail', msgId: 'r2' })) as Reply
      assert.equal(e1.error?.code, ErrorCodes.bad_request.code)
      assert.deepEqual(e2.error, e1.error)
      assert.equal(backend.callsTo('/rpc').length, 2, 'one backend call per message id')
      assert.deepEqual(await c.call({ type: 'rpc', method: 'local', msgId: 'r3' }), { data: 'from node' })
      assert.equal(backend.callsTo('/rpc').length, 2, 'a local handler is not proxied')
    })

    it('a slow backend gives backend_unavailable after the timeout; the retry calls again and succeeds', async () => {
      const s = await start({ proxy: { url: backend.url, rpc: { timeoutMs: 200 } } })
      let slow = true
      backend.handlers['/rpc'] = () => (slow ? new Promise((r) => setTimeout(() => r({ result: { data: 'late' } }), 1000)) : { result: { data: 'ok' } })
      const c = await login(s)
      const t0 = performance.now()
      const r = (await c.request({ type: 'rpc', method: 'm', msgId: 's1' })) as Reply
      assert.equal(r.error?.code, ErrorCodes.backend_unavailable.code)
      assert.ok(performance.now() - t0 < 900)
      slow = false
      assert.deepEqual(await c.call({ type: 'rpc', method: 'm', msgId: 's1' }), { data: 'ok' })
      assert.match(await s.gw.metricsText(), /holdfast_proxy_errors_total\{event="rpc",kind="timeout"\} 1/)
    })
  })

  describe('refresh', () => {
    it('a backend expiry is refreshed through the backend before it passes; a refusal closes', async () => {
      const s = await start()
      let refuse = false
      backend.handlers['/connect'] = () => ({ result: { user: 'alice', expireAt: Date.now() / 1000 + 1.5 } })
      backend.handlers['/refresh'] = () =>
        refuse ? { error: { code: ErrorCodes.unauthorized.code, message: 'logged out' } } : { result: { expireAt: Date.now() / 1000 + 1.5 } }
      const c = fx.client(s.url)
      await c.connect()
      await waitFor(() => backend.callsTo('/refresh').length >= 2, 5000, 'two refreshes')
      assert.equal(c.closed, undefined, 'kept open past its first expiry by the refreshes')
      assert.equal(backend.callsTo('/refresh')[0]?.body['user'], 'alice')
      refuse = true
      await expectClosedWith(c, CloseCodes.unauthorized.code, { ms: 4000 })
    })
  })

  it('a failed call is logged once a second per event and kind, with the trace id and the backend, never with the cookie', async () => {
    const chunks: string[] = []
    const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c.toString()), cb()) }))
    const s = await start({ logger })
    const c = await login(s)
    await backend.stop()
    for (let i = 0; i < 3; i++) await c.request({ type: 'rpc', method: 'x', msgId: `l${i}` })
    const lines = chunks.join('').split('\n').filter((l) => l.includes('backend call failed')).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.equal(lines.length, 1, 'repeats held back')
    assert.equal(lines[0]?.['event'], 'rpc')
    assert.equal(lines[0]?.['kind'], 'connect')
    assert.equal(lines[0]?.['backend'], backend.url)
    assert.match(String(lines[0]?.['trace']), /^[0-9a-f]{32}$/)
    assert.doesNotMatch(chunks.join(''), /session=alice/)
  })

  it('a backend killed and restarted mid-run: failures are temporary replies, service comes back by itself', async () => {
    const s = await fx.start({ proxy: { url: backend.url, timeoutMs: 500, breaker: { volumeThreshold: 2, resetTimeoutMs: 200 } } })
    const c = await login(s)
    await c.call({ type: 'rpc', method: 'a', msgId: 'k0' })
    await backend.stop()
    for (let i = 1; i <= 5; i++) {
      const r = (await c.request({ type: 'rpc', method: 'a', msgId: `k${i}` })) as Reply
      assert.equal(r.error?.code, ErrorCodes.backend_unavailable.code)
    }
    assert.match(await s.gw.metricsText(), /holdfast_proxy_errors_total\{event="rpc",kind="open"\} [1-9]/)
    await backend.start()
    // Retries with the same ids succeed once the breaker lets a probe through.
    for (let i = 1; i <= 5; i++) {
      let r: Reply
      const end = Date.now() + 3000
      do r = (await c.request({ type: 'rpc', method: 'a', msgId: `k${i}` })) as Reply
      while (r.error !== undefined && Date.now() < end && (await new Promise((ok) => setTimeout(ok, 50, true))))
      assert.equal(r.error, undefined, `k${i} succeeded after the restart`)
    }
    assert.equal(c.closed, undefined)
  })
})

describe('proxy reply parsing', () => {
  it('takes result, error and disconnect; anything else is invalid', () => {
    assert.deepEqual(parseReply('{"result":{"user":"a"}}'), { kind: 'result', result: { user: 'a' } })
    assert.deepEqual(parseReply('{"result":null}'), { kind: 'result', result: {} })
    assert.equal(parseReply('{"error":{"code":103,"message":"no"}}').kind, 'error')
    assert.deepEqual(parseReply('{"disconnect":{"code":4012,"reason":"bye"}}'), { kind: 'disconnect', code: 4012, reason: 'bye' })
    for (const bad of ['', 'null', '[]', '"x"', '{}', '{"result":[1]}', '{"result":3}', '{"error":{"code":"103"}}', '{"error":{"code":5}}', '{"disconnect":{"code":1006}}', '{"disconnect":{"code":5000}}']) {
      assert.throws(() => parseReply(bad), (e: Error & { kind?: string }) => e.kind === 'invalid', bad)
    }
  })
})
