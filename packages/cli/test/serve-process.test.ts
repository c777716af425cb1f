import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { cleanEnv, connectClient, runCliToEnd, startServe, within } from './helpers.js'

const SECRET = 'cli-test-secret-0123456789abcdef0123'

describe('holdfast serve (real process)', () => {
  test('serves probes, the demo page and /ws; SIGTERM drains with /readyz at 503, then exits 0', async (t) => {
    const serve = await startServe(['--drain-ms', '1000', '--log-level', 'warn'])
    t.after(() => serve.child.kill('SIGKILL'))

    // Without auth the operator must be told, once (a log line here: stderr is not a terminal).
    assert.equal((serve.stdout() + serve.stderr()).split('NO AUTHENTICATION').length - 1, 1, `stdout: ${serve.stdout()}\nstderr: ${serve.stderr()}`)

    const health = await fetch(`${serve.url}/healthz`)
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), { status: 'ok' })
    const ready = await fetch(`${serve.url}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready' })
    const page = await fetch(`${serve.url}/`)
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(await page.text(), /holdfast/)
    assert.equal((await fetch(`${serve.url}/nope.js`)).status, 404)
    assert.equal((await fetch(`${serve.url}/%2e%2e/package.json`)).status, 404)

    // Several clients, so that the drain (closes spread over --drain-ms) lasts long enough to be seen.
    const clients = await Promise.all(Array.from({ length: 5 }, () => connectClient(serve.wsUrl)))
    for (const c of clients) {
      assert.equal(c.reply.error, undefined)
      assert.equal(typeof c.reply.result?.client, 'string')
    }

    serve.child.kill('SIGTERM')
    let draining: { status: number; body: unknown } | undefined
    const exit = await within(15_000, 'serve to exit after SIGTERM', (async () => {
      let done = false
      const exited = serve.exited.finally(() => {
        done = true
      })
      while (!done && draining === undefined) {
        try {
          const r = await fetch(`${serve.url}/readyz`)
          const body: unknown = await r.json()
          if (r.status !== 200) draining = { status: r.status, body }
        } catch {
          // The listener may be gone already; the loop ends when the process exits.
        }
      }
      return exited
    })())
    assert.deepEqual(draining, { status: 503, body: { status: 'draining' } }, '/readyz answered 503 during the drain')
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; stderr: ${serve.stderr()}`)
    for (const c of clients) {
      const { code } = await within(5_000, 'the client close', c.closed)
      assert.equal(code, CloseCodes.restart.code)
    }
  })

  test('a second signal exits at once, without waiting for the drain', async (t) => {
    const serve = await startServe(['--drain-ms', '20000', '--log-level', 'warn'])
    t.after(() => serve.child.kill('SIGKILL'))
    // Two clients over a 20 s window: the second is only closed near the end of it.
    await Promise.all([connectClient(serve.wsUrl), connectClient(serve.wsUrl)])
    serve.child.kill('SIGTERM')
    await within(10_000, '/readyz to turn 503', (async () => {
      while ((await fetch(`${serve.url}/readyz`)).status !== 503) await new Promise((r) => setTimeout(r, 10))
    })())
    const started = Date.now()
    serve.child.kill('SIGTERM')
    const exit = await within(5_000, 'exit after the second SIGTERM', serve.exited)
    assert.equal(exit.code, 143)
    assert.ok(Date.now() - started < 5_000)
  })

  test('with --token-secret, a token from `holdfast token` connects and a missing one is refused', async (t) => {
    const serve = await startServe(['--log-level', 'warn'], cleanEnv({ HOLDFAST_TOKEN_SECRET: SECRET }))
    t.after(() => serve.child.kill('SIGKILL'))
    assert.doesNotMatch(serve.stderr(), /NO AUTHENTICATION/)

    const minted = await runCliToEnd(['token', '--sub', 'alice', '--ttl', '10m'], cleanEnv({ HOLDFAST_TOKEN_SECRET: SECRET }))
    assert.equal(minted.code, 0, minted.stderr)
    const token = minted.stdout.trim()
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/)

    const ok = await connectClient(serve.wsUrl, token)
    assert.equal(ok.reply.error, undefined)
    assert.equal(typeof ok.reply.result?.client, 'string')
    ok.ws.close()

    // Refused either at the upgrade (HTTP 401) or with an error or a close after connect.
    const refused = await connectClient(serve.wsUrl).then(
      (c) => (c.reply.error !== undefined ? `error reply ${JSON.stringify(c.reply.error)}` : undefined),
      (err: Error) => err.message,
    )
    assert.ok(refused !== undefined && !refused.startsWith('timed out'), `a client without a token must be refused, got ${refused}`)
  })
})

describe('holdfast serve --api-key (real process)', () => {
  test('exposes the server API at /api with the key, 401 without it; publishes reach a client', async (t) => {
    const key = 'process-test-key-5d1e'
    const serve = await startServe(['--log-level', 'warn', '--api-key', key])
    t.after(() => serve.child.kill('SIGKILL'))
    const withKey = { authorization: `apikey ${key}` }

    const info = await fetch(`${serve.url}/api/info`, { headers: withKey })
    assert.equal(info.status, 200)
    const body = (await info.json()) as { node: { id: string; ready: boolean }; registry: string; totals: { nodes: number } }
    assert.equal(body.node.ready, true)
    assert.equal(body.registry, 'ok')
    assert.equal(body.totals.nodes, 1)

    for (const headers of [{}, { authorization: 'apikey wrong' }]) {
      const denied = await fetch(`${serve.url}/api/info`, { headers })
      assert.equal(denied.status, 401)
      assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'unauthorized')
    }
    assert.equal((await fetch(`${serve.url}/api/openapi.json`)).status, 200)

    // The API drives the same gateway as /ws.
    const c = await connectClient(serve.wsUrl)
    const got = new Promise<unknown>((resolve) => {
      c.ws.on('message', (data) => {
        for (const line of data.toString().split('\n')) {
          const msg = line.trim() === '' ? undefined : (JSON.parse(line) as { type?: string; id?: number; data?: unknown })
          if (msg?.type === 'pub') resolve(msg.data)
        }
      })
    })
    c.ws.send(JSON.stringify({ id: 2, type: 'subscribe', channel: 'ops' }))
    // A subscribe via the API would race the client's own; wait for the channel to have a subscriber.
    await within(5_000, 'the subscription', (async () => {
      for (;;) {
        const r = await fetch(`${serve.url}/api/channels`, { method: 'POST', headers: withKey })
        const { channels } = (await r.json()) as { channels: Array<{ channel: string }> }
        if (channels.some((ch) => ch.channel === 'ops')) return
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })())
    const published = await fetch(`${serve.url}/api/publish`, {
      method: 'POST',
      headers: { ...withKey, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'ops', data: { from: 'api' } }),
    })
    assert.equal(published.status, 200)
    assert.deepEqual(await within(5_000, 'the publication at the client', got), { from: 'api' })
    c.ws.close()
  })

  test('without --api-key there is no API at all', async (t) => {
    const serve = await startServe(['--log-level', 'warn'])
    t.after(() => serve.child.kill('SIGKILL'))
    assert.equal((await fetch(`${serve.url}/api/info`, { headers: { authorization: 'apikey anything' } })).status, 404)
    const publish = await fetch(`${serve.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"channel":"a","data":1}' })
    assert.equal(publish.status, 404)
    assert.equal((await fetch(`${serve.url}/api/openapi.json`)).status, 404)
  })
})

describe('holdfast serve refuses bad setups with exit code 2', { concurrency: true }, () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['production without auth', [], { NODE_ENV: 'production' }, /refusing to start.*NODE_ENV=production/],
    ['a session secret too short to sign with', ['--session-secret', 'short'], {}, /--session-secret must be at least 16 characters/],
    ['a worker count out of range', ['--workers', '0'], {}, /--workers must be an integer from 1 to 1024/],
    ['bad port', ['--port', 'eighty'], {}, /--port must be an integer/],
    ['bad env var', [], { HOLDFAST_LOG_LEVEL: 'loud' }, /HOLDFAST_LOG_LEVEL must be one of/],
    ['missing config file', ['--config', 'does-not-exist.json'], {}, /cannot read config file does-not-exist\.json/],
    ['an API key the header cannot carry', ['--api-key', 'two words'], {}, /invalid configuration: .*"apiKey" option must not contain whitespace/],
  ]
  test('port already in use', async (t) => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    t.after(() => blocker.close())
    const { port } = blocker.address() as AddressInfo
    const r = await runCliToEnd(['serve', '--port', String(port)], cleanEnv())
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`))
  })

  for (const [name, args, env, message] of cases) {
    test(name, async () => {
      const r = await runCliToEnd(['serve', ...args], cleanEnv(env))
      assert.equal(r.code, 2, `stdout: ${r.stdout}\nstderr: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stdout, /listening/)
    })
  }
})
