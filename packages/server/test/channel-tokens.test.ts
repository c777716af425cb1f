import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import { HoldfastClient } from '@holdfast/client'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { TestBackend } from './backend-helpers.js'
import { serverPerTest, waitFor } from './helpers.js'

const SECRET = 'channel-token-secret-0123456789abcdef'
const key = new TextEncoder().encode(SECRET)

function token(claims: Record<string, unknown>, expInSec: number): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + expInSec).sign(key)
}

interface Reply {
  result?: Record<string, unknown>
  error?: { code: number; message: string }
}

describe('channel tokens', () => {
  // Clients may not subscribe to "vip:" on their own; a channel token lets one in.
  const CHANNELS = { namespaces: { vip: { allowSubscribe: false, presence: true } } }
  const fx = serverPerTest()
  const start = (o: Parameters<typeof fx.start>[0] = { jwt: { secret: SECRET } }) => fx.start({ channels: CHANNELS, ...o })

  async function alice(s: { url: string }) {
    const c = fx.client(s.url)
    await c.connect({ token: await token({ sub: 'alice' }, 600) })
    return c
  }

  it('admit where the rules refuse; the token must name the user and the channel and not be expired', async () => {
    const s = await start()
    const c = await alice(s)
    const plain = (await c.request({ type: 'subscribe', channel: 'vip:lounge' })) as Reply
    assert.equal(plain.error?.code, ErrorCodes.permission_denied.code)
    const ok = (await c.request({ type: 'subscribe', channel: 'vip:lounge', token: await token({ sub: 'alice', channel: 'vip:lounge', info: { seat: 7 } }, 600) })) as Reply
    assert.equal(ok.error, undefined)
    assert.ok(typeof ok.result?.['expiresIn'] === 'number' && ok.result['expiresIn'] > 590_000)
    // The token's info is this subscription's presence info.
    assert.deepEqual(Object.values(await s.gw.presence('vip:lounge')).map((p) => p.info), [{ seat: 7 }])
    const other = (await c.request({ type: 'subscribe', channel: 'vip:other', token: await token({ sub: 'alice', channel: 'vip:lounge' }, 600) })) as Reply
    assert.equal(other.error?.code, ErrorCodes.permission_denied.code)
    const stolen = (await c.request({ type: 'subscribe', channel: 'vip:other', token: await token({ sub: 'bob', channel: 'vip:other' }, 600) })) as Reply
    assert.equal(stolen.error?.code, ErrorCodes.permission_denied.code)
    const expired = (await c.request({ type: 'subscribe', channel: 'vip:other', token: await token({ sub: 'alice', channel: 'vip:other' }, -60) })) as Reply
    assert.equal(expired.error?.code, ErrorCodes.token_expired.code)
    const forged = (await c.request({ type: 'subscribe', channel: 'vip:other', token: 'e30.e30.bad' })) as Reply
    assert.equal(forged.error?.code, ErrorCodes.unauthorized.code)
  })

  it('the subscription ends at the expiry with token_expired, unless sub_refresh moved it', async () => {
    const s = await start()
    const c = await alice(s)
    await c.call({ type: 'subscribe', channel: 'vip:a', token: await token({ sub: 'alice', channel: 'vip:a' }, 1) })
    await c.call({ type: 'subscribe', channel: 'vip:b', token: await token({ sub: 'alice', channel: 'vip:b' }, 1) })
    const refreshed = await c.call<{ expiresIn: number }>({ type: 'sub_refresh', channel: 'vip:b', token: await token({ sub: 'alice', channel: 'vip:b' }, 600) })
    assert.ok(refreshed.expiresIn > 590_000)
    await c.until(() => c.pushes.some((p) => p.type === 'unsubscribe' && p.channel === 'vip:a'), 4000, 'vip:a to end')
    const end = c.pushes.find((p) => p.type === 'unsubscribe')
    assert.equal(end?.type === 'unsubscribe' ? end.code : 0, CloseCodes.token_expired.code)
    assert.equal(c.pushes.filter((p) => p.type === 'unsubscribe').length, 1, 'vip:b stays')
    assert.equal(s.gw.hub.subscriberCount('vip:b'), 1)
    const wrong = (await c.request({ type: 'sub_refresh', channel: 'vip:b', token: await token({ sub: 'alice', channel: 'vip:a' }, 600) })) as Reply
    assert.equal(wrong.error?.code, ErrorCodes.permission_denied.code)
    const gone = (await c.request({ type: 'sub_refresh', channel: 'vip:a', token: await token({ sub: 'alice', channel: 'vip:a' }, 600) })) as Reply
    assert.equal(gone.error?.code, ErrorCodes.not_subscribed.code)
  })

  it('the SDK asks getSubscriptionToken(channel) and refreshes before exp, so the subscription outlives its first token', async () => {
    const s = await start()
    const asked: string[] = []
    const client = new HoldfastClient(s.url, {
      WebSocket,
      token: await token({ sub: 'alice' }, 600),
      getSubscriptionToken: async (channel) => {
        asked.push(channel)
        return channel.startsWith('vip:') ? token({ sub: 'alice', channel }, 2) : undefined
      },
    })
    client.on('error', () => {})
    try {
      client.connect()
      const sub = client.subscribe('vip:sdk')
      const ended: number[] = []
      sub.on('unsubscribed', (e) => ended.push(e.code))
      const open = client.subscribe('open')
      await waitFor(() => sub.state === 'subscribed' && open.state === 'subscribed', 5000, 'subscribed')
      // Two refreshes (at 80% of each 2 s token) carry it past the first token's expiry.
      await waitFor(() => asked.filter((c) => c === 'vip:sdk').length >= 3, 6000, 'two refreshes')
      assert.equal(sub.state, 'subscribed')
      assert.deepEqual(ended, [])
      assert.deepEqual(asked.filter((c) => c === 'open'), ['open'], 'asked once for a channel that needs none')
      await s.gw.publish('vip:sdk', 'still here')
      await new Promise<void>((resolve) => sub.once('publication', () => resolve()))
    } finally {
      client.close()
    }
  })

  it('without a key, channel tokens are refused; a backend proxy is not asked for a token subscription', async () => {
    const s = await start({})
    const c = fx.client(s.url)
    await c.connect()
    const r = (await c.request({ type: 'subscribe', channel: 'vip:x', token: 'x' })) as Reply
    assert.equal(r.error?.code, ErrorCodes.unauthorized.code)
    const backend = await new TestBackend().start()
    try {
      backend.handlers['/subscribe'] = () => ({ error: { code: ErrorCodes.permission_denied.code, message: 'no' } })
      const p = await start({ channelTokens: { secret: SECRET }, proxy: { url: backend.url, connect: false } })
      const d = fx.client(p.url)
      await d.connect()
      // Anonymous user "": a token for sub "" admits it.
      await d.call({ type: 'subscribe', channel: 'room', token: await token({ sub: '', channel: 'room' }, 60) })
      assert.equal(backend.callsTo('/subscribe').length, 0)
      const refused = (await d.request({ type: 'subscribe', channel: 'room2' })) as Reply
      assert.equal(refused.error?.code, ErrorCodes.permission_denied.code)
    } finally {
      await backend.stop()
    }
  })
})
