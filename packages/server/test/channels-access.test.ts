import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes, HoldfastError, type Push } from '@holdfast/protocol'
import type { ChannelHookContext, HoldfastOptions, PublishHookContext } from '../src/options.js'
import { RawClient, expectClosedWith, waitFor, serverPerTest } from './helpers.js'

interface Reply {
  id: number
  result?: Record<string, unknown>
  error?: { code: number; message: string; temporary: boolean }
}

type PushOf<T extends Push['type']> = Extract<Push, { type: T }>

function pushesOf<T extends Push['type']>(c: RawClient, type: T, channel?: string): Array<PushOf<T>> {
  return c.pushes.filter((p): p is PushOf<T> => p.type === type && (channel === undefined || (p as { channel?: string }).channel === channel))
}

/** The token is the user name. */
const tokenIsUser: HoldfastOptions['authenticate'] = ({ token }) => ({ user: token ?? '', info: { name: (token ?? '').toUpperCase() } })

const NAMESPACES: NonNullable<HoldfastOptions['channels']>['namespaces'] = {
  news: { allowPublish: false },
  notify: { allowSubscribe: false },
  room: { presence: true, joinLeave: true },
  quiet: { presence: true },
  sealed: { presence: true, allowPresence: false, allowHistory: false },
}

describe('channel access', () => {
  const fx = serverPerTest({ authenticate: tokenIsUser, channels: { namespaces: NAMESPACES } })
  const start = fx.start
  async function as(user: string): Promise<RawClient & { clientId: string }> {
    const c = fx.client(fx.server.url)
    const r = await c.connect({ token: user })
    return Object.assign(c, { clientId: r.client })
  }
  async function errorCode(c: RawClient, cmd: Record<string, unknown> & { type: string }): Promise<number | undefined> {
    return ((await c.request(cmd)) as Reply).error?.code
  }

  describe('user-limited channels', () => {
    it('only the listed users may subscribe, publish, read presence or history', async () => {
      await start()
      const alice = await as('alice')
      const bob = await as('bob')
      const carol = await as('carol')
      const anon = await as('')
      const ch = 'dialog#alice,bob'
      await alice.call({ type: 'subscribe', channel: ch })
      for (const c of [carol, anon]) {
        assert.equal(await errorCode(c, { type: 'subscribe', channel: ch }), ErrorCodes.permission_denied.code)
        assert.equal(await errorCode(c, { type: 'publish', channel: ch, data: 'psst', msgId: 'c1' }), ErrorCodes.permission_denied.code)
        assert.equal(await errorCode(c, { type: 'history', channel: ch }), ErrorCodes.permission_denied.code)
      }
      // A user whose name is a prefix or a part of a listed one is not listed.
      const al = await as('al')
      assert.equal(await errorCode(al, { type: 'subscribe', channel: ch }), ErrorCodes.permission_denied.code)
      await bob.call({ type: 'publish', channel: ch, data: 'hi alice', msgId: 'b1' })
      await alice.until(() => alice.pubs(ch).length === 1)
      assert.equal(alice.pubs(ch)[0]?.data, 'hi alice')
      assert.equal((await fx.server.gw.history(ch)).publications.length, 1, "carol's publish was not stored")
      assert.equal(fx.server.gw.hub.subscriberCount(ch), 1)
      assert.equal(carol.closed, undefined, 'a refusal is a reply, not a close')
    })

    it('a user-limited channel inside a presence namespace hides presence from others', async () => {
      await start()
      const alice = await as('alice')
      const carol = await as('carol')
      await alice.call({ type: 'subscribe', channel: 'room:dm#alice,bob' })
      assert.equal(await errorCode(carol, { type: 'presence', channel: 'room:dm#alice,bob' }), ErrorCodes.permission_denied.code)
      assert.equal(await errorCode(carol, { type: 'presence_stats', channel: 'room:dm#alice,bob' }), ErrorCodes.permission_denied.code)
      const p = await alice.call<{ clients: Record<string, { user: string }> }>({ type: 'presence', channel: 'room:dm#alice,bob' })
      assert.deepEqual(Object.values(p.clients).map((i) => i.user), ['alice'])
    })
  })

  describe('namespaces', () => {
    it('allowPublish: false refuses client publishes with 108; the server API still publishes', async () => {
      await start()
      const c = await as('alice')
      await c.call({ type: 'subscribe', channel: 'news:today' })
      assert.equal(await errorCode(c, { type: 'publish', channel: 'news:today', data: 'fake', msgId: 'n1' }), ErrorCodes.not_available.code)
      await fx.server.gw.publish('news:today', 'real')
      await c.until(() => c.pubs('news:today').length === 1)
      assert.deepEqual(c.pubs('news:today').map((p) => [p.offset, p.data]), [[1, 'real']])
      // The namespace is the part before the first colon: `newsletter:x` is not `news`.
      await c.call({ type: 'publish', channel: 'newsletter:x', data: 1, msgId: 'n2' })
    })

    it('allowSubscribe: false refuses client subscribes with 103; allowPresence/allowHistory: false give 108', async () => {
      await start()
      const c = await as('alice')
      assert.equal(await errorCode(c, { type: 'subscribe', channel: 'notify:alice' }), ErrorCodes.permission_denied.code)
      await c.call({ type: 'subscribe', channel: 'sealed:x' })
      assert.equal(await errorCode(c, { type: 'presence', channel: 'sealed:x' }), ErrorCodes.not_available.code)
      assert.equal(await errorCode(c, { type: 'presence_stats', channel: 'sealed:x' }), ErrorCodes.not_available.code)
      assert.equal(await errorCode(c, { type: 'history', channel: 'sealed:x' }), ErrorCodes.not_available.code)
      // Presence is off by default.
      await c.call({ type: 'subscribe', channel: 'plain' })
      assert.equal(await errorCode(c, { type: 'presence', channel: 'plain' }), ErrorCodes.not_available.code)
    })

    it('presence lists subscribers; join on subscribe, leave on unsubscribe and on disconnect', async () => {
      await start()
      const alice = await as('alice')
      const bob = await as('bob')
      const ch = 'room:1'
      await alice.call({ type: 'subscribe', channel: ch })
      await bob.call({ type: 'subscribe', channel: ch })
      await alice.until(() => pushesOf(alice, 'join', ch).some((j) => j.info.user === 'bob'), 2000, "bob's join")
      const join = pushesOf(alice, 'join', ch).find((j) => j.info.user === 'bob')
      assert.deepEqual(join?.info, { client: bob.clientId, user: 'bob', info: { name: 'BOB' } })

      const p = await alice.call<{ clients: Record<string, { client: string; user: string }> }>({ type: 'presence', channel: ch })
      assert.deepEqual(Object.keys(p.clients).sort(), [alice.clientId, bob.clientId].sort())
      assert.equal(p.clients[bob.clientId]?.user, 'bob')
      assert.deepEqual(await alice.call({ type: 'presence_stats', channel: ch }), { clients: 2, users: 2 })
      // A second connection of the same user: one more client, not one more user.
      const alice2 = await as('alice')
      await alice2.call({ type: 'subscribe', channel: ch })
      assert.deepEqual(await bob.call({ type: 'presence_stats', channel: ch }), { clients: 3, users: 2 })

      await bob.call({ type: 'unsubscribe', channel: ch })
      await alice.until(() => pushesOf(alice, 'leave', ch).length === 1, 2000, "bob's leave")
      assert.equal(pushesOf(alice, 'leave', ch)[0]?.info.client, bob.clientId)
      assert.deepEqual(await alice.call({ type: 'presence_stats', channel: ch }), { clients: 2, users: 1 })
      assert.equal(pushesOf(bob, 'leave', ch).length, 0, 'an unsubscribed client gets no more pushes for the channel')

      await bob.call({ type: 'subscribe', channel: ch })
      await alice.until(() => pushesOf(alice, 'join', ch).filter((j) => j.info.user === 'bob').length === 2)
      bob.close() // abrupt: no closing handshake
      await alice.until(() => pushesOf(alice, 'leave', ch).length === 2, 2000, "bob's leave on disconnect")
      const p2 = await alice.call<{ clients: Record<string, unknown> }>({ type: 'presence', channel: ch })
      assert.deepEqual(Object.keys(p2.clients).sort(), [alice.clientId, alice2.clientId].sort())
    })

    it('presence without joinLeave sends no join/leave pushes', async () => {
      await start()
      const alice = await as('alice')
      const bob = await as('bob')
      await alice.call({ type: 'subscribe', channel: 'quiet:1' })
      await bob.call({ type: 'subscribe', channel: 'quiet:1' })
      await bob.call({ type: 'unsubscribe', channel: 'quiet:1' })
      await fx.server.gw.publish('quiet:1', 'marker')
      await alice.until(() => alice.pubs('quiet:1').length === 1)
      assert.equal(pushesOf(alice, 'join').length + pushesOf(alice, 'leave').length, 0)
      assert.deepEqual(await alice.call({ type: 'presence_stats', channel: 'quiet:1' }), { clients: 1, users: 1 })
    })
  })

  describe('canSubscribe / canPublish hooks', () => {
    it('false refuses with 103; a HoldfastError passes through; a plain Error is 100', async () => {
      const subCalls: ChannelHookContext[] = []
      const pubCalls: PublishHookContext[] = []
      await start({
        canSubscribe: async (ctx) => {
          subCalls.push(ctx)
          if (ctx.channel === 'boom') throw new Error('hook bug')
          if (ctx.channel === 'later') throw new HoldfastError('not_available', 'come back later')
          return !ctx.channel.startsWith('vip') || ctx.client.user === 'alice'
        },
        canPublish: (ctx) => {
          pubCalls.push(ctx)
          return ctx.data !== 'badword'
        },
      })
      const alice = await as('alice')
      const bob = await as('bob')
      await alice.call({ type: 'subscribe', channel: 'vip' })
      assert.equal(await errorCode(bob, { type: 'subscribe', channel: 'vip' }), ErrorCodes.permission_denied.code)
      assert.equal(await errorCode(bob, { type: 'subscribe', channel: 'later' }), ErrorCodes.not_available.code)
      assert.equal(await errorCode(bob, { type: 'subscribe', channel: 'boom' }), ErrorCodes.internal.code)
      assert.equal(fx.server.gw.hub.subscriberCount('vip'), 1, "bob's refused subscription left nothing")
      assert.deepEqual(
        subCalls.map((c) => [c.client.user, c.channel]),
        [['alice', 'vip'], ['bob', 'vip'], ['bob', 'later'], ['bob', 'boom']],
      )
      assert.equal(subCalls[0]?.client.client, alice.clientId)
      assert.equal(subCalls[0]?.client.ip, '127.0.0.1')

      assert.equal(await errorCode(bob, { type: 'publish', channel: 'vip', data: 'badword', msgId: 'p1' }), ErrorCodes.permission_denied.code)
      await bob.call({ type: 'publish', channel: 'vip', data: 'fine', msgId: 'p2' })
      await alice.until(() => alice.pubs('vip').length === 1)
      assert.deepEqual(alice.pubs('vip').map((p) => p.data), ['fine'])
      assert.deepEqual(pubCalls.map((c) => [c.client.user, c.channel, c.data]), [['bob', 'vip', 'badword'], ['bob', 'vip', 'fine']])
      // A refused publish does not reserve its msgId.
      await bob.call({ type: 'publish', channel: 'vip', data: 'clean now', msgId: 'p1' })
      await alice.until(() => alice.pubs('vip').length === 2)
    })
  })

  describe('server-side subscriptions and disconnects', () => {
    it('subscribeUser sends a subscribe push to every connection of the user, then publications; unsubscribeUser ends it', async () => {
      await start()
      const a1 = await as('alice')
      const a2 = await as('alice')
      const bob = await as('bob')
      // A namespace clients cannot subscribe to by themselves: the usual home of server-side subscriptions.
      for (const ch of ['alerts', 'notify:alice']) {
        await fx.server.gw.publish(ch, 'before')
        await fx.server.gw.subscribeUser('alice', ch)
        for (const c of [a1, a2]) {
          await c.until(() => pushesOf(c, 'subscribe', ch).length === 1, 2000, `subscribe push for ${ch}`)
          const push = pushesOf(c, 'subscribe', ch)[0]
          assert.equal(push?.offset, 1, 'the push carries the stream position to recover from later')
          assert.equal(typeof push?.epoch, 'string')
        }
        await fx.server.gw.publish(ch, 'after')
        for (const c of [a1, a2]) {
          await c.until(() => c.pubs(ch).length === 1)
          assert.deepEqual(c.pubs(ch).map((p) => [p.offset, p.data]), [[2, 'after']])
        }
        assert.equal(pushesOf(bob, 'subscribe').length, 0)

        await fx.server.gw.unsubscribeUser('alice', ch)
        for (const c of [a1, a2]) {
          await c.until(() => pushesOf(c, 'unsubscribe', ch).length === 1, 2000, `unsubscribe push for ${ch}`)
          assert.equal(pushesOf(c, 'unsubscribe', ch)[0]?.code, CloseCodes.kicked.code)
        }
        assert.equal(fx.server.gw.hub.subscriberCount(ch), 0)
        await fx.server.gw.publish(ch, 'gone')
        await fx.server.gw.publish('marker', 'm')
        // Nothing more for the channel, and subscribing again is possible (the server forgot it).
        await fx.server.gw.subscribeUser('alice', ch)
        await a1.until(() => pushesOf(a1, 'subscribe', ch).length === 2)
        assert.equal(a1.pubs(ch).length, 1)
        await fx.server.gw.unsubscribeUser('alice', ch)
        await a1.until(() => pushesOf(a1, 'unsubscribe', ch).length === 2)
      }
      // A user already subscribed is left alone (no second push, no error).
      await a1.call({ type: 'subscribe', channel: 'mine' })
      await fx.server.gw.subscribeUser('alice', 'mine')
      await a2.until(() => pushesOf(a2, 'subscribe', 'mine').length === 1)
      assert.equal(pushesOf(a1, 'subscribe', 'mine').length, 0)
    })

    it("disconnect({ user }) closes all that user's connections with 4012 and no one else's", async () => {
      await start()
      const a1 = await as('alice')
      const a2 = await as('alice')
      const bob = await as('bob')
      await fx.server.gw.disconnect({ user: 'alice' })
      await expectClosedWith(a1, CloseCodes.kicked.code)
      await expectClosedWith(a2, CloseCodes.kicked.code)
      await bob.call({ type: 'ping' })
      assert.equal(bob.closed, undefined)
      await waitFor(() => fx.server.gw.connectionCount === 1)
    })

    it('disconnect({ client }) closes only that connection, with the code asked for', async () => {
      await start()
      const a1 = await as('alice')
      const a2 = await as('alice')
      await fx.server.gw.disconnect({ client: a1.clientId, code: 'try_later', reason: 'maintenance' })
      const closed = await expectClosedWith(a1, CloseCodes.try_later.code)
      assert.equal(closed.reason, 'maintenance')
      await a2.call({ type: 'ping' })
      assert.equal(a2.closed, undefined)
      await assert.rejects(fx.server.gw.disconnect({}), TypeError)
    })
  })
})
