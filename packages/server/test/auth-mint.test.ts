import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { createJwtVerifier } from '../src/auth/jwt.js'
import { mintToken } from '../src/auth/mint.js'

const secret = 'mint-test-secret-0123456789abcdef'

describe('mintToken', () => {
  it('round-trips through the verifier with info and channels', async () => {
    const verify = createJwtVerifier({ secret })
    const token = await mintToken({ secret, sub: 'alice', ttl: '30m', info: { name: 'Alice' }, channels: ['news'] })
    const before = Date.now()
    const result = await verify(token)
    assert.equal(result.user, 'alice')
    assert.deepEqual(result.info, { name: 'Alice' })
    assert.deepEqual(result.channels, ['news'])
    assert.ok(result.expiresAt !== undefined)
    // exp is whole seconds after iat, and iat was floored: allow one second either way.
    assert.ok(Math.abs(result.expiresAt - (before + 30 * 60_000)) <= 2_000, `expiresAt ${result.expiresAt}`)
  })

  it('signs HS256 with iat and exp = iat + ttl', async () => {
    const token = await mintToken({ secret, sub: 'bob', ttl: 90 })
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' })
    const claims = decodeJwt(token)
    assert.equal(claims.sub, 'bob')
    assert.equal(typeof claims.iat, 'number')
    assert.equal(claims.exp, claims.iat! + 90)
    assert.equal('info' in claims, false)
    assert.equal('channels' in claims, false)
  })

  const ttls: Array<[string | number | undefined, number]> = [
    [undefined, 3600],
    [1, 1],
    [59.6, 60],
    ['45', 45],
    ['45s', 45],
    ['2 minutes', 120],
    ['1h', 3600],
    ['1.5h', 5400],
    ['7d', 604_800],
    ['2w', 1_209_600],
    ['1H', 3600],
  ]
  for (const [ttl, seconds] of ttls) {
    it(`reads ttl ${JSON.stringify(ttl)} as ${seconds} s`, async () => {
      const claims = decodeJwt(await mintToken(ttl === undefined ? { secret, sub: 'x' } : { secret, sub: 'x', ttl }))
      assert.equal(claims.exp! - claims.iat!, seconds)
    })
  }

  it('refuses a ttl that is not a positive duration', async () => {
    for (const ttl of [0, -5, 0.2, Number.NaN, Number.POSITIVE_INFINITY, '', 'abc', '-1h', '1h ago', '1 fortnight', '1y']) {
      await assert.rejects(mintToken({ secret, sub: 'x', ttl }), (err: unknown) => err instanceof TypeError && err.message.includes('"ttl"'), `ttl ${String(ttl)}`)
    }
  })

  it('refuses a bad secret, sub or channels', async () => {
    await assert.rejects(mintToken({ secret: '', sub: 'x' }), /"secret"/)
    await assert.rejects(mintToken({ secret: new Uint8Array(0), sub: 'x' }), /"secret"/)
    await assert.rejects(mintToken({ secret, sub: 5 as unknown as string }), /"sub"/)
    await assert.rejects(mintToken({ secret, sub: 'x', channels: 'news' as unknown as string[] }), /"channels"/)
    await assert.rejects(mintToken({ secret, sub: 'x', channels: [1 as unknown as string] }), /"channels"/)
  })

  it('makes tokens that another secret does not accept', async () => {
    const token = await mintToken({ secret, sub: 'x' })
    await assert.rejects(createJwtVerifier({ secret: `${secret}-other` })(token), (err: unknown) => err instanceof HoldfastError && err.code === 'unauthorized')
  })

  it('mints an anonymous-by-token user with an empty sub', async () => {
    const token = await mintToken({ secret: new TextEncoder().encode(secret), sub: '' })
    assert.deepEqual(Object.keys(await createJwtVerifier({ secret })(token)).sort(), ['expiresAt', 'user'])
    assert.equal((await createJwtVerifier({ secret })(token)).user, '')
  })
})
