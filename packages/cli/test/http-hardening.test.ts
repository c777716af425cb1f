// The HTTP side of `holdfast serve` under hostile clients, with real servers and sockets: idle and
// slow connections are closed, one address cannot hold more than its share of TCP connections,
// secrets never reach the log, /metrics can move off the public port or behind the API key, and
// pages carry a CSP, no source maps in production and nothing reached through a symlink.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import WebSocket from 'ws'
import { createHoldfast, type Holdfast } from '@holdfast/server'
import type { HttpGuardOptions } from '@holdfast/server/internal'
import { AdminDashboard } from '../src/admin/index.js'
import { buildHttpApp, type HttpAppOptions } from '../src/http-app.js'
import { redactText, redactUrl } from '../src/redact.js'
import { cleanEnv, runCli, within } from './helpers.js'

interface Served {
  app: FastifyInstance
  holdfast: Holdfast
  port: number
  url: string
}

async function serve(t: TestContext, opts: Partial<HttpAppOptions> = {}, holdfast: Holdfast = createHoldfast({ logger: false })): Promise<Served> {
  const app = await buildHttpApp({ holdfast, logger: false, ...opts })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(async () => {
    await app.close()
    await holdfast.close({ drainMs: 0 })
  })
  const { port } = app.server.address() as AddressInfo
  return { app, holdfast, port, url: `http://127.0.0.1:${port}` }
}

/** A raw TCP connection; resolves once connected. Its `closed` promise carries what the server sent. */
async function rawSocket(port: number, localAddress = '127.0.0.1'): Promise<{ socket: Socket; closed: Promise<string> }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress })
  let received = ''
  socket.setEncoding('utf8').on('data', (d: string) => {
    received += d
  })
  socket.on('error', () => {})
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)))
  await within(5000, 'the TCP connection', new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  }))
  return { socket, closed }
}

const NOTHING_YET = Symbol('still open')
function stillOpen(p: Promise<unknown>): Promise<unknown> {
  return Promise.race([p, new Promise((r) => setImmediate(() => r(NOTHING_YET)))])
}

describe('HTTP limits of serve (real sockets)', () => {
  test('a TCP connection that never sends a byte is closed after connectionTimeoutMs; an upgraded WebSocket is not', async (t) => {
    const http: HttpGuardOptions = { connectionTimeoutMs: 400 }
    const { port } = await serve(t, { http })
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    t.after(() => ws.terminate())
    await within(5000, 'the WebSocket open', new Promise((r, j) => ws.once('open', r).once('error', j)))
    const started = performance.now()
    const idle = await rawSocket(port)
    // Node alone keeps such a connection forever: no request, so no request timer ever starts.
    await within(5000, 'the server to close the idle connection', idle.closed)
    const ms = performance.now() - started
    assert.ok(ms >= 350, `closed after ${ms.toFixed(0)} ms, not before the timeout`)
    // The WebSocket has been idle as long, and longer: it stays (ws clears the socket timer at the upgrade).
    assert.equal(ws.readyState, WebSocket.OPEN)
  })

  test('a request whose headers trickle in is answered 408 after headersTimeoutMs', async (t) => {
    const { port } = await serve(t, { http: { headersTimeoutMs: 500, connectionTimeoutMs: 0 } })
    const slow = await rawSocket(port)
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n')
    const answer = await within(5000, 'the 408 and close', slow.closed)
    assert.match(answer, /^HTTP\/1\.1 408/)
  })

  test('one address holds at most maxConnectionsPerIp TCP connections: the next is refused with 429 before any HTTP, counted in the metrics; other addresses still connect', async (t) => {
    const { port, url } = await serve(t, { http: { maxConnectionsPerIp: 3 } })
    const held = await Promise.all([0, 1, 2].map(() => rawSocket(port)))
    const refused = await rawSocket(port)
    const answer = await within(5000, 'the refusal', refused.closed)
    assert.match(answer, /^HTTP\/1\.1 429 Too Many Requests\r\n/)
    assert.match(answer, /\r\n\r\n\{"error":\{"code":"too_many_connections","message":"too many open connections from this address"\}\}$/)
    for (const h of held) assert.equal(await stillOpen(h.closed), NOTHING_YET, 'the connections within the cap stay')

    // Another client address is not affected by this one's cap.
    const other = await rawSocket(port, '127.0.0.2')
    other.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.match(await within(5000, 'the answer to 127.0.0.2', other.closed), /^HTTP\/1\.1 200/)

    // A closed connection frees its slot.
    held[0]?.socket.destroy()
    await held[0]?.closed
    const metrics = await new Promise<string>((resolve, reject) => {
      // The three held ones are raw sockets from 127.0.0.1: scrape from another address.
      const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' })
      let body = ''
      s.setEncoding('utf8').on('data', (d: string) => (body += d))
      s.on('close', () => resolve(body)).on('error', reject)
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    })
    assert.match(metrics, /holdfast_connections_rejected_total\{reason="tcp_per_ip"\} 1\n/)
    const again = await fetch(`${url}/healthz`)
    assert.equal(again.status, 200)
  })

  test('the gateway\'s own listen() server caps TCP connections per address too (default 1100)', async (t) => {
    const holdfast = createHoldfast({ logger: false })
    const port = await holdfast.listen({ port: 0 })
    const sockets: Socket[] = []
    t.after(async () => {
      for (const s of sockets) s.destroy()
      await holdfast.close({ drainMs: 0 })
    })
    for (let i = 0; i < 1100; i++) sockets.push((await rawSocket(port)).socket)
    const refused = await rawSocket(port)
    assert.match(await within(5000, 'the refusal', refused.closed), /^HTTP\/1\.1 429/)
    assert.equal(holdfast.counters.get('connections_rejected', 'tcp_per_ip'), 1)
  })
})

describe('secrets stay out of the log', () => {
  test('the request log redacts query values: /ws?token=… and /api?apikey=… never appear', async (t) => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(chunk.toString())
        cb()
      },
    })
    const logger = pino({ level: 'debug' }, sink)
    const holdfast = createHoldfast({ logger: false })
    const { url } = await serve(t, { logger, apiKey: 'the-api-key-1234' }, holdfast)
    assert.equal((await fetch(`${url}/ws?token=eyJSECRET.TOKEN.x&other=1`)).status, 426)
    assert.equal((await fetch(`${url}/api/publish?apikey=SECRETKEY`, { method: 'POST', headers: { authorization: 'apikey wrong', 'content-type': 'application/json' }, body: '{' })).status, 401)
    assert.equal((await fetch(`${url}/missing?access_token=SECRET3`)).status, 404)
    const log = lines.join('')
    assert.match(log, /"url":"\/ws\?token=\[redacted\]&other=\[redacted\]"/)
    assert.match(log, /"url":"\/missing\?access_token=\[redacted\]"/)
    assert.doesNotMatch(log, /SECRET|eyJ/)
  })

  test('error text: query values and apikey/Bearer credentials are redacted', () => {
    assert.equal(redactUrl('/ws?token=abc&x'), '/ws?token=[redacted]&x')
    assert.equal(redactUrl('/healthz'), '/healthz')
    assert.equal(
      redactText('GET http://h/ws?token=eyJ.a.b failed; Authorization: Bearer eyJ.c.d, apikey k-123'),
      'GET http://h/ws?token=[redacted] failed; Authorization: Bearer [redacted], apikey [redacted]',
    )
  })
})

describe('/metrics placement', () => {
  test('--metrics-auth apikey: 401 in the API error shape without the key, the scrape with it', async (t) => {
    const { url } = await serve(t, { apiKey: 'metrics-key-12345', metrics: 'apikey' })
    const anon = await fetch(`${url}/metrics`)
    assert.equal(anon.status, 401)
    assert.equal(anon.headers.get('www-authenticate'), 'apikey')
    assert.deepEqual(await anon.json(), { error: { code: 'unauthorized', message: 'an Authorization: apikey <key> header is required' } })
    assert.equal((await fetch(`${url}/metrics`, { headers: { authorization: 'apikey nope' } })).status, 401)
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: 'apikey metrics-key-12345' } })
    assert.equal(ok.status, 200)
    assert.match(await ok.text(), /^# HELP holdfast_/m)
  })

  test('serve --metrics-port: /metrics only on its own listener (and behind the key when asked)', async (t) => {
    const p = runCli(['serve', '--port', '0', '--metrics-port', '0', '--metrics-auth', 'apikey', '--api-key', 'metrics-key-12345', '--log-level', 'warn'], cleanEnv())
    t.after(() => p.child.kill('SIGKILL'))
    const m = await p.waitForLine(/^holdfast listening on (http:\/\/\S+) .* metrics=(http:\/\/\S+)$/)
    const [, main, metricsUrl] = m as unknown as [string, string, string]
    assert.equal((await fetch(`${main}/metrics`)).status, 404, 'not on the public port')
    assert.equal((await fetch(metricsUrl)).status, 401)
    const scrape = await fetch(metricsUrl, { headers: { authorization: 'apikey metrics-key-12345' } })
    assert.equal(scrape.status, 200)
    assert.match(await scrape.text(), /holdfast_connections /)
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/healthz'))).status, 404, 'the metrics listener serves nothing else')
    p.child.kill('SIGTERM')
    assert.deepEqual(await within(15_000, 'serve to exit', p.exited), { code: 0, signal: null })
  })
})

describe('served pages', () => {
  function publicDir(): { root: string; dir: string } {
    const root = mkdtempSync(join(tmpdir(), 'holdfast-pages-'))
    const dir = join(root, 'public')
    mkdirSync(dir)
    writeFileSync(join(dir, 'index.html'), '<h1>demo</h1>')
    writeFileSync(join(dir, 'demo.js'), 'void 0\n//# sourceMappingURL=demo.js.map')
    writeFileSync(join(dir, 'demo.js.map'), '{"version":3}')
    writeFileSync(join(root, 'outside.txt'), 'private')
    mkdirSync(join(root, 'elsewhere'))
    writeFileSync(join(root, 'elsewhere', 'secret.txt'), 'private too')
    symlinkSync(join(root, 'outside.txt'), join(dir, 'link.txt'))
    symlinkSync(join(root, 'elsewhere'), join(dir, 'linked-dir'))
    return { root, dir }
  }

  test('the demo page and the dashboard carry a strict CSP, nosniff and no framing', async (t) => {
    const admin = new AdminDashboard({ secret: 'an-admin-secret-long-enough', failureDelayMs: 0, server: { logger: false } })
    const { url } = await serve(t, { admin }, createHoldfast(admin.serverOptions))
    for (const path of ['/', '/demo.css', '/admin']) {
      const res = await fetch(`${url}${path}`)
      assert.equal(res.status, 200, path)
      const csp = res.headers.get('content-security-policy') ?? ''
      assert.match(csp, /default-src 'none'/, path)
      assert.match(csp, /script-src 'self'(;|$)/, path)
      assert.match(csp, /frame-ancestors 'none'/, path)
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path)
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path)
      assert.equal(res.headers.get('x-frame-options'), 'DENY', path)
    }
    // Nothing inline that the CSP would block: the page must work under its own policy.
    const page = await (await fetch(`${url}/`)).text()
    assert.doesNotMatch(page, /<style|style="|<script>|\son[a-z]+="/)
  })

  test('static files have an ETag and revalidate (304); symlinks under public/ are not followed', async (t) => {
    const { dir } = publicDir()
    const { url } = await serve(t, { publicDir: dir })
    const first = await fetch(`${url}/demo.js`)
    assert.equal(first.status, 200)
    const etag = first.headers.get('etag')
    assert.ok(etag !== null)
    assert.equal(first.headers.get('cache-control'), 'no-cache')
    // node:http, not fetch: fetch adds `cache-control: no-cache` to a conditional request, which forbids a 304.
    const revalidated = await new Promise<number | undefined>((resolve, reject) => {
      get(`${url}/demo.js`, { headers: { 'if-none-match': etag } }, (res) => {
        res.resume()
        resolve(res.statusCode)
      }).on('error', reject)
    })
    assert.equal(revalidated, 304)
    for (const path of ['/link.txt', '/linked-dir/secret.txt']) {
      const res = await fetch(`${url}${path}`)
      assert.equal(res.status, 404, path)
      assert.doesNotMatch(await res.text(), /private/)
    }
  })

  test('source maps are served in development and not with sourceMaps: false (NODE_ENV=production)', async (t) => {
    const { dir } = publicDir()
    const dev = await serve(t, { publicDir: dir })
    assert.equal((await fetch(`${dev.url}/demo.js.map`)).status, 200)
    const prod = await serve(t, { publicDir: dir, sourceMaps: false })
    assert.equal((await fetch(`${prod.url}/demo.js.map`)).status, 404)
    assert.equal((await fetch(`${prod.url}/demo.js`)).status, 200)
  })
})
