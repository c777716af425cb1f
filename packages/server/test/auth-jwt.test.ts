import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { TokenError } from 'fast-jwt'
import { SignJWT, base64url, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, type CryptoKey, type JWTPayload } from 'jose'
import { createJwtVerifier } from '../src/auth/jwt.js'

const SECRET = 'a-test-secret-that-is-long-enough-for-hs512-0123456789abcdef'
const now = (): number => Math.floor(Date.now() / 1000)

interface Times {
  iat?: number
  /** @default an hour from now; `null` leaves the claim out */
  exp?: number | null
  nbf?: number
}

async function sign(alg: string, key: CryptoKey | Uint8Array, claims: JWTPayload, times: Times = {}, kid?: string): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
  jwt.setIssuedAt(times.iat ?? now())
  if (times.exp !== null) jwt.setExpirationTime(times.exp ?? now() + 3600)
  if (times.nbf !== undefined) jwt.setNotBefore(times.nbf)
  return jwt.sign(key)
}

const hs = (claims: JWTPayload, times: Times = { exp: now() + 3600 }, alg = 'HS256', secret = SECRET): Promise<string> =>
  sign(alg, new TextEncoder().encode(secret), claims, times)

/** Hand-made compact JWS with an arbitrary header, payload and signature. */
function craft(header: object, payload: object, signature = ''): string {
  const enc = (o: object): string => base64url.encode(JSON.stringify(o))
  return `${enc(header)}.${enc(payload)}.${signature}`
}

/**
 * Resolves with how `p` settled, and whether it did so before the next turn of the event loop: a
 * check done synchronously settles in microtasks, before a setImmediate queued now; a WebCrypto
 * verification waits for a threadpool job that is delivered on a later turn.
 */
async function settlesInThisTurn(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  const done = p.then(
    () => (settled = true),
    () => (settled = true),
  )
  const inTurn = await new Promise<boolean>((resolve) => setImmediate(() => resolve(settled)))
  await done
  return inTurn
}

/** The same token with one bit of its signature flipped. */
function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const bytes = base64url.decode(signature)
  bytes[bytes.length >> 1]! ^= 0x01
  return `${header}.${payload}.${base64url.encode(bytes)}`
}

/** Awaits a rejection with a HoldfastError of `code`, checks the token is not echoed, returns the error. */
async function rejects(p: Promise<unknown>, code: 'unauthorized' | 'token_expired', token?: string): Promise<HoldfastError> {
  let caught: unknown
  await p.then(
    (v) => assert.fail(`expected ${code}, resolved with ${JSON.stringify(v)}`),
    (err: unknown) => {
      caught = err
    },
  )
  assert.ok(caught instanceof HoldfastError, `expected a HoldfastError, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  if (token !== undefined && token.length > 0) assert.ok(!caught.message.includes(token), 'the error message contains the token')
  return caught
}

describe('createJwtVerifier: HMAC', () => {
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    it(`accepts a valid ${alg} token and maps its claims`, async () => {
      const exp = now() + 600
      const verify = createJwtVerifier({ secret: SECRET })
      const token = await hs({ sub: 'alice', info: { name: 'Alice' }, channels: ['news', 'user#alice'] }, { exp }, alg)
      assert.deepEqual(await verify(token), {
        user: 'alice',
        expiresAt: exp * 1000,
        info: { name: 'Alice' },
        channels: ['news', 'user#alice'],
      })
    })
  }

  it('checks every token synchronously, without WebCrypto (no threadpool hop per handshake)', async (t) => {
    const verify = createJwtVerifier({ secret: SECRET })
    const tokens = await Promise.all(['HS256', 'HS384', 'HS512'].map((alg, i) => hs({ sub: `u${i}` }, { exp: now() + 60 }, alg)))
    const forged = await hs({ sub: 'x' }, { exp: now() + 60 }, 'HS256', 'some-other-secret-of-a-similar-length-0123456789')
    const importKey = t.mock.method(crypto.subtle, 'importKey')
    const subtleVerify = t.mock.method(crypto.subtle, 'verify')
    for (const [i, token] of tokens.entries()) {
      assert.equal(await settlesInThisTurn(verify(token)), true, `valid token ${i}`)
      assert.equal((await verify(token)).user, `u${i}`)
    }
    assert.equal(await settlesInThisTurn(verify(forged)), true, 'forged token')
    assert.equal(importKey.mock.callCount() + subtleVerify.mock.callCount(), 0)
  })

  it('rejects a token whose signature has one bit flipped, for each HMAC algorithm', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = tamperSignature(await hs({ sub: 'alice' }, { exp: now() + 60 }, alg))
      assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token signature is invalid', alg)
    }
  })

  it('rejects an HS256 token with its signature cut short or missing', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' })
    const [header, payload, signature] = token.split('.') as [string, string, string]
    const short = `${header}.${payload}.${signature.slice(0, 20)}`
    assert.equal((await rejects(verify(short), 'unauthorized', short)).message, 'token signature is invalid')
    const none = `${header}.${payload}.`
    assert.equal((await rejects(verify(none), 'unauthorized', none)).message, 'token signature is missing')
  })

  it('rejects an asymmetric token against a secret, even one "signed" with the secret', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const { privateKey } = await generateKeyPair('RS256')
    const rs = await sign('RS256', privateKey, { sub: 'admin' })
    assert.equal((await rejects(verify(rs), 'unauthorized', rs)).message, 'token algorithm is not allowed')
    // An RS256 header over an HMAC made with the server's own secret: still refused on `alg`.
    const [, payload] = rs.split('.') as [string, string]
    const header = base64url.encode(JSON.stringify({ alg: 'RS256' }))
    const mac = createHmac('sha256', SECRET).update(`${header}.${payload}`).digest('base64url')
    const confused = `${header}.${payload}.${mac}`
    assert.equal((await rejects(verify(confused), 'unauthorized', confused)).message, 'token algorithm is not allowed')
  })

  it('accepts a Uint8Array secret', async () => {
    const secret = new Uint8Array(32).fill(7)
    const verify = createJwtVerifier({ secret })
    const token = await sign('HS256', secret, { sub: 'bob' })
    assert.equal((await verify(token)).user, 'bob')
  })

  it('keeps its own copy of a Uint8Array secret', async () => {
    const secret = new Uint8Array(32).fill(7)
    const verify = createJwtVerifier({ secret })
    const token = await sign('HS256', new Uint8Array(32).fill(7), { sub: 'bob' })
    secret.fill(0)
    assert.equal((await verify(token)).user, 'bob')
  })

  it('refuses a token without exp by default: it could never be revoked by time', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const e = await rejects(verify(await hs({ sub: 'carol' }, { exp: null })), 'unauthorized')
    assert.match(e.message, /no "exp" claim/)
  })

  it('with requireExp: false, accepts a token without exp and leaves out expiresAt, info and channels when the claims are absent', async () => {
    const verify = createJwtVerifier({ secret: SECRET, requireExp: false })
    assert.deepEqual(await verify(await hs({ sub: 'carol' }, { exp: null })), { user: 'carol' })
    assert.throws(() => createJwtVerifier({ secret: SECRET, requireExp: 'no' as unknown as boolean }), /requireExp/)
  })

  it('accepts an empty sub as an anonymous user', async () => {
    const verify = createJwtVerifier({ secret: SECRET, requireExp: false })
    assert.deepEqual(await verify(await hs({ sub: '' }, { exp: null })), { user: '' })
  })

  it('rejects a token signed with another secret', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { exp: now() + 60 }, 'HS256', 'some-other-secret-of-a-similar-length-0123456789')
    const err = await rejects(verify(token), 'unauthorized', token)
    assert.equal(err.message, 'token signature is invalid')
    assert.ok(err.cause instanceof TokenError)
    assert.equal(err.cause.code, TokenError.codes.invalidSignature)
  })

  it('rejects a token whose payload was changed after signing', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' })
    const [header, , signature] = token.split('.')
    const forged = `${header!}.${base64url.encode(JSON.stringify({ sub: 'admin' }))}.${signature!}`
    const err = await rejects(verify(forged), 'unauthorized', forged)
    assert.equal(err.message, 'token signature is invalid')
  })

  it('rejects an HMAC algorithm left out of `algorithms`', async () => {
    const verify = createJwtVerifier({ secret: SECRET, algorithms: ['HS256'] })
    assert.equal((await verify(await hs({ sub: 'a' }, {}, 'HS256'))).user, 'a')
    const token = await hs({ sub: 'a' }, {}, 'HS512')
    const err = await rejects(verify(token), 'unauthorized', token)
    assert.equal(err.message, 'token algorithm is not allowed')
  })
})

describe('createJwtVerifier: time claims', () => {
  it('reports an expired token as token_expired', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { iat: now() - 7200, exp: now() - 3600 })
    const err = await rejects(verify(token), 'token_expired', token)
    assert.equal(err.message, 'token expired')
  })

  it('treats exp as expired from the second it names, less the tolerance', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
    const verify = createJwtVerifier({ secret: SECRET, clockToleranceSec: 0 })
    const token = await hs({ sub: 'a' }, { iat: 1_799_999_000, exp: 1_800_000_001 })
    assert.equal((await verify(token)).user, 'a')
    t.mock.timers.tick(999)
    assert.equal((await verify(token)).user, 'a')
    t.mock.timers.tick(1)
    await rejects(verify(token), 'token_expired', token)
  })

  it('checks audience and issuer before expiry: an expired token for another audience is unauthorized', async () => {
    const verify = createJwtVerifier({ secret: SECRET, audience: 'holdfast' })
    const token = await hs({ sub: 'a', aud: 'other' }, { iat: now() - 7200, exp: now() - 3600 })
    assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token "aud" claim does not match')
  })

  it('rejects a non-numeric iat or nbf as unauthorized', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    for (const claim of ['iat', 'nbf']) {
      // Signed directly: the `hs` helper sets a numeric iat.
      const token = await new SignJWT({ sub: 'a', [claim]: 'yesterday' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET))
      assert.equal((await rejects(verify(token), 'unauthorized', token)).message, `token "${claim}" claim is invalid`)
    }
  })

  it('checks the signature before expiry: a forged expired token is unauthorized, not token_expired', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { iat: now() - 7200, exp: now() - 3600 }, 'HS256', 'not-the-secret-but-just-as-long-0123456789abcdef')
    assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token signature is invalid')
  })

  it('accepts a token expired by less than the default 5 s tolerance', async () => {
    const exp = now() - 2
    const token = await hs({ sub: 'alice' }, { iat: now() - 60, exp })
    assert.equal((await createJwtVerifier({ secret: SECRET })(token)).expiresAt, exp * 1000)
    await rejects(createJwtVerifier({ secret: SECRET, clockToleranceSec: 0 })(token), 'token_expired')
  })

  it('honours a larger clockToleranceSec, and no more', async () => {
    const verify = createJwtVerifier({ secret: SECRET, clockToleranceSec: 30 })
    assert.equal((await verify(await hs({ sub: 'a' }, { exp: now() - 20 }))).user, 'a')
    await rejects(verify(await hs({ sub: 'a' }, { exp: now() - 40 })), 'token_expired')
  })

  it('rejects a token that is not valid yet (nbf), as unauthorized', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { nbf: now() + 120, exp: now() + 3600 })
    const err = await rejects(verify(token), 'unauthorized', token)
    assert.equal(err.message, 'token is not valid yet (nbf)')
  })

  it('accepts an nbf slightly in the future, within the tolerance', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    assert.equal((await verify(await hs({ sub: 'a' }, { nbf: now() + 2, exp: now() + 60 }))).user, 'a')
  })

  it('rejects a non-numeric exp as unauthorized, not as expired', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'a', exp: 'tomorrow' } as unknown as JWTPayload, { exp: null })
    assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token "exp" claim is invalid')
  })
})

describe('createJwtVerifier: unsigned and confused tokens', () => {
  it('rejects alg "none" in any spelling, with or without a signature part', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    for (const alg of ['none', 'None', 'NONE']) {
      for (const sig of ['', 'c2lnbmF0dXJl']) {
        const token = craft({ alg, typ: 'JWT' }, { sub: 'admin', exp: now() + 3600 }, sig)
        await rejects(verify(token), 'unauthorized', token)
      }
    }
  })

  it('rejects alg "none" even against a public-key verifier', async () => {
    const { publicKey } = await generateKeyPair('RS256')
    const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey) })
    const token = craft({ alg: 'none' }, { sub: 'admin' })
    await rejects(verify(token), 'unauthorized', token)
  })

  for (const alg of ['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const) {
    it(`rejects HS tokens made with the ${alg} public key as secret (alg confusion)`, async () => {
      const { publicKey } = await generateKeyPair(alg)
      const pem = await exportSPKI(publicKey)
      const verify = createJwtVerifier({ publicKey: pem })
      // The PEM text, with and without its trailing newline, and the DER bytes behind it.
      const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'))
      for (const secret of [new TextEncoder().encode(pem), new TextEncoder().encode(pem.trim()), der]) {
        for (const hsAlg of ['HS256', 'HS384', 'HS512']) {
          const token = await sign(hsAlg, secret, { sub: 'admin' })
          const err = await rejects(verify(token), 'unauthorized', token)
          assert.equal(err.message, 'token algorithm is not allowed', hsAlg)
        }
      }
    })
  }

  it('rejects a token without an alg header', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = craft({ typ: 'JWT' }, { sub: 'a' }, 'AAAA')
    await rejects(verify(token), 'unauthorized', token)
  })
})

describe('createJwtVerifier: public keys', () => {
  for (const alg of ['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const) {
    it(`accepts a valid ${alg} token and rejects one signed by another key`, async () => {
      const pair = await generateKeyPair(alg)
      const other = await generateKeyPair(alg)
      const verify = createJwtVerifier({ publicKey: await exportSPKI(pair.publicKey) })
      const exp = now() + 300
      const good = await sign(alg, pair.privateKey, { sub: 'dave', channels: [] }, { exp })
      assert.deepEqual(await verify(good), { user: 'dave', expiresAt: exp * 1000, channels: [] })
      const bad = await sign(alg, other.privateKey, { sub: 'dave' }, { exp })
      const err = await rejects(verify(bad), 'unauthorized', bad)
      assert.equal(err.message, 'token signature is invalid')
    })
  }

  it('lets an RSA key verify every RS and PS algorithm by default', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
    const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey) })
    for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']) {
      // WebCrypto binds a key to one algorithm; re-importing lets the same RSA key sign with each.
      const key = await importPKCS8(await exportPKCS8(privateKey), alg)
      assert.equal((await verify(await sign(alg, key, { sub: alg }))).user, alg)
    }
  })

  it('accepts the fully specified Ed25519 algorithm name too', async () => {
    const { publicKey, privateKey } = await generateKeyPair('Ed25519')
    const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey) })
    assert.equal((await verify(await sign('Ed25519', privateKey, { sub: 'e' }))).user, 'e')
  })

  it('rejects an ES384 token against a P-256 key, whatever its signature', async () => {
    const p256 = await generateKeyPair('ES256')
    const p384 = await generateKeyPair('ES384')
    const verify = createJwtVerifier({ publicKey: await exportSPKI(p256.publicKey) })
    const token = await sign('ES384', p384.privateKey, { sub: 'x' })
    assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token algorithm is not allowed')
  })

  for (const alg of ['RS256', 'PS384', 'ES256', 'EdDSA'] as const) {
    it(`checks ${alg} tokens synchronously, without WebCrypto`, async (t) => {
      const { publicKey, privateKey } = await generateKeyPair(alg)
      const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey) })
      const good = await sign(alg, privateKey, { sub: 'a' })
      const bad = tamperSignature(good)
      const importKey = t.mock.method(crypto.subtle, 'importKey')
      const subtleVerify = t.mock.method(crypto.subtle, 'verify')
      assert.equal(await settlesInThisTurn(verify(good)), true)
      assert.equal(await settlesInThisTurn(verify(bad)), true)
      assert.equal((await verify(good)).user, 'a')
      assert.equal(importKey.mock.callCount() + subtleVerify.mock.callCount(), 0)
    })
  }

  it('rejects a token whose signature or payload was changed, for every asymmetric algorithm', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true })
    const rsaVerify = createJwtVerifier({ publicKey: await exportSPKI(rsa.publicKey) })
    const cases: Array<[string, CryptoKey, (token: string) => Promise<unknown>]> = []
    for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']) {
      cases.push([alg, await importPKCS8(await exportPKCS8(rsa.privateKey), alg), rsaVerify])
    }
    for (const alg of ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']) {
      const pair = await generateKeyPair(alg)
      cases.push([alg, pair.privateKey, createJwtVerifier({ publicKey: await exportSPKI(pair.publicKey) })])
    }
    for (const [alg, key, verify] of cases) {
      const token = await sign(alg, key, { sub: 'alice' })
      assert.equal(((await verify(token)) as { user: string }).user, 'alice', alg)
      const flipped = tamperSignature(token)
      assert.equal((await rejects(verify(flipped), 'unauthorized', flipped)).message, 'token signature is invalid', alg)
      const [header, , signature] = token.split('.') as [string, string, string]
      const forged = `${header}.${base64url.encode(JSON.stringify({ sub: 'admin' }))}.${signature}`
      assert.equal((await rejects(verify(forged), 'unauthorized', forged)).message, 'token signature is invalid', alg)
      const cut = `${header}.${token.split('.')[1]!}.${signature.slice(0, 16)}`
      assert.equal((await rejects(verify(cut), 'unauthorized', cut)).message, 'token signature is invalid', alg)
    }
  })

  it('rejects an RS256 signature presented as PS256 and the other way round', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true })
    const verify = createJwtVerifier({ publicKey: await exportSPKI(rsa.publicKey) })
    const rs = await sign('RS256', rsa.privateKey, { sub: 'a' })
    const ps = await sign('PS256', await importPKCS8(await exportPKCS8(rsa.privateKey), 'PS256'), { sub: 'a' })
    const swap = (token: string, alg: string): string => {
      const [, payload, signature] = token.split('.') as [string, string, string]
      return `${base64url.encode(JSON.stringify({ alg }))}.${payload}.${signature}`
    }
    // The header is signed too, so relabelling changes the signed input as well as the scheme.
    for (const token of [swap(rs, 'PS256'), swap(ps, 'RS256')]) {
      assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token signature is invalid')
    }
  })

  it('honours algorithms: ["Ed25519"] alone, refusing the EdDSA name', async () => {
    const { publicKey, privateKey } = await generateKeyPair('Ed25519')
    const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey), algorithms: ['Ed25519'] })
    assert.equal((await verify(await sign('Ed25519', privateKey, { sub: 'e' }))).user, 'e')
    const eddsa = await sign('EdDSA', privateKey, { sub: 'e' })
    assert.equal((await rejects(verify(eddsa), 'unauthorized', eddsa)).message, 'token algorithm is not allowed')
  })

  it('refuses ES256 and PS256 tokens when algorithms allows only RS256 on an RSA key', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true })
    const es = await generateKeyPair('ES256')
    const verify = createJwtVerifier({ publicKey: await exportSPKI(rsa.publicKey), algorithms: ['RS256'] })
    const psKey = await importPKCS8(await exportPKCS8(rsa.privateKey), 'PS256')
    for (const token of [await sign('ES256', es.privateKey, { sub: 'x' }), await sign('PS256', psKey, { sub: 'x' })]) {
      assert.equal((await rejects(verify(token), 'unauthorized', token)).message, 'token algorithm is not allowed')
    }
  })
})

describe('createJwtVerifier: claims', () => {
  it('checks audience and issuer', async () => {
    const verify = createJwtVerifier({ secret: SECRET, audience: 'holdfast', issuer: ['https://id.example.com', 'https://id2.example.com'] })
    const ok = await hs({ sub: 'a', aud: ['other', 'holdfast'], iss: 'https://id2.example.com' })
    assert.equal((await verify(ok)).user, 'a')

    const cases: Array<[JWTPayload, string]> = [
      [{ sub: 'a', aud: 'other', iss: 'https://id.example.com' }, 'token "aud" claim does not match'],
      [{ sub: 'a', iss: 'https://id.example.com' }, 'token has no "aud" claim'],
      [{ sub: 'a', aud: 'holdfast', iss: 'https://evil.example.com' }, 'token "iss" claim does not match'],
      [{ sub: 'a', aud: 'holdfast' }, 'token has no "iss" claim'],
    ]
    for (const [claims, message] of cases) {
      const token = await hs(claims)
      assert.equal((await rejects(verify(token), 'unauthorized', token)).message, message)
    }
  })

  it('requires a string sub', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const missing = await hs({ info: 'x' })
    assert.equal((await rejects(verify(missing), 'unauthorized', missing)).message, 'token has no "sub" claim')
    const numeric = await hs({ sub: 42 } as unknown as JWTPayload)
    assert.equal((await rejects(verify(numeric), 'unauthorized', numeric)).message, 'token "sub" claim must be a string')
  })

  it('rejects a channels claim that is not an array of strings', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    for (const channels of ['news', ['news', 7], { 0: 'news' }, null, [['news']]]) {
      const token = await hs({ sub: 'a', channels })
      const err = await rejects(verify(token), 'unauthorized', token)
      assert.equal(err.message, 'token "channels" claim must be an array of strings')
    }
  })

  it('passes any JSON info through, including falsy values', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    for (const info of [0, false, '', null, [1, 2], { nested: { deep: true } }]) {
      assert.deepEqual((await verify(await hs({ sub: 'a', info }, {}))).info, info)
    }
  })
})

describe('createJwtVerifier: garbage', () => {
  const validHeader = base64url.encode(JSON.stringify({ alg: 'HS256' }))
  const garbage = [
    '',
    'x',
    'not a token',
    'a.b',
    'a.b.c',
    '...',
    'a.b.c.d',
    'a.b.c.d.e',
    `${validHeader}..`,
    `${validHeader}.%%%.AAAA`,
    `${validHeader}.${base64url.encode('not json')}.AAAA`,
    `${validHeader}.${base64url.encode('[1,2]')}.AAAA`,
    `${base64url.encode('not json')}.${base64url.encode('{}')}.AAAA`,
    `${base64url.encode('"HS256"')}.${base64url.encode('{}')}.AAAA`,
    'eyJ'.repeat(10_000),
    '\u0000\u00ff\ud83d\ude00.\n.\t',
  ]
  for (const [i, token] of garbage.entries()) {
    it(`rejects garbage #${i} as unauthorized without echoing it`, async () => {
      await rejects(createJwtVerifier({ secret: SECRET })(token), 'unauthorized', token)
    })
  }

  it('rejects a non-string token', async () => {
    const verify = createJwtVerifier({ secret: SECRET }) as (t: unknown) => Promise<unknown>
    for (const token of [undefined, null, 42, {}]) await rejects(verify(token), 'unauthorized')
  })
})

describe('createJwtVerifier: options', () => {
  const throwsNaming = (fn: () => unknown, name: string): void => {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof TypeError, `expected a TypeError, got ${String(err)}`)
      assert.ok(err.message.includes(name), `"${err.message}" does not name ${name}`)
      return true
    })
  }

  it('needs exactly one key source', async () => {
    const { publicKey } = await generateKeyPair('ES256')
    const pem = await exportSPKI(publicKey)
    throwsNaming(() => createJwtVerifier({}), 'jwt.secret')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, publicKey: pem }), '"jwt.secret" and "jwt.publicKey"')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, jwksUrl: 'https://id.example.com/jwks' }), '"jwt.secret" and "jwt.jwksUrl"')
    throwsNaming(() => createJwtVerifier({ publicKey: pem, jwksUrl: 'https://id.example.com/jwks' }), '"jwt.publicKey" and "jwt.jwksUrl"')
    throwsNaming(() => createJwtVerifier(null as unknown as object), 'jwt')
  })

  it('refuses an empty or mistyped secret', () => {
    throwsNaming(() => createJwtVerifier({ secret: '' }), 'jwt.secret')
    throwsNaming(() => createJwtVerifier({ secret: new Uint8Array(0) }), 'jwt.secret')
    throwsNaming(() => createJwtVerifier({ secret: 12345 as unknown as string }), 'jwt.secret')
  })

  it('refuses a publicKey that is not a usable SPKI public key', async () => {
    throwsNaming(() => createJwtVerifier({ publicKey: 'not a pem' }), 'jwt.publicKey')
    throwsNaming(() => createJwtVerifier({ publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }), 'jwt.publicKey')
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    throwsNaming(() => createJwtVerifier({ publicKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }), 'jwt.publicKey')
    throwsNaming(() => createJwtVerifier({ publicKey: rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string }), 'jwt.publicKey')
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
    throwsNaming(() => createJwtVerifier({ publicKey: small.publicKey.export({ type: 'spki', format: 'pem' }) as string }), 'jwt.publicKey')
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
    throwsNaming(() => createJwtVerifier({ publicKey: k1.publicKey.export({ type: 'spki', format: 'pem' }) as string }), 'jwt.publicKey')
    const x25519 = generateKeyPairSync('x25519')
    throwsNaming(() => createJwtVerifier({ publicKey: x25519.publicKey.export({ type: 'spki', format: 'pem' }) as string }), 'jwt.publicKey')
    // The same 2048-bit key as SPKI is fine: the refusals above are about the form, not the key.
    assert.equal(typeof createJwtVerifier({ publicKey: rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string }), 'function')
  })

  it('refuses a jwksUrl that is not an http(s) URL', () => {
    throwsNaming(() => createJwtVerifier({ jwksUrl: 'not a url' }), 'jwt.jwksUrl')
    throwsNaming(() => createJwtVerifier({ jwksUrl: 'ftp://id.example.com/jwks' }), 'jwt.jwksUrl')
    throwsNaming(() => createJwtVerifier({ jwksUrl: 'file:///etc/jwks.json' }), 'jwt.jwksUrl')
  })

  it('refuses "none" and algorithms outside the key family', async () => {
    const { publicKey } = await generateKeyPair('RS256')
    const pem = await exportSPKI(publicKey)
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: ['none'] }), 'never accepted')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: ['HS256', 'None'] }), 'never accepted')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: ['RS256'] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ publicKey: pem, algorithms: ['HS256'] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ publicKey: pem, algorithms: ['ES256'] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ jwksUrl: 'https://id.example.com/jwks', algorithms: ['HS256'] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: [] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: 'HS256' as unknown as string[] }), 'jwt.algorithms')
    throwsNaming(() => createJwtVerifier({ secret: SECRET, algorithms: ['HS999'] }), 'jwt.algorithms')
    assert.equal(typeof createJwtVerifier({ publicKey: pem, algorithms: ['PS256'] }), 'function')
  })

  it('refuses a bad clockToleranceSec, audience or issuer', () => {
    for (const v of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5']) {
      throwsNaming(() => createJwtVerifier({ secret: SECRET, clockToleranceSec: v as number }), 'jwt.clockToleranceSec')
    }
    for (const v of ['', [], [''], [1]]) {
      throwsNaming(() => createJwtVerifier({ secret: SECRET, audience: v as string[] }), 'jwt.audience')
      throwsNaming(() => createJwtVerifier({ secret: SECRET, issuer: v as string[] }), 'jwt.issuer')
    }
  })
})
