import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ErrorCodes, HoldfastError } from '@holdfast/protocol'
import type { HoldfastOptions } from '../src/options.js'
import { RawClient, serverPerTest, type TestServer } from './helpers.js'

interface Reply {
  id: number
  result?: Record<string, unknown>
  error?: { code: number; message: string; temporary: boolean }
}

/** The token is the user name: enough identity for dedupe scoping, without JWT noise. */
const tokenIsUser: HoldfastOptions['authenticate'] = ({ token }) => ({ user: token ?? '' })

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

describe('publish and RPC idempotency, RPC router', () => {
  const fx = serverPerTest()
  async function connected(s: TestServer, user: string, protocol: 'json' | 'msgpack' = 'json'): Promise<RawClient> {
    const c = fx.client(s.url, { protocol })
    await c.connect({ token: user })
    return c
  }

  describe('publish dedupe', () => {
    it('a retry with the same msgId is acked as a duplicate with the same position and delivered once', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const pub = await connected(s, 'alice')
      const sub = await connected(s, 'bob')
      await sub.call({ type: 'subscribe', channel: 'once' })
      const first = (await pub.request({ type: 'publish', channel: 'once', data: 'hello', msgId: 'm-1' })) as Reply
      const second = (await pub.request({ type: 'publish', channel: 'once', data: 'hello', msgId: 'm-1' })) as Reply
      assert.equal(first.error, undefined)
      assert.equal(first.result?.['duplicate'], undefined, 'the first ack is not a duplicate')
      assert.deepEqual(second.result, { offset: first.result?.['offset'], epoch: first.result?.['epoch'], duplicate: true })
      // A publication that is not a duplicate, then check what arrived before it: fan-out is in offset order.
      await pub.call({ type: 'publish', channel: 'once', data: 'marker', msgId: 'm-2' })
      await sub.until(() => sub.pubs('once').some((p) => p.data === 'marker'))
      assert.deepEqual(sub.pubs('once').map((p) => [p.offset, p.data]), [[1, 'hello'], [2, 'marker']])
      const h = await s.gw.history('once')
      assert.equal(h.publications.length, 2, 'stored once')
      assert.equal(s.gw.counters.get('publishes', 'duplicate'), 1)
    })

    it('the duplicate is found from another connection of the same user (a retry after reconnect), even with other data', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const a1 = await connected(s, 'alice')
      const first = await a1.call<{ offset: number }>({ type: 'publish', channel: 'r', data: 1, msgId: 'retry-me' })
      a1.close()
      const a2 = await connected(s, 'alice', 'msgpack')
      const again = await a2.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'r', data: 1, msgId: 'retry-me' })
      assert.equal(again.duplicate, true)
      assert.equal(again.offset, first.offset)
      // The id, not the content, is the identity: a different body under a used id is not published.
      const other = await a2.call<{ duplicate?: boolean }>({ type: 'publish', channel: 'r', data: 2, msgId: 'retry-me' })
      assert.equal(other.duplicate, true)
      assert.equal((await s.gw.history('r')).publications.length, 1)
    })

    it('different users with the same msgId are independent', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const alice = await connected(s, 'alice')
      const bob = await connected(s, 'bob')
      const sub = await connected(s, 'carol')
      await sub.call({ type: 'subscribe', channel: 'shared' })
      const a = await alice.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'shared', data: 'from alice', msgId: '1' })
      const b = await bob.call<{ offset: number; duplicate?: boolean }>({ type: 'publish', channel: 'shared', data: 'from bob', msgId: '1' })
      assert.equal(a.duplicate, undefined)
      assert.equal(b.duplicate, undefined, "bob's publish must not be swallowed as a duplicate of alice's")
      assert.deepEqual([a.offset, b.offset], [1, 2])
      await sub.until(() => sub.pubs('shared').length === 2)
      assert.deepEqual(sub.pubs('shared').map((p) => p.data), ['from alice', 'from bob'])
    })

    it('publish ids are scoped per channel: the same msgId on another channel is another publication', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const alice = await connected(s, 'alice')
      const a = await alice.call<{ duplicate?: boolean }>({ type: 'publish', channel: 'c1', data: 1, msgId: 'x' })
      const b = await alice.call<{ duplicate?: boolean }>({ type: 'publish', channel: 'c2', data: 1, msgId: 'x' })
      assert.equal(a.duplicate, undefined)
      // The dedupe record lives with the channel's stream (atomically with the append in Redis).
      assert.equal(b.duplicate, undefined)
      assert.equal((await s.gw.history('c2')).publications.length, 1)
      const c = await alice.call<{ duplicate?: boolean }>({ type: 'publish', channel: 'c1', data: 1, msgId: 'x' })
      assert.equal(c.duplicate, true)
    })

    it('msgId must be 1-128 characters (107)', async () => {
      const s = await fx.start()
      const c = await connected(s, 'alice')
      for (const msgId of ['', 'x'.repeat(129)]) {
        const r = (await c.request({ type: 'publish', channel: 'c', data: 1, msgId })) as Reply
        assert.equal(r.error?.code, ErrorCodes.bad_request.code)
        const q = (await c.request({ type: 'rpc', method: 'm', msgId })) as Reply
        assert.equal(q.error?.code, ErrorCodes.bad_request.code)
      }
      await c.call({ type: 'publish', channel: 'c', data: 1, msgId: 'x'.repeat(128) })
    })
  })

  describe('RPC', () => {
    it('a handler result is returned; unknown methods get 104', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const seen: Array<{ user: string; method: string }> = []
      s.gw.onRpc('add', (ctx, data) => {
        seen.push({ user: ctx.client.user, method: ctx.method })
        const { a, b } = data as { a: number; b: number }
        return { sum: a + b }
      })
      s.gw.onRpc('nothing', () => undefined)
      const c = await connected(s, 'alice')
      assert.deepEqual(await c.call({ type: 'rpc', method: 'add', data: { a: 2, b: 3 }, msgId: 'r1' }), { data: { sum: 5 } })
      assert.deepEqual(seen, [{ user: 'alice', method: 'add' }])
      assert.deepEqual(await c.call({ type: 'rpc', method: 'nothing', msgId: 'r2' }), {})
      const r = (await c.request({ type: 'rpc', method: 'subtract', data: {}, msgId: 'r3' })) as Reply
      assert.equal(r.error?.code, ErrorCodes.method_not_found.code)
      assert.equal(r.error?.temporary, false)
      assert.throws(() => s.gw.onRpc('add', () => 1), TypeError, 'a method is registered once')
    })

    it('a HoldfastError from the handler is the reply; a plain Error becomes 100 without leaking', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      let calls = 0
      s.gw.onRpc('guarded', () => {
        calls++
        throw new HoldfastError('permission_denied', 'only admins')
      })
      s.gw.onRpc('broken', () => {
        calls++
        throw new Error('connection to postgres://admin:hunter2@db failed')
      })
      const c = await connected(s, 'alice')
      const denied = (await c.request({ type: 'rpc', method: 'guarded', msgId: 'g1' })) as Reply
      assert.deepEqual(denied.error, { code: ErrorCodes.permission_denied.code, message: 'only admins', temporary: false })
      const broken = (await c.request({ type: 'rpc', method: 'broken', msgId: 'b1' })) as Reply
      assert.deepEqual(broken.error, { code: ErrorCodes.internal.code, message: 'internal error', temporary: true })
      assert.ok(!JSON.stringify(broken).includes('hunter2'))
      // A failed call is not remembered: the same msgId runs the handler again.
      await c.request({ type: 'rpc', method: 'broken', msgId: 'b1' })
      assert.equal(calls, 3)
      assert.equal(c.closed, undefined)
    })

    it('the same msgId twice runs the handler once and replies with the same data', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      let runs = 0
      s.gw.onRpc('charge', () => ({ receipt: ++runs }))
      const c = await connected(s, 'alice')
      const first = await c.call({ type: 'rpc', method: 'charge', data: { cents: 100 }, msgId: 'pay-1' })
      const second = await c.call({ type: 'rpc', method: 'charge', data: { cents: 100 }, msgId: 'pay-1' })
      assert.deepEqual(first, { data: { receipt: 1 } })
      assert.deepEqual(second, first)
      // After a reconnect too (the client SDK retries unacked RPCs with the same id).
      c.close()
      const again = await connected(s, 'alice', 'msgpack')
      assert.deepEqual(await again.call({ type: 'rpc', method: 'charge', data: { cents: 100 }, msgId: 'pay-1' }), first)
      assert.equal(runs, 1)
      // Another user's identical id is a different call.
      const bob = await connected(s, 'bob')
      assert.deepEqual(await bob.call({ type: 'rpc', method: 'charge', data: { cents: 100 }, msgId: 'pay-1' }), { data: { receipt: 2 } })
      // A handler returning nothing is remembered as done too.
      let voidRuns = 0
      s.gw.onRpc('log', () => void voidRuns++)
      await again.call({ type: 'rpc', method: 'log', msgId: 'l1' })
      await again.call({ type: 'rpc', method: 'log', msgId: 'l1' })
      assert.equal(voidRuns, 1)
    })

    it('a duplicate arriving while the first still runs gets 114 in_progress (temporary)', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const gate = deferred()
      const started = deferred()
      let runs = 0
      s.gw.onRpc('slow', async () => {
        runs++
        started.resolve()
        await gate.promise
        return 'done'
      })
      const c = await connected(s, 'alice')
      const first = c.request({ type: 'rpc', method: 'slow', msgId: 's1' }) as Promise<Reply>
      await started.promise
      const dup = (await c.request({ type: 'rpc', method: 'slow', msgId: 's1' })) as Reply
      assert.equal(dup.error?.code, ErrorCodes.in_progress.code)
      assert.equal(dup.error?.temporary, true)
      // The connection is not blocked by the running RPC: other commands are answered meanwhile.
      await c.call({ type: 'ping' })
      gate.resolve()
      assert.deepEqual((await first).result, { data: 'done' })
      // Retried once the first finished: the remembered result, no second run.
      assert.deepEqual(await c.call({ type: 'rpc', method: 'slow', msgId: 's1' }), { data: 'done' })
      assert.equal(runs, 1)
    })

    it('RPC to a method that is not registered does not reserve the msgId', async () => {
      const s = await fx.start({ authenticate: tokenIsUser })
      const c = await connected(s, 'alice')
      const r = (await c.request({ type: 'rpc', method: 'later', msgId: 'k' })) as Reply
      assert.equal(r.error?.code, ErrorCodes.method_not_found.code)
      s.gw.onRpc('later', () => 42)
      assert.deepEqual(await c.call({ type: 'rpc', method: 'later', msgId: 'k' }), { data: 42 })
    })
  })
})
