/**
 * Replies that carry stored publications are built from each publication's cached encoding: they
 * must decode to exactly what encoding the whole message gives, in both codecs, with bytes and
 * publisher info; a stored publication is encoded once per codec however often it is read; and
 * publications without a stored key (engines that decode afresh) are encoded whole as before.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { jsonCodec, msgpackCodec, type Codec, type Publication, type ServerMessage } from '@holdfast/protocol'
import { encodeMessage, encodePubPush, joined, Pieces, type Encoded } from '../src/encoded-publications.js'
import { STORED_KEY, type StoredPublication } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { serverPerTest } from './helpers.js'

const STREAM = { historySize: 100, historyTtlMs: 60_000, streamTtlMs: 60_000 }

function stored(pub: Publication): Publication {
  return Object.defineProperty({ ...pub }, STORED_KEY, { value: {} })
}

/** A codec that counts what it encodes (to see the cache at work). */
function counting(codec: Codec): Codec & { encoded: number } {
  const c = { ...codec, encoded: 0 }
  c.encode = (msg) => {
    c.encoded++
    return codec.encode(msg)
  }
  return c
}

// As a client gets them: plain bytes (decoded MessagePack bin values are views of the input).
function decode(codec: Codec, encoded: Encoded): ServerMessage[] {
  const bytes = encoded instanceof Pieces ? joined(encoded.parts, encoded.byteLength) : encoded
  return codec.decodeServer(codec.binary ? Uint8Array.from(bytes) : new TextDecoder().decode(bytes))
}

const PUBS: Publication[] = [
  { offset: 7, data: { text: 'hé "quoted"\n', n: [1, 2, 3] } },
  { offset: 8, data: 'a string', info: { client: 'c1', user: 'u1', info: { name: 'x' } } },
  { offset: 9, data: new Uint8Array([0, 1, 254, 255]) },
  { offset: 10, data: null },
]

for (const codec of [jsonCodec, msgpackCodec]) {
  describe(`encoded publications (${codec.name})`, () => {
    it('a history reply built from cached entries decodes as the whole message does', () => {
      const msg = { id: 42, result: { offset: 10, epoch: 'e1', publications: PUBS.map(stored) } } as ServerMessage
      const whole = decode(codec, codec.encode({ id: 42, result: { offset: 10, epoch: 'e1', publications: PUBS } } as ServerMessage))
      assert.deepEqual(decode(codec, encodeMessage(codec, msg)), whole)
      // Again, from the cache.
      assert.deepEqual(decode(codec, encodeMessage(codec, msg)), whole)
    })

    it('a large reply stays in pieces (written as they are), a small one is one buffer', () => {
      const big = Array.from({ length: 20 }, (_, i) => stored({ offset: i + 1, data: 'y'.repeat(10_000) }))
      const large = encodeMessage(codec, { id: 1, result: { offset: 20, epoch: 'e', publications: big } } as ServerMessage)
      assert.ok(large instanceof Pieces && large.byteLength > 200_000)
      assert.equal(large.byteLength, large.parts.reduce((n, p) => n + p.byteLength, 0))
      assert.ok(encodeMessage(codec, { id: 2, result: { offset: 1, epoch: 'e', publications: [stored({ offset: 1, data: 1 })] } } as ServerMessage) instanceof Uint8Array)
      const push = encodePubPush(codec, 'c', 'e', big[0] as Publication)
      assert.ok(push instanceof Uint8Array, 'a 10 kB push is joined')
    })

    it('a subscribe reply with a recovery, and a list of more than fifteen entries', () => {
      const many = Array.from({ length: 70 }, (_, i) => ({ offset: i + 1, data: { i } }))
      const result = { epoch: 'e2', offset: 70, recovered: true, wasRecovering: true, publications: many }
      const whole = decode(codec, codec.encode({ id: 3, result } as ServerMessage))
      assert.deepEqual(decode(codec, encodeMessage(codec, { id: 3, result: { ...result, publications: many.map(stored) } } as ServerMessage)), whole)
    })

    it('a recovery pub push decodes as the push encoded whole', () => {
      for (const pub of PUBS) {
        const whole = decode(codec, codec.encode({ type: 'pub', channel: 'room:1', epoch: 'e1', ...pub } as ServerMessage))
        assert.deepEqual(decode(codec, encodePubPush(codec, 'room:1', 'e1', stored(pub))), whole)
        assert.deepEqual(decode(codec, encodePubPush(codec, 'room:1', 'e1', pub)), whole, 'without a stored key')
      }
    })

    it('a stored publication is encoded once, however often it is read; without a key, every time', () => {
      const c = counting(codec)
      const pubs = PUBS.map(stored)
      const msg = (id: number, list: Publication[]): ServerMessage => ({ id, result: { offset: 10, epoch: 'e1', publications: list } }) as ServerMessage
      encodeMessage(c, msg(1, pubs))
      const first = c.encoded
      assert.equal(first, pubs.length + 1, 'each entry and the envelope')
      for (let i = 0; i < 5; i++) encodeMessage(c, msg(i + 2, pubs))
      assert.equal(c.encoded - first, 5, 'only the envelope of each later reply')
      c.encoded = 0
      encodeMessage(c, msg(9, PUBS))
      encodeMessage(c, msg(10, PUBS))
      assert.equal(c.encoded, 2, 'publications without a key: the message whole, each time')
    })

    it('the memory engine keys the publications it returns, fresh objects that compare as plain ones', async () => {
      const engine = new MemoryEngine()
      await engine.start({ onPublication() {}, onJoinLeave() {}, onControl() {} })
      try {
        await engine.publish('h', { a: 1 }, STREAM)
        const [one] = (await engine.history('h', { stream: STREAM, limit: 10 })).publications
        const [again] = (await engine.history('h', { stream: STREAM, limit: 10 })).publications
        assert.ok(one !== undefined && again !== undefined)
        assert.notEqual(one, again, 'a fresh object for each caller')
        assert.equal((one as StoredPublication)[STORED_KEY], (again as StoredPublication)[STORED_KEY], 'the same key')
        assert.deepStrictEqual(one, { offset: 1, data: { a: 1 } }, 'the key is not enumerable')
        assert.deepEqual(Object.keys(one), ['offset', 'data'])
      } finally {
        await engine.close()
      }
    })
  })
}

describe('encoded publications through a node', () => {
  const fx = serverPerTest()

  for (const protocol of ['json', 'msgpack'] as const) {
    it(`${protocol}: history pages and a paged recovery of large publications arrive whole, twice over (the second time from the cache)`, async () => {
      const { url, gw } = await fx.start({ maxReplyBytes: 300_000 })
      const blob = (i: number): string => String(i % 10).repeat(50_000)
      const bytes = new Uint8Array(40_000).fill(7)
      for (let i = 1; i <= 12; i++) await gw.publish('big', i === 5 ? { i, bytes } : { i, blob: blob(i) })
      const c = fx.client(url, { protocol })
      await c.connect()
      type Page = { offset: number; epoch: string; publications: Array<{ offset: number; data: { i: number; blob?: string; bytes?: Uint8Array } }> }
      // Two pages fit the reply budget's burst.
      for (let round = 0; round < 2; round++) {
        const page = await c.call<Page>({ type: 'history', channel: 'big', since: { offset: 0, epoch: '' }, limit: 12 })
        assert.deepEqual(page.publications.map((p) => p.offset), [1, 2, 3, 4, 5], 'the first 300 kB')
        for (const p of page.publications) {
          if (p.offset === 5) assert.deepEqual(Uint8Array.from(p.data.bytes as Uint8Array), bytes)
          else assert.equal(p.data.blob, blob(p.offset))
        }
      }
      const sub = await c.call<{ offset: number; publications: Page['publications'] }>({ type: 'subscribe', channel: 'big', recover: { offset: 0, epoch: '' } })
      await c.until(() => c.pubs('big').length === 12 - sub.publications.length, 10_000, 'the recovery pages')
      const all = [...sub.publications, ...c.pubs('big')]
      assert.deepEqual(all.map((p) => p.offset), Array.from({ length: 12 }, (_, i) => i + 1))
      for (const p of all) if (p.offset !== 5) assert.equal((p.data as { blob: string }).blob, blob(p.offset))
    })
  }
})
