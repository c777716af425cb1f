// Connection tokens over a connection's life (docs/protocol.md, `refresh`; docs/security.md):
// a refresh with another user's valid token is refused with an `unauthorized` reply and changes
// nothing; a token that is not refreshed closes the connection at its `exp` plus the verifier's
// clock tolerance, not before.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import { SignJWT } from 'jose'
import { mintToken } from '../src/auth/mint.js'
import { expectClosedWith, serverPerTest } from './helpers.js'

const SECRET = 'token-refresh-test-secret-0123456789'
const nowSec = (): number => Math.floor(Date.now() / 1000)

function signed(sub: string, exp: number): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub).setIssuedAt(nowSec() - 10).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
}

describe('token refresh and expiry', () => {
  const { client, start } = serverPerTest()

  it("refresh with another user's valid token: an unauthorized reply; identity and expiry unchanged", async () => {
    const s = await start({ jwt: { secret: SECRET, clockToleranceSec: 0 } })
    const c = client(s.url)
    const exp = nowSec() + 2
    const r = await c.connect({ token: await signed('alice', exp) })
    const reply = (await c.request({ type: 'refresh', token: await mintToken({ secret: SECRET, sub: 'bob', ttl: '1h' }) })) as { error?: { code: number; temporary: boolean } }
    assert.equal(reply.error?.code, ErrorCodes.unauthorized.code)
    assert.equal(reply.error?.temporary, false)
    assert.equal([...s.gw.connections].find((x) => x.id === r.client)?.user, 'alice')
    assert.deepEqual(await c.call({ type: 'ping' }), {})
    // Bob's hour did not become alice's: her own token still ends the connection.
    await expectClosedWith(c, CloseCodes.token_expired.code, { ms: 6000 })
    assert.ok(Date.now() >= exp * 1000, 'closed before the token expired')
  })

  it('without a refresh, the connection closes at exp plus the clock tolerance, not before', async () => {
    const s = await start({ jwt: { secret: SECRET, clockToleranceSec: 1 } })
    const c = client(s.url)
    const exp = nowSec() + 1
    await c.connect({ token: await signed('carol', exp) })
    await expectClosedWith(c, CloseCodes.token_expired.code, { ms: 8000 })
    const late = Date.now() - (exp + 1) * 1000
    assert.ok(late >= 0, `closed ${-late} ms before exp + tolerance`)
    // One heartbeat tick (250 ms) after the deadline, plus room for a loaded machine.
    assert.ok(late < 2000, `closed ${late} ms after exp + tolerance`)
  })
})
