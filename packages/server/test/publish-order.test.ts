/**
 * A connection's publishes to one channel are stored in the order it sent them, even when the
 * engine refuses one of them for a while: the publishes it had already sent behind the refused one
 * are refused too (same temporary code) until the refused message id comes again, so a client that
 * retries in order (the SDK) ends with the channel in its order. Other channels are not held.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import type { PublishOptions, PublishOutcome } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { serverPerTest } from './helpers.js'

/** A memory engine whose next publish to `channel` fails with a temporary error, once. */
class FailOnce extends MemoryEngine {
  failNext = new Set<string>()
  override async publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome> {
    if (this.failNext.delete(channel)) throw new HoldfastError('engine_unavailable', 'engine briefly unavailable', { temporary: true })
    return super.publish(channel, data, opts)
  }
}

type Reply = { result?: { offset: number }; error?: { code: number; message: string; temporary?: boolean } }

describe('publish order through a temporary refusal', () => {
  const fx = serverPerTest()

  it('publishes sent behind a refused one wait for its retry; retried in order, the channel holds them in order', async () => {
    const engine = new FailOnce()
    const { url } = await fx.start({ engine })
    const c = fx.client(url)
    await c.connect()
    engine.failNext.add('room')
    // Pipelined, as a client sends its outbox: the first is refused by the engine.
    const first = await Promise.all(['m1', 'm2', 'm3'].map((msgId, i) => c.request({ type: 'publish', channel: 'room', data: { n: i + 1 }, msgId }) as Promise<Reply>))
    assert.deepEqual(
      first.map((r) => r.error?.temporary),
      [true, true, true],
      `all three refused, temporarily: ${JSON.stringify(first)}`,
    )
    assert.match(first[1]?.error?.message ?? '', /earlier publish to this channel was refused/)
    // Another channel is not held.
    assert.equal(((await c.request({ type: 'publish', channel: 'other', data: 1, msgId: 'o1' })) as Reply).result?.offset, 1)
    // The retry, in order: the refused one first lifts the hold.
    const again = await Promise.all(['m1', 'm2', 'm3'].map((msgId, i) => c.request({ type: 'publish', channel: 'room', data: { n: i + 1 }, msgId }) as Promise<Reply>))
    assert.deepEqual(
      again.map((r) => r.result?.offset),
      [1, 2, 3],
    )
    const page = await engine.history('room', { stream: { historySize: 10, historyTtlMs: 60_000, streamTtlMs: 60_000 }, limit: 10 })
    assert.deepEqual(
      page.publications.map((p) => (p.data as { n: number }).n),
      [1, 2, 3],
    )
    await engine.close()
  })

  it('a refusal that is not temporary holds nothing back', async () => {
    const { url } = await fx.start({ canPublish: ({ data }) => (data as { ok: boolean }).ok })
    const c = fx.client(url)
    await c.connect()
    const replies = (await Promise.all([
      c.request({ type: 'publish', channel: 'room', data: { ok: false }, msgId: 'x1' }),
      c.request({ type: 'publish', channel: 'room', data: { ok: true }, msgId: 'x2' }),
    ])) as Reply[]
    assert.equal(replies[0]?.error?.temporary, false)
    assert.equal(replies[1]?.result?.offset, 1)
  })
})
