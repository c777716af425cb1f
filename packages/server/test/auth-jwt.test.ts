import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { SignJWT, base64url, errors, exportPKCS8, exportSPKI, generateKeyPair, importPKCS8, type CryptoKey, type JWTPayload } from 'jose'
import { createJwtVerifier } from '../src/auth/jwt.js'

const SECRET = 'a-test-secret-that-is-long-enough-for-hs512-0123456789abcdef'
const now = (): number => Math.floor(Date.now() / 1000)

interface Times {
  iat?: number
  exp?: number
  nbf?: number
}

async function sign(alg: string, key: CryptoKey | Uint8Array, claims: JWTPayload, times: Times = {}, kid?: string): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
  jwt.setIssuedAt(times.iat ?? now())
  if (times.exp !== undefined) jwt.setExpirationTime(times.exp)
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

  it('imports the secret once per algorithm, not once per token', async (t) => {
    const verify = createJwtVerifier({ secret: SECRET })
    const tokens = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => hs({ sub })))
    const importKey = t.mock.method(crypto.subtle, 'importKey')
    for (const token of tokens) await verify(token)
    await Promise.all(tokens.map(verify))
    assert.equal(importKey.mock.callCount(), 1)
    // Another algorithm of the family needs its own key (the hash is part of an HMAC CryptoKey).
    const hs512 = await hs({ sub: 'e' }, { exp: now() + 60 }, 'HS512')
    const before = importKey.mock.callCount()
    assert.deepEqual(await verify(hs512), { user: 'e', expiresAt: (now() + 60) * 1000 })
    await verify(hs512)
    assert.equal(importKey.mock.callCount() - before, 1)
  })

  it('accepts a Uint8Array secret', async () => {
    const secret = new Uint8Array(32).fill(7)
    const verify = createJwtVerifier({ secret })
    const token = await sign('HS256', secret, { sub: 'bob' })
    assert.deepEqual(await verify(token), { user: 'bob' })
  })

  it('keeps its own copy of a Uint8Array secret', async () => {
    const secret = new Uint8Array(32).fill(7)
    const verify = createJwtVerifier({ secret })
    const token = await sign('HS256', new Uint8Array(32).fill(7), { sub: 'bob' })
    secret.fill(0)
    assert.equal((await verify(token)).user, 'bob')
  })

  it('leaves out expiresAt, info and channels when the claims are absent', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    assert.deepEqual(await verify(await hs({ sub: 'carol' }, {})), { user: 'carol' })
  })

  it('accepts an empty sub as an anonymous user', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    assert.deepEqual(await verify(await hs({ sub: '' }, {})), { user: '' })
  })

  it('rejects a token signed with another secret', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { exp: now() + 60 }, 'HS256', 'some-other-secret-of-a-similar-length-0123456789')
    const err = await rejects(verify(token), 'unauthorized', token)
    assert.equal(err.message, 'token signature is invalid')
    assert.ok(err.cause instanceof errors.JWSSignatureVerificationFailed)
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
  it('reports an expired token as token_expired, with the jose error as cause', async () => {
    const verify = createJwtVerifier({ secret: SECRET })
    const token = await hs({ sub: 'alice' }, { iat: now() - 7200, exp: now() - 3600 })
    const err = await rejects(verify(token), 'token_expired', token)
    assert.equal(err.message, 'token expired')
    assert.ok(err.cause instanceof errors.JWTExpired)
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
    const token = await hs({ sub: 'a', exp: 'tomorrow' } as unknown as JWTPayload, {})
    await rejects(verify(token), 'unauthorized', token)
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

  it('rejects an HS256 token made with the public key as secret against an RSA verifier (alg confusion)', async () => {
    const { publicKey } = await generateKeyPair('RS256')
    const pem = await exportSPKI(publicKey)
    const verify = createJwtVerifier({ publicKey: pem })
    const token = await sign('HS256', new TextEncoder().encode(pem), { sub: 'admin' })
    const err = await rejects(verify(token), 'unauthorized', token)
    assert.equal(err.message, 'token algorithm is not allowed')
  })

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

  it('imports the PEM once per algorithm, not once per token', async (t) => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
    const verify = createJwtVerifier({ publicKey: await exportSPKI(publicKey) })
    const importKey = t.mock.method(crypto.subtle, 'importKey')
    const tokens = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => sign('RS256', privateKey, { sub })))
    const before = importKey.mock.callCount()
    for (const token of tokens) await verify(token)
    await Promise.all(tokens.map(verify))
    assert.equal(importKey.mock.callCount() - before, 1)
    const ps = await sign('PS256', await importPKCS8(await exportPKCS8(privateKey), 'PS256'), { sub: 'p' })
    const beforePs = importKey.mock.callCount()
    await verify(ps)
    await verify(ps)
    // importPKCS8 above is counted before `beforePs`; the PS256 verification adds exactly one import.
    assert.equal(importKey.mock.callCount() - beforePs, 1)
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
