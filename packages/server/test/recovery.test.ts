import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import type { Engine, HistoryPage, HistoryQuery } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { RawClient, startServer, type TestServer } from './helpers.js'

interface SubResult {
  epoch: string
  offset: number
  recovered: boolean
  wasRecovering: boolean
  publications: Array<{ offset: number; data: unknown }>
}

/** A memory engine whose history reads take a random while, like a remote Redis: the subscribe race window. */
class SlowHistoryEngine extends MemoryEngine {
  constructor(private readonly maxDelayMs: number) {
    super()
  }
  override async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    // Delay both the request and the response: publications land after the read, before the reply.
    await new Promise((r) => setTimeout(r, Math.random() * this.maxDelayMs))
    const page = await super.history(channel, q)
    this.reads++
    await new Promise((r) => setTimeout(r, Math.random() * this.maxDelayMs))
    return page
  }
  reads = 0
}

describe('recovery', () => {
  let srv: TestServer | undefined
  afterEach(async () => {
    await srv?.close()
    srv = undefined
  })

  async function publishN(s: TestServer, channel: string, n: number, from = 0): Promise<void> {
    for (let i = 0; i < n; i++) await s.gw.publish(channel, from + i)
  }

  it('returns exactly the missed publications, in order', async () => {
    srv = await startServer()
    const c = new RawClient(srv.url)
    await c.connect()
    const first = await c.call<SubResult>({ type: 'subscribe', channel: 'r1' })
    await publishN(srv, 'r1', 3)
    await c.until(() => c.pubs('r1').length === 3)
    const pos = { offset: 3, epoch: first.epoch }
    c.close()
    await publishN(srv, 'r1', 5, 3) // missed while away: offsets 4..8
    const d = new RawClient(srv.url)
    await d.connect()
    const r = await d.call<SubResult>({ type: 'subscribe', channel: 'r1', recover: pos })
    assert.equal(r.recovered, true)
    assert.equal(r.wasRecovering, true)
    assert.deepEqual(r.publications.map((p) => p.offset), [4, 5, 6, 7, 8])
    assert.deepEqual(r.publications.map((p) => p.data), [3, 4, 5, 6, 7])
    assert.equal(r.offset, 8)
    assert.equal(srv.gw.counters.get('recoveries', 'recovered'), 1)
    d.close()
  })

  it('same position: recovered with zero publications', async () => {
    srv = await startServer()
    await publishN(srv, 'r2', 2)
    const c = new RawClient(srv.url)
    await c.connect()
    const first = await c.call<SubResult>({ type: 'subscribe', channel: 'r2' })
    assert.equal(first.offset, 2)
    await c.call({ type: 'unsubscribe', channel: 'r2' })
    const r = await c.call<SubResult>({ type: 'subscribe', channel: 'r2', recover: { offset: 2, epoch: first.epoch } })
    assert.equal(r.recovered, true)
    assert.deepEqual(r.publications, [])
    c.close()
  })

  const unrecoverable: Array<[string, (epoch: string) => { offset: number; epoch: string }, Parameters<typeof startServer>[0]]> = [
    ['position older than the history', (epoch) => ({ offset: 1, epoch }), { channels: { default: { historySize: 5 } } }],
    ['unknown epoch', () => ({ offset: 8, epoch: 'not-the-epoch' }), {}],
    ['future offset', (epoch) => ({ offset: 99, epoch }), {}],
    ['more missed than maxRecoverPublications', (epoch) => ({ offset: 1, epoch }), { channels: { default: { maxRecoverPublications: 3 } } }],
  ]
  for (const [name, pos, opts] of unrecoverable) {
    it(`${name}: recovered:false, no publications, the current position`, async () => {
      srv = await startServer(opts)
      await publishN(srv, 'r3', 10)
      const c = new RawClient(srv.url)
      await c.connect()
      const probe = await c.call<SubResult>({ type: 'subscribe', channel: 'r3' })
      await c.call({ type: 'unsubscribe', channel: 'r3' })
      const r = await c.call<SubResult>({ type: 'subscribe', channel: 'r3', recover: pos(probe.epoch) })
      assert.equal(r.recovered, false)
      assert.equal(r.wasRecovering, true)
      assert.deepEqual(r.publications, [])
      assert.equal(r.offset, 10)
      assert.equal(r.epoch, probe.epoch)
      assert.equal(srv.gw.counters.get('recoveries', 'not_recovered'), 1)
      c.close()
    })
  }

  it('TTL expired history: recovered:false', async () => {
    let now = Date.now()
    srv = await startServer({ engine: new MemoryEngine({ now: () => now }), channels: { default: { historyTtlMs: 60_000 } } })
    await publishN(srv, 'r4', 3)
    const c = new RawClient(srv.url)
    await c.connect()
    const probe = await c.call<SubResult>({ type: 'subscribe', channel: 'r4' })
    await c.call({ type: 'unsubscribe', channel: 'r4' })
    now += 61_000
    const r = await c.call<SubResult>({ type: 'subscribe', channel: 'r4', recover: { offset: 1, epoch: probe.epoch } })
    assert.equal(r.recovered, false)
    assert.deepEqual(r.publications, [])
    c.close()
  })

  it('a lost stream gets a new epoch: old positions are not accepted as new ones', async () => {
    let now = Date.now()
    srv = await startServer({ engine: new MemoryEngine({ now: () => now }), channels: { default: { streamTtlMs: 60_000 } } })
    await publishN(srv, 'r5', 5)
    const c = new RawClient(srv.url)
    await c.connect()
    const probe = await c.call<SubResult>({ type: 'subscribe', channel: 'r5' })
    await c.call({ type: 'unsubscribe', channel: 'r5' })
    now += 120_000
    await publishN(srv, 'r5', 6) // a new stream: offsets 1..6, beyond the old offset 5
    const r = await c.call<SubResult>({ type: 'subscribe', channel: 'r5', recover: { offset: 5, epoch: probe.epoch } })
    assert.equal(r.recovered, false)
    assert.notEqual(r.epoch, probe.epoch)
    assert.equal(r.offset, 6)
    c.close()
  })

  it('live publications during a slow history read are merged with no gap and no duplicate', async () => {
    // History holds everything published here, so every resubscribe must recover.
    srv = await startServer({
      engine: new SlowHistoryEngine(15),
      commandRate: { perSecond: 10_000, burst: 10_000 },
      channels: { default: { historySize: 10_000 } },
    })
    const s = srv
    const channel = 'race'
    let stop = false
    let published = 0
    const publisher = (async () => {
      // About 1,000 publications a second until the subscribers are done (bounded: 9,000).
      while (!stop && published < 9000) {
        await s.gw.publish(channel, published++)
        if (published % 2 === 0) await new Promise((r) => setTimeout(r, 1))
      }
    })()
    // Several subscribers that repeatedly leave and come back with their position.
    const rounds = 15
    const checkers = Array.from({ length: 4 }, async (_, k) => {
      const c = new RawClient(s.url)
      await c.connect()
      let pos: { offset: number; epoch: string } | undefined
      const seen: number[] = []
      for (let round = 0; round < rounds; round++) {
        c.pushes.length = 0
        const r = await c.call<SubResult>({ type: 'subscribe', channel, ...(pos === undefined ? {} : { recover: pos }) })
        if (pos !== undefined) assert.equal(r.recovered, true, `subscriber ${k} round ${round} should recover`)
        for (const p of r.publications) seen.push(p.offset)
        // Let live publications flow for a moment, then leave.
        await c.until(() => c.pubs(channel).length >= 3, 5000, 'live publications')
        await c.call({ type: 'unsubscribe', channel })
        for (const p of c.pubs(channel)) seen.push(p.offset)
        const last = seen.at(-1) ?? r.offset
        pos = { offset: Math.max(last, r.offset), epoch: r.epoch }
      }
      c.close()
      return seen
    })
    const results = await Promise.all(checkers)
    stop = true
    await publisher
    for (const [k, seen] of results.entries()) {
      assert.ok(seen.length > rounds * 3, `subscriber ${k} saw too little: ${seen.length}`)
      for (let i = 1; i < seen.length; i++) {
        assert.equal(seen[i], (seen[i - 1] as number) + 1, `subscriber ${k}: offset ${seen[i]} follows ${seen[i - 1]} (gap or duplicate)`)
      }
    }
  })
})

export type { Engine }
