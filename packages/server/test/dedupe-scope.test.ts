/**
 * Message-id deduplication is scoped by user (or session, for anonymous clients), and the scope
 * cannot be spelled by another user's name and id: user `alice:x` with msgId `42` and user `alice`
 * with msgId `x:42` are two publications, on every engine.
 */
import assert from 'node:assert/strict'
import { after, afterEach, describe, it } from 'node:test'
import type { Engine } from '../src/engine/engine.js'
import { RedisEngine } from '../src/engine/redis-engine.js'
import { dedupeKey } from '../src/commands.js'
import type { HoldfastOptions } from '../src/options.js'
import { RawClient, serverPerTest, startServer, type TestServer } from './helpers.js'
import { RedisServer } from '../../../test/support/redis-server.js'

const tokenIsUser: HoldfastOptions['authenticate'] = ({ token }) => ({ user: token ?? '' })

let redis: Promise<RedisServer> | undefined
after(async () => (await redis)?.close())

const ENGINES: Array<[string, () => Promise<Engine | undefined>]> = [
  ['memory', async () => undefined],
  ['redis', async () => new RedisEngine({ url: (await (redis ??= RedisServer.start())).url, prefix: `dedupe-${process.pid}-${Date.now()}:` })],
]

describe('dedupe scope', () => {
  it('keys are distinct for every (user, id) split of the same characters', () => {
    const keys = new Set([
      dedupeKey('pub', { user: 'alice:x', session: 's1' }, '42'),
      dedupeKey('pub', { user: 'alice', session: 's1' }, 'x:42'),
      dedupeKey('pub', { user: 'alice:x:42', session: 's1' }, ''),
      dedupeKey('pub', { user: '', session: 'alice' }, 'x:42'),
      dedupeKey('pub', { user: 'u5:alice', session: 's1' }, 'x:42'),
      dedupeKey('rpc', { user: 'alice:x', session: 's1' }, '42'),
    ])
    assert.equal(keys.size, 6)
  })

  for (const [name, engine] of ENGINES) {
    describe(`on the ${name} engine`, () => {
      const fx = serverPerTest({ authenticate: tokenIsUser })
      it('user "alice:x" id "42" and user "alice" id "x:42" both publish; a real repeat is still a duplicate', async () => {
        const e = await engine()
        const { gw, url } = await fx.start(e === undefined ? {} : { engine: e })
        const ax = fx.client(url)
        await ax.connect({ token: 'alice:x' })
        const a = fx.client(url)
        await a.connect({ token: 'alice' })
        const first = await ax.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'dd', data: 'from alice:x', msgId: '42' })
        const second = await a.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'dd', data: 'from alice', msgId: 'x:42' })
        assert.equal(second.duplicate, undefined, "alice's publish was taken for alice:x's")
        assert.equal(second.offset, first.offset + 1)
        const again = await a.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'dd', data: 'from alice', msgId: 'x:42' })
        assert.deepEqual([again.offset, again.duplicate], [second.offset, true])
        const h = await gw.history('dd')
        assert.deepEqual(h.publications.map((p) => p.data), ['from alice:x', 'from alice'])
        if (e !== undefined) await e.close()
      })
    })
  }
})

describe('dedupe scope: anonymous clients', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  it('anonymous clients do not share a dedupe space: the same msgId from two sessions publishes twice', async () => {
    srv = await startServer()
    const a = new RawClient(srv.url)
    const b = new RawClient(srv.url)
    await a.connect()
    await b.connect()
    const r1 = await a.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'anon', data: 1, msgId: 'same' })
    const r2 = await b.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'anon', data: 2, msgId: 'same' })
    assert.equal(r2.duplicate, undefined)
    assert.equal(r2.offset, r1.offset + 1)
    a.close()
    b.close()
  })
})
