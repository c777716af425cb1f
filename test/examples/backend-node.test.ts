/**
 * examples/backend-node (Fastify) drives a holdfast gateway through the proxy and webhooks: cookie
 * login, allowed and refused subscriptions, a moderated publish, RPCs, verified webhooks.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { RawClient, serverPerTest } from '../../packages/server/test/helpers.js'
// @ts-expect-error: the example is plain JavaScript without type declarations
import { buildApp } from '../../examples/backend-node/server.mjs'

interface App {
  listen(o: { host: string; port: number }): Promise<string>
  close(): Promise<void>
  server: { address(): AddressInfo }
}

const SECRET = 'node-example-webhook-secret'

describe('examples/backend-node', () => {
  const fx = serverPerTest()

  it('logs in by cookie, enforces the channel rules, moderates, answers RPCs and receives signed webhooks', async (t) => {
    const app = buildApp({ webhookSecret: SECRET }) as App
    await app.listen({ host: '127.0.0.1', port: 0 })
    t.after(() => app.close())
    const base = `http://127.0.0.1:${app.server.address().port}`
    const s = await fx.start({ proxy: { url: `${base}/holdfast` }, webhooks: { url: `${base}/webhooks`, secret: SECRET } })
    const login = async (user: string): Promise<RawClient> => {
      const r = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
      const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
      const c = fx.client(s.url, { headers: { cookie } })
      await c.connect()
      return c
    }
    const alice = await login('alice')
    const carol = await login('carol')
    assert.deepEqual((await alice.call<{ data: { user: string } }>({ type: 'rpc', method: 'whoami', msgId: 'w1' })).data.user, 'alice')
    await alice.call({ type: 'subscribe', channel: 'team:blue' })
    const refused = (await carol.request({ type: 'subscribe', channel: 'team:blue' })) as { error?: { code: number } }
    assert.equal(refused.error?.code, ErrorCodes.permission_denied.code)
    await carol.call({ type: 'publish', channel: 'team:blue', data: { text: 'well darn' }, msgId: 'p1' })
    await alice.until(() => alice.pubs('team:blue').length === 1)
    assert.deepEqual(alice.pubs('team:blue')[0]?.data, { text: 'well d**n', moderated: true })
    assert.deepEqual(await alice.call({ type: 'rpc', method: 'add', data: { a: 1, b: 2 }, msgId: 'a1' }), { data: { sum: 3 } })
    // Without the cookie the backend refuses the connect.
    const stranger = fx.client(s.url)
    await stranger.opened()
    stranger.sendRaw({ type: 'connect', version: 1, id: 1 })
    assert.equal((await stranger.waitClosed()).code, 4009)
    const received = async (): Promise<Array<{ event: string; data: Record<string, unknown> }>> => (await fetch(`${base}/webhooks/received`)).json() as never
    let events: Array<{ event: string; data: Record<string, unknown> }> = []
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      events = await received()
      if (events.some((e) => e.event === 'channel_occupied') && events.filter((e) => e.event === 'connected').length === 2) break
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.deepEqual(events.filter((e) => e.event === 'connected').map((e) => e.data['user']).sort(), ['alice', 'carol'], 'received and verified (a bad signature gets 401)')
    assert.ok(events.some((e) => e.event === 'join' && e.data['channel'] === 'team:blue' && e.data['user'] === 'alice'))
  })
})
