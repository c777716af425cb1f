import assert from 'node:assert/strict'
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { describe, it, type TestContext } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import { createJwtVerifier } from '../src/auth/jwt.js'

interface Signer {
  kid: string
  alg: string
  privateKey: CryptoKey
  jwk: JWK
}

async function signer(kid: string, alg: 'RS256' | 'ES256' | 'EdDSA' = 'RS256'): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg)
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
}

function sign(s: Signer, sub: string, kid: string | null = s.kid): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader(kid === null ? { alg: s.alg } : { alg: s.alg, kid })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(s.privateKey)
}

interface JwksServer {
  url: string
  /** Requests served so far. */
  readonly hits: number
  /** What the next requests get: keys, or a failure mode. */
  respond: { keys: JWK[] } | 'error500' | 'not-json' | 'hang'
}

/** A real JWKS endpoint on 127.0.0.1, closed when the test ends. */
async function jwksServer(t: TestContext, keys: JWK[]): Promise<JwksServer> {
  const sockets = new Set<Socket>()
  const state: JwksServer = { url: '', hits: 0, respond: { keys } }
  let hits = 0
  const server: Server = createServer((req, res) => {
    hits++
    const r = state.respond
    if (r === 'hang') return
    if (r === 'error500') return void res.writeHead(500).end('boom')
    if (r === 'not-json') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [')
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r))
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  Object.defineProperty(state, 'hits', { get: () => hits })
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
  return state
}

/** Rejects if `p` has not settled within `ms`: a JWKS outage must fail the handshake, not hang it. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, guard])
  } finally {
    clearTimeout(timer)
  }
}

async function unauthorized(p: Promise<unknown>): Promise<HoldfastError> {
  const err = await p.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  )
  assert.ok(err instanceof HoldfastError, String(err))
  assert.equal(err.code, 'unauthorized')
  return err
}

describe('createJwtVerifier: JWKS', () => {
  it('chooses the key by kid and fetches the JWKS once for many tokens', async (t) => {
    const [a, b] = [await signer('key-a'), await signer('key-b', 'ES256')]
    const jwks = await jwksServer(t, [a.jwk, b.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    assert.equal((await verify(await sign(a, 'alice'))).user, 'alice')
    assert.equal((await verify(await sign(b, 'bob'))).user, 'bob')
    await Promise.all([1, 2, 3].map(async (i) => assert.equal((await verify(await sign(a, `u${i}`))).user, `u${i}`)))
    assert.equal(jwks.hits, 1)
  })

  it('checks each token with node:crypto, never WebCrypto verify, once the keys are fetched', async (t) => {
    const signers = [await signer('rs', 'RS256'), await signer('es', 'ES256'), await signer('ed', 'EdDSA')]
    const jwks = await jwksServer(t, signers.map((s) => s.jwk))
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const tokens = await Promise.all(signers.map((s) => sign(s, s.kid)))
    // Warm up: the first token of each key fetches the set and imports that key.
    for (const token of tokens) await verify(token)
    const subtleVerify = t.mock.method(crypto.subtle, 'verify')
    for (const [i, token] of tokens.entries()) assert.equal((await verify(token)).user, signers[i]!.kid)
    assert.equal(subtleVerify.mock.callCount(), 0)
    assert.equal(jwks.hits, 1)
  })

  it('rejects a token whose signature or payload was changed, for RS256, ES256 and EdDSA keys', async (t) => {
    const signers = [await signer('rs', 'RS256'), await signer('es', 'ES256'), await signer('ed', 'EdDSA')]
    const jwks = await jwksServer(t, signers.map((s) => s.jwk))
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    for (const s of signers) {
      const [header, payload, signature] = (await sign(s, 'alice')).split('.') as [string, string, string]
      const bytes = Buffer.from(signature, 'base64url')
      bytes[0]! ^= 0x80
      const flipped = `${header}.${payload}.${bytes.toString('base64url')}`
      assert.equal((await unauthorized(verify(flipped))).message, 'token signature is invalid', s.alg)
      const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'admin' })).toString('base64url')}.${signature}`
      assert.equal((await unauthorized(verify(forged))).message, 'token signature is invalid', s.alg)
    }
  })

  it('refuses HS tokens made with a published key as secret (alg confusion)', async (t) => {
    const a = await signer('key-a')
    const jwks = await jwksServer(t, [a.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    for (const secret of [JSON.stringify(a.jwk), a.jwk.n!]) {
      const token = await new SignJWT({ sub: 'admin' }).setProtectedHeader({ alg: 'HS256', kid: 'key-a' }).sign(new TextEncoder().encode(secret))
      assert.equal((await unauthorized(verify(token))).message, 'token algorithm is not allowed')
    }
  })

  it('refuses a JWKS RSA key shorter than 2048 bits', async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const jwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid: 'small', alg: 'RS256', use: 'sig' }
    const jwks = await jwksServer(t, [jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'small' })).toString('base64url')
    const payload = Buffer.from(JSON.stringify({ sub: 'a' })).toString('base64url')
    const signature = cryptoSign('sha256', Buffer.from(`${header}.${payload}`), privateKey).toString('base64url')
    const err = await unauthorized(verify(`${header}.${payload}.${signature}`))
    assert.equal(err.message, 'token is invalid')
    assert.equal(err.temporary, false)
  })

  it('rejects a token signed by one key but naming another key’s kid', async (t) => {
    const [a, b] = [await signer('key-a'), await signer('key-b')]
    const jwks = await jwksServer(t, [a.jwk, b.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const err = await unauthorized(verify(await sign(a, 'mallory', 'key-b')))
    assert.equal(err.message, 'token signature is invalid')
  })

  it('tries each matching key for a token without kid', async (t) => {
    const [a, b] = [await signer('key-a'), await signer('key-b')]
    const jwks = await jwksServer(t, [a.jwk, b.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    assert.equal((await verify(await sign(b, 'bob', null))).user, 'bob')
    const stranger = await signer('key-c')
    assert.equal((await unauthorized(verify(await sign(stranger, 'eve', null)))).message, 'token signature is invalid')
  })

  it('rejects an unknown kid, and does not refetch within the cooldown', async (t) => {
    const a = await signer('key-a')
    const jwks = await jwksServer(t, [a.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const stranger = await signer('key-x')
    const err = await unauthorized(verify(await sign(stranger, 'eve')))
    assert.equal(err.message, 'no JWKS key matches the token')
    await unauthorized(verify(await sign(stranger, 'eve')))
    assert.equal(jwks.hits, 1, 'random kids must not make the verifier hammer the JWKS endpoint')
  })

  it('picks up a rotated-in key once the cooldown has passed', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const [a, b] = [await signer('2024-01'), await signer('2024-02')]
    const jwks = await jwksServer(t, [a.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    assert.equal((await verify(await sign(a, 'alice'))).user, 'alice')

    jwks.respond = { keys: [a.jwk, b.jwk] }
    const rotated = await sign(b, 'bob')
    t.mock.timers.tick(10_000)
    await unauthorized(verify(rotated))
    assert.equal(jwks.hits, 1)

    t.mock.timers.tick(25_000)
    assert.equal((await verify(rotated)).user, 'bob')
    assert.equal(jwks.hits, 2)
    // The old key keeps working from the refreshed set.
    assert.equal((await verify(await sign(a, 'alice'))).user, 'alice')
    assert.equal(jwks.hits, 2)
  })

  it('never fetches the JWKS for a token whose alg is not allowed', async (t) => {
    const jwks = await jwksServer(t, [])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const hsToken = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'HS256', kid: 'k' }).sign(new Uint8Array(32))
    assert.equal((await unauthorized(verify(hsToken))).message, 'token algorithm is not allowed')
    assert.equal(jwks.hits, 0)
  })

  it('fails fast with a temporary unauthorized when the JWKS server is down', async (t) => {
    const jwks = await jwksServer(t, [])
    const down = createServer()
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve))
    const port = (down.address() as AddressInfo).port
    await new Promise<void>((resolve) => down.close(() => resolve()))
    const verify = createJwtVerifier({ jwksUrl: `http://127.0.0.1:${port}/jwks.json` })
    const a = await signer('key-a')
    const err = await within(unauthorized(verify(await sign(a, 'alice'))), 3_000)
    assert.equal(err.message, 'JWKS could not be fetched')
    assert.equal(err.temporary, true)
    assert.ok(err.cause instanceof Error)
    assert.equal(jwks.hits, 0)
  })

  it('fails on a 500 or a malformed document, and recovers when the endpoint does', async (t) => {
    const a = await signer('key-a')
    const jwks = await jwksServer(t, [a.jwk])
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const token = await sign(a, 'alice')
    jwks.respond = 'error500'
    assert.equal((await unauthorized(verify(token))).message, 'JWKS could not be fetched')
    jwks.respond = 'not-json'
    assert.equal((await unauthorized(verify(token))).temporary, true)
    jwks.respond = { keys: 'none' } as unknown as { keys: JWK[] }
    assert.equal((await unauthorized(verify(token))).message, 'JWKS could not be fetched')
    // Failed fetches start no cooldown, so the next handshake tries again at once.
    jwks.respond = { keys: [a.jwk] }
    assert.equal((await verify(token)).user, 'alice')
    assert.equal(jwks.hits, 4)
  })

  it('gives up on a JWKS endpoint that never answers (5 s timeout)', async (t) => {
    const a = await signer('key-a')
    const jwks = await jwksServer(t, [a.jwk])
    jwks.respond = 'hang'
    const verify = createJwtVerifier({ jwksUrl: jwks.url })
    const token = await sign(a, 'alice')
    const started = performance.now()
    const err = await within(unauthorized(verify(token)), 8_000)
    assert.equal(err.message, 'JWKS fetch timed out')
    assert.equal(err.temporary, true)
    assert.ok(performance.now() - started >= 4_500, 'gave up before the timeout')
    assert.equal(jwks.hits, 1)
  })
})
