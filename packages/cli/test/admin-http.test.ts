// The dashboard's HTTP side in process (app.inject, and a listening app for the WebSocket parts):
// no secret means no /admin at all; login, cookies, guessing limits, CSRF checks and the actions.
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import WebSocket from 'ws'
import { HoldfastClient, type PublicationEvent, type StateChange } from '@holdfast/client'
import { createHoldfast, type Holdfast, type HoldfastOptions } from '@holdfast/server'
import { AdminDashboard, SESSION_COOKIE, type AdminDashboardOptions } from '../src/admin/index.js'
import { LoginLimiter } from '../src/admin/login-limiter.js'
import { SessionCookies } from '../src/admin/session-cookie.js'
import { buildHttpApp } from '../src/http-app.js'
import { within } from './helpers.js'

const SECRET = 'an-admin-secret-long-enough'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const API = { 'x-holdfast-admin': '1' }

interface Setup {
  app: FastifyInstance
  holdfast: Holdfast
  admin: AdminDashboard
}

async function setup(t: TestContext, opts: Partial<AdminDashboardOptions> = {}, server: HoldfastOptions = {}): Promise<Setup> {
  const admin = new AdminDashboard({ secret: SECRET, failureDelayMs: 0, ...opts, server: { logger: false, ...server } })
  const holdfast = createHoldfast(admin.serverOptions)
  const app = await buildHttpApp({ holdfast, logger: false, admin })
  t.after(async () => {
    await app.close()
    await holdfast.close({ drainMs: 0 })
  })
  return { app, holdfast, admin }
}

function login(app: FastifyInstance, secret: string, remoteAddress = '127.0.0.1', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/admin/login', headers: { ...FORM, ...headers }, payload: new URLSearchParams({ secret }).toString(), remoteAddress })
}

/** The session cookie's `name=value`, from a successful login. */
async function sessionCookie(app: FastifyInstance): Promise<string> {
  const res = await login(app, SECRET)
  assert.equal(res.statusCode, 303)
  const set = String(res.headers['set-cookie'])
  return set.slice(0, set.indexOf(';'))
}

function attributes(setCookie: unknown): Map<string, string> {
  const parts = String(setCookie).split(';').map((p) => p.trim())
  return new Map(parts.slice(1).map((p) => [p.split('=')[0]!.toLowerCase(), p.split('=')[1] ?? '']))
}

describe('admin dashboard over HTTP', () => {
  test('without an admin secret every /admin URL is 404, its files included, however spelled', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'holdfast-admin-'))
    mkdirSync(join(root, 'admin'))
    writeFileSync(join(root, 'admin', 'index.html'), 'dashboard page')
    writeFileSync(join(root, 'index.html'), 'demo page')
    const holdfast = createHoldfast({ logger: false })
    const app = await buildHttpApp({ holdfast, logger: false, publicDir: root })
    t.after(async () => {
      await app.close()
      await holdfast.close({ drainMs: 0 })
    })
    const urls = [
      '/admin',
      '/admin/',
      '/admin/index.html',
      '/admin/admin.css',
      '/admin/admin.js',
      '/admin/api/nodes',
      // These reach the public folder's catch-all route, not /admin's: http-app must refuse them too.
      '//admin/index.html',
      '/admin%2findex.html',
      '/x/..%2fadmin/index.html',
      '/x%2f..%2fadmin%2findex.html',
    ]
    for (const url of urls) {
      const res = await app.inject(url)
      assert.equal(res.statusCode, 404, url)
      assert.doesNotMatch(res.body, /dashboard page/, url)
    }
    for (const url of ['/admin/login', '/admin/api/token', '/admin/api/publish']) {
      assert.equal((await app.inject({ method: 'POST', url, headers: FORM, payload: `secret=${SECRET}` })).statusCode, 404, `POST ${url}`)
    }
    assert.equal((await app.inject('/')).body, 'demo page', 'the demo is still served')
  })

  test('the login form; a wrong secret is 401 with the error, after the failure delay, and sets no cookie', async (t) => {
    const { app } = await setup(t, { failureDelayMs: 150 })
    const page = await app.inject('/admin')
    assert.equal(page.statusCode, 200)
    assert.match(page.body, /<form[^>]+action="\/admin\/login"/)
    assert.doesNotMatch(page.body, /data-testid="login-error"/)

    const started = performance.now()
    const res = await login(app, 'not-the-secret')
    assert.ok(performance.now() - started >= 140, 'a wrong secret is answered only after the delay')
    assert.equal(res.statusCode, 401)
    assert.equal(res.headers['set-cookie'], undefined)
    assert.match(res.body, /data-testid="login-error">Wrong secret\.</)
    // A secret that differs only in length, or is empty, is just as wrong.
    assert.equal((await login(app, `${SECRET}x`)).statusCode, 401)
    assert.equal((await app.inject({ method: 'POST', url: '/admin/login', headers: FORM, payload: '' })).statusCode, 401)
  })

  test('the right secret: 303 to /admin with an HttpOnly, SameSite=Strict, expiring session cookie', async (t) => {
    const { app } = await setup(t, { sessionTtlMs: 3600_000 })
    const res = await login(app, SECRET)
    assert.equal(res.statusCode, 303)
    assert.equal(res.headers['location'], '/admin')
    const set = String(res.headers['set-cookie'])
    assert.ok(set.startsWith(`${SESSION_COOKIE}=v1.`), set)
    const attrs = attributes(set)
    assert.ok(attrs.has('httponly'), set)
    assert.equal(attrs.get('samesite'), 'Strict')
    assert.equal(attrs.get('path'), '/admin')
    const maxAge = Number(attrs.get('max-age'))
    assert.ok(maxAge > 3590 && maxAge <= 3600, `Max-Age ${maxAge}`)
    assert.ok(!attrs.has('secure'), 'no Secure over plain HTTP: the cookie would never come back')

    // Behind a TLS-terminating proxy the cookie is Secure. JSON bodies work too.
    const https = await app.inject({ method: 'POST', url: '/admin/login', headers: { 'x-forwarded-proto': 'https' }, payload: { secret: SECRET } })
    assert.equal(https.statusCode, 303)
    assert.ok(attributes(https.headers['set-cookie']).has('secure'))
  })

  test('guessing is limited per address: 429 with Retry-After, even for the right secret; success gives the attempt back', async (t) => {
    const { app } = await setup(t, { login: { burst: 3, refillMs: 60_000 } })
    // A success does not use up the address's attempts.
    for (let i = 0; i < 5; i++) assert.equal((await login(app, SECRET, '10.0.0.1')).statusCode, 303)
    for (let i = 0; i < 3; i++) assert.equal((await login(app, 'guess', '10.0.0.2')).statusCode, 401)
    const limited = await login(app, SECRET, '10.0.0.2')
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.headers['set-cookie'], undefined)
    assert.match(limited.body, /Too many attempts/)
    const retry = Number(limited.headers['retry-after'])
    assert.ok(retry > 0 && retry <= 60, `Retry-After ${retry}`)
    // Another address is not affected.
    assert.equal((await login(app, SECRET, '10.0.0.3')).statusCode, 303)
  })

  test('the session cookie is required: login form, 401s, and forged or altered cookies refused', async (t) => {
    const { app } = await setup(t)
    const cookie = await sessionCookie(app)
    assert.match((await app.inject('/admin')).body, /data-testid="login-form"/)
    const dashboard = await app.inject({ url: '/admin', headers: { cookie } })
    assert.equal(dashboard.statusCode, 200)
    assert.match(dashboard.body, /<script src="\/admin\/admin.js"/)
    const slash = await app.inject('/admin/')
    assert.equal(slash.statusCode, 308)
    assert.equal(slash.headers['location'], '/admin')
    // The login page's stylesheet is the one file served without a session.
    assert.equal((await app.inject('/admin/admin.css')).statusCode, 200)

    const value = cookie.slice(cookie.indexOf('=') + 1)
    const [v, exp, id, mac] = value.split('.') as [string, string, string, string]
    const forged = [
      'v1.9999999999.AAAAAAAAAAAAAAAAAAAAAA.AAAA',
      `${v}.${Number(exp) + 3600}.${id}.${mac}`,
      `${v}.${exp}.${id.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}.${mac}`,
      `${v}.${exp}.${id}`,
      'garbage',
    ]
    const routes: Array<{ method: 'GET' | 'POST'; url: string }> = [
      { method: 'GET', url: '/admin/admin.js' },
      { method: 'GET', url: '/admin/api/nodes' },
      { method: 'POST', url: '/admin/api/token' },
      { method: 'POST', url: '/admin/api/publish' },
      { method: 'POST', url: '/admin/api/presence' },
      { method: 'POST', url: '/admin/api/disconnect' },
      { method: 'GET', url: '/admin/anything-else' },
    ]
    for (const r of routes) {
      const none = await app.inject({ ...r, headers: API, ...(r.method === 'POST' ? { payload: {} } : {}) })
      assert.equal(none.statusCode, 401, `${r.method} ${r.url} without a cookie`)
      assert.equal(none.json().error.code, 'unauthorized')
      for (const f of forged) {
        const res = await app.inject({ ...r, headers: { ...API, cookie: `${SESSION_COOKIE}=${f}` } })
        assert.equal(res.statusCode, 401, `${r.method} ${r.url} with cookie ${f}`)
      }
    }
    assert.equal((await app.inject({ url: '/admin/api/nodes', headers: { ...API, cookie } })).statusCode, 200)
    assert.equal((await app.inject({ url: '/admin/anything-else', headers: { cookie } })).statusCode, 404, 'logged in: a plain 404')
  })

  test('CSRF: the actions need the custom header, and a cross-site request is refused', async (t) => {
    const { app } = await setup(t)
    const cookie = await sessionCookie(app)
    const publish = { method: 'POST' as const, url: '/admin/api/publish', payload: { channel: 'chat:x', data: 1 } }
    const noHeader = await app.inject({ ...publish, headers: { cookie } })
    assert.equal(noHeader.statusCode, 403)
    assert.equal(noHeader.json().error.code, 'forbidden')
    assert.equal((await app.inject({ ...publish, headers: { cookie, 'x-holdfast-admin': 'yes' } })).statusCode, 403)
    assert.equal((await app.inject({ ...publish, headers: { cookie, ...API, 'sec-fetch-site': 'cross-site' } })).statusCode, 403)
    assert.equal((await app.inject({ ...publish, headers: { cookie, ...API, 'sec-fetch-site': 'same-site' } })).statusCode, 403)
    assert.equal((await app.inject({ ...publish, headers: { cookie, ...API, 'sec-fetch-site': 'same-origin' } })).statusCode, 200)
    // A login posted by another site's page is refused before the secret is looked at.
    const crossLogin = await login(app, SECRET, '127.0.0.1', { 'sec-fetch-site': 'cross-site' })
    assert.equal(crossLogin.statusCode, 403)
    assert.equal(crossLogin.headers['set-cookie'], undefined)
  })

  test('logout clears the cookie, and the logged-out session is refused afterwards', async (t) => {
    const { app } = await setup(t)
    const cookie = await sessionCookie(app)
    const other = await sessionCookie(app)
    const out = await app.inject({ method: 'POST', url: '/admin/logout', headers: { cookie } })
    assert.equal(out.statusCode, 303)
    assert.equal(out.headers['location'], '/admin')
    const attrs = attributes(out.headers['set-cookie'])
    assert.equal(attrs.get('max-age'), '0')
    assert.ok(String(out.headers['set-cookie']).startsWith(`${SESSION_COOKIE}=;`))
    assert.equal((await app.inject({ url: '/admin/api/nodes', headers: { ...API, cookie } })).statusCode, 401, 'a copy of the old cookie no longer works')
    assert.equal((await app.inject({ url: '/admin/api/nodes', headers: { ...API, cookie: other } })).statusCode, 200, 'other sessions stay logged in')
  })

  test('every /admin response: no-store, no framing, nosniff, a strict CSP', async (t) => {
    const { app } = await setup(t)
    const cookie = await sessionCookie(app)
    for (const res of [await app.inject('/admin'), await app.inject({ url: '/admin', headers: { cookie } }), await login(app, 'wrong')]) {
      assert.equal(res.headers['cache-control'], 'no-store')
      assert.equal(res.headers['x-frame-options'], 'DENY')
      assert.equal(res.headers['x-content-type-options'], 'nosniff')
      const csp = String(res.headers['content-security-policy'])
      assert.match(csp, /script-src 'self'(;|$)/)
      assert.match(csp, /frame-ancestors 'none'/)
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/)
    }
  })

  test('a secret shorter than 16 characters draws a warning; an empty one is refused', () => {
    assert.equal(new AdminDashboard({ secret: SECRET }).warnings.length, 0)
    assert.match(new AdminDashboard({ secret: 'short' }).warnings.join(), /shorter than 16/)
    assert.throws(() => new AdminDashboard({ secret: '' }), /option "secret"/)
    assert.throws(() => new AdminDashboard({ secret: SECRET, tokenTtlMs: 100 }), /option "tokenTtlMs"/)
  })
})

interface Client {
  client: HoldfastClient
  /** Connection id from the server. */
  id: string
  publications: PublicationEvent[]
  closed: Promise<StateChange>
}

async function connect(wsUrl: string, channel: string): Promise<Client> {
  const client = new HoldfastClient(wsUrl, { WebSocket })
  const publications: PublicationEvent[] = []
  const closed = new Promise<StateChange>((resolve) => client.on('state', (c) => c.to === 'closed' && resolve(c)))
  const sub = client.subscribe(channel)
  sub.on('publication', (p) => publications.push(p))
  const subscribed = new Promise<void>((resolve) => sub.on('subscribed', () => resolve()))
  const connected = new Promise<string>((resolve) => client.on('connected', (e) => resolve(e.client)))
  client.connect()
  const id = await within(5000, 'connected', connected)
  await within(5000, `subscribed to ${channel}`, subscribed)
  return { client, id, publications, closed }
}

describe('admin actions', () => {
  test('publish reaches subscribers, presence lists them, disconnect closes them with 4012, nodes lists this node', async (t) => {
    const { app, holdfast } = await setup(t, {}, { channels: { namespaces: { chat: { presence: true } } } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    const wsUrl = `ws://127.0.0.1:${port}/ws`
    const cookie = await sessionCookie(app)
    const post = (url: string, payload: unknown): Promise<LightMyRequestResponse> => app.inject({ method: 'POST', url, headers: { ...API, cookie }, payload: payload as object })

    const a = await connect(wsUrl, 'chat:room')
    const b = await connect(wsUrl, 'chat:room')
    t.after(() => {
      a.client.close()
      b.client.close()
    })

    const pub = await post('/admin/api/publish', { channel: 'chat:room', data: { text: 'from the admin' } })
    assert.equal(pub.statusCode, 200)
    assert.equal(pub.json().offset, 1)
    for (const c of [a, b]) {
      await within(5000, 'the publication', (async () => {
        while (c.publications.length === 0) await new Promise((r) => setTimeout(r, 10))
      })())
      assert.deepEqual(c.publications[0]?.data, { text: 'from the admin' })
    }

    const presence = await post('/admin/api/presence', { channel: 'chat:room' })
    assert.equal(presence.statusCode, 200)
    assert.equal(presence.json().clients.length, 2)

    const nodes = await app.inject({ url: '/admin/api/nodes', headers: { ...API, cookie } })
    assert.equal(nodes.json().self, holdfast.nodeId)
    assert.deepEqual(nodes.json().nodes.map((n: { id: string }) => n.id), [holdfast.nodeId])

    // Anonymous clients share the user '': one connection is disconnected by its id.
    const kick = await post('/admin/api/disconnect', { client: a.id })
    assert.equal(kick.statusCode, 200)
    const closed = await within(5000, 'the kick', a.closed)
    assert.equal(closed.reason.code, 4012)
    assert.equal(b.client.state, 'connected', 'the other connection stays')

    // Bad input is a 400 with the server API's error codes.
    const badChannel = await post('/admin/api/publish', { channel: 'no spaces', data: 1 })
    assert.equal(badChannel.statusCode, 400)
    assert.equal(badChannel.json().error.code, 'unknown_channel')
    assert.equal((await post('/admin/api/publish', { channel: 'chat:room' })).statusCode, 400, 'data is required')
    assert.equal((await post('/admin/api/disconnect', {})).statusCode, 400, 'a user or a client is required')
    const extra = await post('/admin/api/disconnect', { user: 'x', code: 1000 })
    assert.equal(extra.statusCode, 400, 'no other fields (not silently dropped)')
    assert.equal(extra.json().error.message, 'unknown field code')
    assert.equal((await post('/admin/api/disconnect', { user: '' })).statusCode, 400, 'the empty user would be every anonymous connection')
  })
})

describe('admin building blocks', () => {
  test('session cookies expire, cannot be altered, and are forgotten on revoke', () => {
    let now = 1_000_000_000_000
    const key = Buffer.alloc(32, 7)
    const cookies = new SessionCookies(key, 60_000, () => now)
    const { session, value } = cookies.issue()
    assert.deepEqual(cookies.verify(value), session)
    assert.equal(new SessionCookies(Buffer.alloc(32, 8), 60_000, () => now).verify(value), undefined, 'another secret, another key')
    now += 59_000
    assert.ok(cookies.verify(value) !== undefined)
    now += 1000
    assert.equal(cookies.verify(value), undefined, 'expired')
    now -= 30_000
    cookies.revoke(session)
    assert.equal(cookies.verify(value), undefined, 'revoked')
    assert.ok(cookies.verify(cookies.issue().value) !== undefined, 'a new session is fine')
    assert.equal(cookies.verify(undefined), undefined)
    assert.equal(cookies.verify('x'.repeat(500)), undefined)
  })

  test('the login limiter refills one attempt per period and keeps a bounded table', () => {
    const limiter = new LoginLimiter({ burst: 2, refillMs: 1000, maxTracked: 3 })
    assert.ok(limiter.take('a', 0))
    assert.ok(limiter.take('a', 0))
    assert.ok(!limiter.take('a', 10))
    assert.equal(limiter.retryAfterSec('a', 10), 1)
    assert.ok(!limiter.take('a', 900))
    assert.ok(limiter.take('a', 2000), 'refilled')
    limiter.giveBack('a', 2000)
    assert.ok(limiter.take('a', 2000))
    // Many addresses: the table stays bounded, and a forgotten address starts with a full bucket.
    for (let i = 0; i < 50; i++) limiter.take(`ip${i}`, 3000)
    assert.ok(limiter.take('ip0', 3000))
  })
})
