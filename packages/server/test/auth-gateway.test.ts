import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes, HoldfastError } from '@holdfast/protocol'
import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose'
import type WebSocket from 'ws'
import { mintToken } from '../src/auth/mint.js'
import type { Gateway } from '../src/gateway.js'
import { expectClosedWith, tryUpgrade, waitFor, serverPerTest, type TestServer, type UpgradeOutcome } from './helpers.js'

const SECRET = 'auth-gateway-test-secret-0123456789'
const key = new TextEncoder().encode(SECRET)
const now = (): number => Math.floor(Date.now() / 1000)

/** An HS256 token with an explicit `exp` (seconds since the epoch). */
function signed(sub: string, exp: number, secret: Uint8Array = key): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub).setIssuedAt(now() - 10).setExpirationTime(exp).sign(secret)
}

function userOf(gw: Gateway, client: string): string | undefined {
  return [...gw.connections].find((c) => c.id === client)?.user
}

function opened(o: UpgradeOutcome): WebSocket {
  assert.ok('ws' in o, `expected the upgrade to succeed, got ${JSON.stringify(o)}`)
  return o.ws
}

function refused(o: UpgradeOutcome): { status: number; code: string } {
  if ('ws' in o) {
    o.ws.terminate()
    assert.fail('expected the upgrade to be refused, but a WebSocket opened')
  }
  return { status: o.status, code: (JSON.parse(o.body) as { error: { code: string } }).error.code }
}

interface ConnectResult {
  client: string
  expiresIn?: number
}

describe('auth at the gateway', () => {
  const fx = serverPerTest()
  const { client, start } = fx

  /** Send a connect that must fail; the connection must end with `code` after a disconnect push. */
  async function connectFails(s: TestServer, token: string | undefined, code: number): Promise<string> {
    const c = client(s.url)
    await c.opened()
    c.sendRaw(token === undefined ? { id: 1, type: 'connect', version: 1 } : { id: 1, type: 'connect', version: 1, token })
    const closed = await expectClosedWith(c, code)
    return closed.reason
  }

  describe('JWT in the connect command', () => {
    it('a valid token connects as its subject', async () => {
      const s = await start({ jwt: { secret: SECRET } })
      const c = client(s.url)
      const r = (await c.connect({ token: await mintToken({ secret: SECRET, sub: 'alice', ttl: '1h' }) })) as ConnectResult
      assert.equal(userOf(s.gw, r.client), 'alice')
      assert.ok(r.expiresIn !== undefined && r.expiresIn > 3_500_000 && r.expiresIn <= 3_600_000, `expiresIn ${r.expiresIn}`)
      await c.call({ type: 'ping' })
    })

    it('refuses bad tokens with 4009 after a disconnect push', async () => {
      const s = await start({ jwt: { secret: SECRET } })
      const good = await mintToken({ secret: SECRET, sub: 'alice' })
      const [head, payload, sig] = good.split('.') as [string, string, string]
      // Flip the first signature character: still base64url, no longer the signature.
      const badSig = `${head}.${payload}.${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`
      // Keep the signature, change the claims: a different subject under alice's signature.
      const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: 'mallory' })).toString('base64url')
      const forged = `${head}.${forgedPayload}.${sig}`
      const wrongSecret = await mintToken({ secret: 'some-other-secret-0123456789', sub: 'alice' })
      const algNone = new UnsecuredJWT({}).setSubject('alice').setIssuedAt().setExpirationTime('1h').encode()
      const { privateKey } = await generateKeyPair('RS256')
      const rs256 = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime('1h').sign(privateKey)
      const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key)
      const notYet = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setNotBefore(now() + 3600).setExpirationTime('2h').sign(key)
      const cases: Array<[string, string | undefined]> = [
        ['bad signature', badSig],
        ['forged claims', forged],
        ['wrong secret', wrongSecret],
        ['alg:none', algNone],
        ['RS256 (another algorithm family)', rs256],
        ['no sub', noSub],
        ['nbf in the future', notYet],
        ['garbage', 'garbage'],
        ['three dots of garbage', 'a.b.c'],
        ['empty string', ''],
        ['no token at all', undefined],
      ]
      for (const [what, token] of cases) {
        const reason = await connectFails(s, token, CloseCodes.unauthorized.code).catch((err: Error) => {
          throw new Error(`${what}: ${err.message}`)
        })
        assert.ok(!reason.includes(token ?? '\0') || token === '', `${what}: the close reason must not echo the token`)
      }
      await waitFor(() => s.gw.connectionCount === 0, 2000, 'every refused connection to be gone')
    })

    it('an expired token closes with 4008', async () => {
      const s = await start({ jwt: { secret: SECRET, clockToleranceSec: 0 } })
      await connectFails(s, await signed('alice', now() - 60), CloseCodes.token_expired.code)
    })

    it('commands pipelined behind a failing connect never run', async () => {
      const s = await start({
        authenticate: async () => {
          await new Promise((r) => setTimeout(r, 30))
          throw new HoldfastError('unauthorized', 'no')
        },
      })
      const c = client(s.url)
      await c.opened()
      c.sendRaw({ id: 1, type: 'connect', version: 1, token: 'x' })
      c.sendRaw({ id: 2, type: 'subscribe', channel: 'secret' })
      c.sendRaw({ id: 3, type: 'publish', channel: 'secret', data: 'pwned', msgId: 'm' })
      await expectClosedWith(c, CloseCodes.unauthorized.code)
      const h = await s.gw.history('secret')
      assert.equal(h.publications.length, 0, 'the pipelined publish must not have been performed')
      assert.equal(s.gw.hub.size, 0, 'the pipelined subscribe must not have been performed')
    })
  })

  describe('token in the upgrade request', () => {
    it('an invalid token in Authorization: Bearer or ?token= gets HTTP 401, no WebSocket', async () => {
      const s = await start({ jwt: { secret: SECRET } })
      const wrong = await mintToken({ secret: 'some-other-secret-0123456789', sub: 'alice' })
      const expired = await signed('alice', now() - 3600)
      assert.deepEqual(refused(await tryUpgrade(s.url, { headers: { authorization: `Bearer ${wrong}` } })), { status: 401, code: 'unauthorized' })
      assert.deepEqual(refused(await tryUpgrade(`${s.url}?token=${wrong}`)), { status: 401, code: 'unauthorized' })
      assert.deepEqual(refused(await tryUpgrade(`${s.url}?token=garbage`)), { status: 401, code: 'unauthorized' })
      assert.deepEqual(refused(await tryUpgrade(s.url, { headers: { authorization: `Bearer ${expired}` } })), { status: 401, code: 'token_expired' })
      assert.equal(s.gw.connectionCount, 0)
      assert.equal(s.gw.counters.get('connections_rejected', 'unauthorized'), 3)
    })

    it('a valid token in the header or the query authenticates; connect needs no token then', async () => {
      const s = await start({ jwt: { secret: SECRET } })
      const token = await mintToken({ secret: SECRET, sub: 'alice' })
      for (const [url, headers] of [
        [s.url, { authorization: `Bearer ${token}` }],
        [`${s.url}?token=${token}`, undefined],
      ] as const) {
        const c = client(url, headers === undefined ? {} : { headers })
        const r = await c.connect()
        assert.equal(userOf(s.gw, r.client), 'alice')
      }
    })
  })

  describe('origin allow-list', () => {
    it('a foreign Origin gets 403; the allowed one and none get through', async () => {
      const s = await start({ allowedOrigins: ['https://app.example.com'] })
      assert.deepEqual(refused(await tryUpgrade(s.url, { origin: 'https://evil.example.com' })), { status: 403, code: 'origin' })
      assert.deepEqual(refused(await tryUpgrade(s.url, { origin: 'http://app.example.com' })), { status: 403, code: 'origin' }, 'scheme matters')
      assert.deepEqual(refused(await tryUpgrade(s.url, { origin: 'null' })), { status: 403, code: 'origin' })
      fx.socket(opened(await tryUpgrade(s.url, { origin: 'https://app.example.com' })))
      fx.socket(opened(await tryUpgrade(s.url)))
      const c = client(s.url, { headers: { origin: 'https://app.example.com' } })
      await c.connect()
    })
  })

  describe('expiry and refresh', () => {
    it('a token near expiry: expiresIn > 0, then 4008 at expiry unless refreshed before', async () => {
      const s = await start({ jwt: { secret: SECRET, clockToleranceSec: 0 } })
      const exp = now() + 2
      const short = await signed('alice', exp)
      const refreshed = client(s.url)
      const lapsed = client(s.url)
      const r1 = (await refreshed.connect({ token: short })) as ConnectResult
      const r2 = (await lapsed.connect({ token: short })) as ConnectResult
      for (const r of [r1, r2]) assert.ok(r.expiresIn !== undefined && r.expiresIn > 0 && r.expiresIn <= 2000, `expiresIn ${r.expiresIn}`)

      const fresh = await mintToken({ secret: SECRET, sub: 'alice', ttl: '1h' })
      const rr = await refreshed.call<{ expiresIn?: number }>({ type: 'refresh', token: fresh })
      assert.ok(rr.expiresIn !== undefined && rr.expiresIn > 3_500_000, `refresh expiresIn ${rr.expiresIn}`)

      // The connection that did not refresh is closed at expiry, not before.
      await expectClosedWith(lapsed, CloseCodes.token_expired.code, { ms: 6000 })
      assert.ok(Date.now() >= exp * 1000, 'closed before the token expired')
      // Same old expiry, already past and handled by the same wheel: the refreshed one is still open.
      await refreshed.call({ type: 'ping' })
      assert.equal(refreshed.closed, undefined)
      assert.ok(Date.now() > exp * 1000)
    })

    it('refresh with an invalid token gets 101 and an expired one 109; the connection stays', async () => {
      const s = await start({ jwt: { secret: SECRET, clockToleranceSec: 0 } })
      const c = client(s.url)
      await c.connect({ token: await mintToken({ secret: SECRET, sub: 'alice' }) })
      const bad = (await c.request({ type: 'refresh', token: 'garbage' })) as { error?: { code: number } }
      assert.equal(bad.error?.code, ErrorCodes.unauthorized.code)
      const old = (await c.request({ type: 'refresh', token: await signed('alice', now() - 60) })) as { error?: { code: number } }
      assert.equal(old.error?.code, ErrorCodes.token_expired.code)
      await c.call({ type: 'ping' })
      assert.equal(c.closed, undefined)
    })
  })

  describe('without JWT', () => {
    it('allowAnonymous: false and no auth configured refuses every connect with 4009', async () => {
      const s = await start({ allowAnonymous: false })
      await connectFails(s, undefined, CloseCodes.unauthorized.code)
      await connectFails(s, 'anything', CloseCodes.unauthorized.code)
    })

    it('a custom authenticate hook decides the user; a throwing hook closes with 4009 without leaking', async () => {
      const seen: Array<{ token: string | undefined; hasRequest: boolean }> = []
      const s = await start({
        authenticate: ({ token, request }) => {
          seen.push({ token, hasRequest: request !== undefined })
          if (token === 'letmein') return { user: 'bob', info: { name: 'Bob' } }
          if (token === 'stale') throw new HoldfastError('token_expired', 'your session is stale')
          if (token === 'past') return { user: 'bob', expiresAt: Date.now() - 60_000 }
          throw new Error('database password hunter2 is wrong')
        },
      })
      const c = client(s.url)
      const r = await c.connect({ token: 'letmein' })
      assert.equal(userOf(s.gw, r.client), 'bob')
      assert.deepEqual([...s.gw.connections].find((x) => x.id === r.client)?.clientInfo(), { client: r.client, user: 'bob', info: { name: 'Bob' } })
      assert.deepEqual(seen[0], { token: 'letmein', hasRequest: true })

      const reason = await connectFails(s, 'boom', CloseCodes.unauthorized.code)
      assert.ok(!reason.includes('hunter2'), `the hook's error must not reach the client: ${reason}`)
      await connectFails(s, 'stale', CloseCodes.token_expired.code)
      await connectFails(s, 'past', CloseCodes.token_expired.code)
      // At the upgrade, the same hook refuses with 401.
      assert.equal(refused(await tryUpgrade(s.url, { headers: { authorization: 'Bearer boom' } })).status, 401)
    })
  })
})
