/**
 * Reads (history, presence, presence stats) pass the same authorization as subscribe: a client
 * refused `subscribe private:room` must not read that channel's history or presence either.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import type { HoldfastOptions, ReadHookContext } from '../src/options.js'
import { RawClient, serverPerTest } from './helpers.js'

const tokenIsUser: HoldfastOptions['authenticate'] = ({ token }) => ({ user: token ?? '' })
const READS = ['history', 'presence', 'presence_stats'] as const

describe('read authorization', () => {
  const fx = serverPerTest({
    authenticate: tokenIsUser,
    channels: { namespaces: { private: { presence: true }, inbox: { allowSubscribe: false, presence: true } } },
  })
  async function as(user: string): Promise<RawClient> {
    const c = fx.client(fx.server.url)
    await c.connect({ token: user })
    return c
  }
  async function code(c: RawClient, cmd: Record<string, unknown> & { type: string }): Promise<number | undefined> {
    return ((await c.request(cmd)) as { error?: { code: number } }).error?.code
  }

  it('a channel canSubscribe refuses cannot be read: history, presence and presence stats get 103', async () => {
    await fx.start({ canSubscribe: ({ client, channel }) => !channel.startsWith('private:') || client.user === 'boss' })
    await fx.server.gw.publish('private:room', { secret: 'launch codes' })
    const boss = await as('boss')
    await boss.call({ type: 'subscribe', channel: 'private:room' })
    const carol = await as('carol')
    assert.equal(await code(carol, { type: 'subscribe', channel: 'private:room' }), ErrorCodes.permission_denied.code)
    for (const type of READS) {
      assert.equal(await code(carol, { type, channel: 'private:room' }), ErrorCodes.permission_denied.code, `${type} of a refused channel`)
    }
    // The subscriber and an allowed reader still read it.
    const h = await boss.call<{ publications: Array<{ data: unknown }> }>({ type: 'history', channel: 'private:room' })
    assert.deepEqual(h.publications.map((p) => p.data), [{ secret: 'launch codes' }])
    const boss2 = await as('boss')
    const p = await boss2.call<{ clients: Record<string, { user: string }> }>({ type: 'presence', channel: 'private:room' })
    assert.deepEqual(Object.values(p.clients).map((c) => c.user), ['boss'])
    assert.equal(carol.closed, undefined, 'a refusal is a reply, not a close')
  })

  it('allowSubscribe: false refuses reads too, except to a connection the server subscribed', async () => {
    await fx.start()
    await fx.server.gw.publish('inbox:dave', 'for dave')
    const eve = await as('eve')
    for (const type of READS) assert.equal(await code(eve, { type, channel: 'inbox:dave' }), ErrorCodes.permission_denied.code, type)
    const dave = await as('dave')
    await fx.server.gw.subscribeUser('dave', 'inbox:dave')
    await dave.until(() => dave.pushes.some((x) => x.type === 'subscribe'))
    const h = await dave.call<{ publications: Array<{ data: unknown }> }>({ type: 'history', channel: 'inbox:dave' })
    assert.deepEqual(h.publications.map((x) => x.data), ['for dave'])
  })

  it('canRead decides reads when given, with the kind of read; canSubscribe is not consulted for them', async () => {
    const asked: ReadHookContext[] = []
    let subscribeAsked = 0
    await fx.start({
      canSubscribe: () => {
        subscribeAsked++
        return false
      },
      canRead: (ctx) => {
        asked.push(ctx)
        return ctx.read === 'history'
      },
    })
    await fx.server.gw.publish('private:board', 'notice')
    const c = await as('frank')
    const h = await c.call<{ publications: Array<{ data: unknown }> }>({ type: 'history', channel: 'private:board' })
    assert.deepEqual(h.publications.map((x) => x.data), ['notice'])
    assert.equal(await code(c, { type: 'presence', channel: 'private:board' }), ErrorCodes.permission_denied.code)
    assert.equal(await code(c, { type: 'presence_stats', channel: 'private:board' }), ErrorCodes.permission_denied.code)
    assert.deepEqual(asked.map((a) => [a.read, a.channel, a.client.user]), [
      ['history', 'private:board', 'frank'],
      ['presence', 'private:board', 'frank'],
      ['presence_stats', 'private:board', 'frank'],
    ])
    assert.equal(subscribeAsked, 0)
  })

  it('a canRead that throws a HoldfastError refuses with that error', async () => {
    const { HoldfastError } = await import('@holdfast/protocol')
    await fx.start({ canRead: () => { throw new HoldfastError('not_available', 'reads are off today') } })
    const c = await as('gina')
    assert.equal(await code(c, { type: 'history', channel: 'x' }), ErrorCodes.not_available.code)
  })
})
