/** Session resume tokens: bound to session and user, rotated at every connect, valid for sessionMaxAgeMs. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SessionSigner } from '../src/session.js'
import { serverPerTest } from './helpers.js'

const SECRET = 'a-session-secret-of-enough-length'
const HOUR = 3_600_000

describe('session resume tokens', () => {
  it('verify: same session and user within the age; not another user, session, secret, or an aged token', () => {
    let now = 1_700_000_000_000
    const signer = new SessionSigner(SECRET, 24 * HOUR, () => now)
    const { id, token } = signer.issue('alice')
    assert.equal(signer.verify(id, 'alice', token), true)
    assert.equal(signer.verify(id, 'bob', token), false)
    assert.equal(signer.verify(`${id}x`, 'alice', token), false)
    assert.equal(new SessionSigner(`${SECRET}!`, 24 * HOUR, () => now).verify(id, 'alice', token), false)
    now += 24 * HOUR
    assert.equal(signer.verify(id, 'alice', token), true, 'valid up to its age')
    now += 1000
    assert.equal(signer.verify(id, 'alice', token), false, 'aged out')
  })

  it('verify: a token with its issue time changed, from the future, or malformed is refused', () => {
    let now = 1_700_000_000_000
    const signer = new SessionSigner(SECRET, 24 * HOUR, () => now)
    const { id, token } = signer.issue('alice')
    const [issued, mac] = token.split('.') as [string, string]
    const later = (Number.parseInt(issued, 36) + 3600).toString(36)
    now += 20 * HOUR
    assert.equal(signer.verify(id, 'alice', `${later}.${mac}`), false, 'the issue time is under the MAC')
    now -= 20 * HOUR
    const future = new SessionSigner(SECRET, 24 * HOUR, () => now + HOUR).sign(id, 'alice')
    assert.equal(signer.verify(id, 'alice', future), false, 'issued an hour ahead of this clock')
    for (const bad of ['', '.', mac, `${issued}.`, `-1.${mac}`, `zzzzzzzzzzzzz.${mac}`, `${issued}.${mac}x`]) {
      assert.equal(signer.verify(id, 'alice', bad), false, bad)
    }
  })

  describe('at connect', () => {
    const fx = serverPerTest({ sessionSecret: SECRET })
    it('a resume gets a fresh token for the same session; the fresh token resumes it again', async () => {
      const { url } = await fx.start()
      const a = fx.client(url)
      const first = await a.connect()
      a.close()
      await a.waitClosed()
      // Tokens carry their issue time to the second: make the next one differ.
      await new Promise((r) => setTimeout(r, 1100))
      const b = fx.client(url)
      const second = await b.connect({ session: first.session })
      assert.equal(second.resumed, true)
      assert.equal(second.session.id, first.session.id)
      assert.notEqual(second.session.token, first.session.token, 'rotated')
      b.close()
      await b.waitClosed()
      const c = fx.client(url)
      const third = await c.connect({ session: second.session })
      assert.deepEqual([third.resumed, third.session.id], [true, first.session.id])
    })

    it('a token past sessionMaxAgeMs starts a new session', async () => {
      const { url } = await fx.start({ sessionMaxAgeMs: 1000 })
      const a = fx.client(url)
      const first = await a.connect()
      a.close()
      await new Promise((r) => setTimeout(r, 2100))
      const b = fx.client(url)
      const second = await b.connect({ session: first.session })
      assert.equal(second.resumed, false)
      assert.notEqual(second.session.id, first.session.id)
    })
  })
})
