import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import fc from 'fast-check'
import { Registry } from 'prom-client'
import { BackendMetrics } from '../src/backend/backend-metrics.js'
import { resolveWebhookOptions, type WebhookOptions } from '../src/backend/options.js'
import { WebhookHeaders, signWebhook, verifyWebhook } from '../src/backend/signature.js'
import { WebhookQueue, jitteredDelay } from '../src/backend/webhooks.js'
import { TestBackend, type BackendCall } from './backend-helpers.js'
import { serverPerTest, waitFor } from './helpers.js'

const SECRET = 'webhook-secret-0123456789'

function verified(call: BackendCall): boolean {
  return verifyWebhook(SECRET, { timestamp: call.headers[WebhookHeaders.timestamp] as string, signature: call.headers[WebhookHeaders.signature] as string }, call.raw)
}

describe('webhook signatures', () => {
  it('verify what was signed; a changed body, a wrong secret or an old timestamp fail', () => {
    const now = 1_700_000_000
    const body = '{"id":"1","event":"join"}'
    const sig = signWebhook(SECRET, now, body)
    assert.match(sig, /^v1=[0-9a-f]{64}$/)
    assert.equal(verifyWebhook(SECRET, { timestamp: String(now), signature: sig }, body, { now }), true)
    assert.equal(verifyWebhook(SECRET, { timestamp: String(now), signature: sig }, body.replace('join', 'leave'), { now }), false)
    assert.equal(verifyWebhook('another-secret-0123456789', { timestamp: String(now), signature: sig }, body, { now }), false)
    assert.equal(verifyWebhook(SECRET, { timestamp: String(now), signature: sig }, body, { now: now + 301 }), false)
    assert.equal(verifyWebhook(SECRET, { timestamp: 'x', signature: sig }, body, { now }), false)
    assert.equal(verifyWebhook(SECRET, { timestamp: String(now), signature: undefined }, body, { now }), false)
  })

  it('full-jitter backoff stays within [0, min(max, base * 2^attempt)) for any attempt, and spreads at the cap', () => {
    fc.assert(
      fc.property(fc.nat(100_000), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, base, extra, r) => {
        const max = base + extra
        const d = jitteredDelay(attempt, base, max, () => r)
        return Number.isInteger(d) && d >= 0 && d < Math.min(max, base * 2 ** Math.min(attempt, 30))
      }),
    )
    const atCap = new Set(Array.from({ length: 50 }, () => jitteredDelay(5000, 100, 30_000)))
    assert.ok(atCap.size > 40, 'still jittered after thousands of attempts')
  })
})

describe('webhook queue', () => {
  const receivers: TestBackend[] = []
  const queues: WebhookQueue[] = []
  afterEach(async () => {
    await Promise.all(queues.splice(0).map((q) => q.close()))
    await Promise.all(receivers.splice(0).map((r) => r.stop()))
  })
  async function setup(opts: Partial<WebhookOptions>, answer: (call: BackendCall, n: number) => object | ((res: import('node:http').ServerResponse) => void)) {
    const r = await new TestBackend().start()
    receivers.push(r)
    let n = 0
    r.handlers['/hook'] = (call) => answer(call, ++n)
    const metrics = new BackendMetrics(new Registry())
    const q = new WebhookQueue(resolveWebhookOptions({ url: `${r.url}/hook`, secret: SECRET, ...opts }) as NonNullable<ReturnType<typeof resolveWebhookOptions>>, 'n1', metrics, undefined)
    queues.push(q)
    return { r, q, metrics }
  }

  it('retries a failed delivery with the same id and signature scheme until it is accepted', async () => {
    const { r, q, metrics } = await setup({ backoff: { baseMs: 5, maxMs: 20 } }, (_c, n) => (n <= 2 ? (res) => res.writeHead(503).end() : {}))
    q.emit('join', { channel: 'room', client: 'c1', user: 'alice' })
    await waitFor(() => q.size === 0, 5000, 'delivery')
    const calls = r.callsTo('/hook')
    assert.equal(calls.length, 3)
    assert.equal(new Set(calls.map((c) => c.headers[WebhookHeaders.id])).size, 1, 'one id across the retries')
    assert.ok(calls.every(verified), 'every attempt signed')
    assert.deepEqual(calls[2]?.body['data'], { channel: 'room', client: 'c1', user: 'alice' })
    assert.equal(calls[2]?.body['event'], 'join')
    assert.equal(calls[2]?.body['id'], calls[2]?.headers[WebhookHeaders.id])
    assert.equal((await metrics.webhookAttempts.get()).values.find((v) => v.labels.outcome === 'failed')?.value, 2)
    assert.equal((await metrics.webhooks.get()).values.find((v) => v.labels.event === 'join' && v.labels.outcome === 'delivered')?.value, 1)
  })

  it('gives up after maxAttempts, counted', async () => {
    const { r, q, metrics } = await setup({ maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 } }, () => (res) => res.writeHead(500).end())
    q.emit('leave', { channel: 'x' })
    await waitFor(() => q.size === 0, 5000, 'give up')
    assert.equal(r.callsTo('/hook').length, 3)
    assert.equal((await metrics.webhooks.get()).values.find((v) => v.labels.event === 'leave' && v.labels.outcome === 'dropped_attempts')?.value, 1)
  })

  it('a full queue drops new events at once (counted) and never blocks the caller', async () => {
    const stuck: Array<() => void> = []
    const { q, metrics } = await setup({ maxQueue: 3, concurrency: 1, timeoutMs: 60_000 }, () => (res) => stuck.push(() => res.writeHead(200).end()))
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) q.emit('connected', { client: `c${i}` })
    assert.ok(performance.now() - t0 < 50, 'emit returned at once')
    assert.equal(q.size, 3)
    assert.equal((await metrics.webhooks.get()).values.find((v) => v.labels.event === 'connected' && v.labels.outcome === 'dropped_full')?.value, 7)
    assert.equal(await metrics.webhookQueue.get().then((g) => g.values[0]?.value), 3)
    await waitFor(() => stuck.length === 1, 5000, 'first delivery in flight')
    for (let i = 0; i < 3; i++) {
      await waitFor(() => stuck.length > 0, 5000, 'a delivery')
      ;(stuck.shift() as () => void)()
    }
    await waitFor(() => q.size === 0, 5000, 'drained')
  })
})

describe('webhooks from a gateway', () => {
  const fx = serverPerTest()
  const receiver = new TestBackend()
  afterEach(() => receiver.stop())

  it('connected, join, channel_occupied, leave, channel_vacated and disconnected reach the app, signed', async () => {
    await receiver.start()
    receiver.handlers['/hooks'] = () => ({})
    const s = await fx.start({ webhooks: { url: `${receiver.url}/hooks`, secret: SECRET } })
    const c = fx.client(s.url)
    const { client } = await c.connect()
    await c.call({ type: 'subscribe', channel: 'room' })
    await c.call({ type: 'unsubscribe', channel: 'room' })
    c.close()
    const events = (): string[] => receiver.callsTo('/hooks').map((h) => String(h.body['event']))
    await waitFor(() => events().length === 6, 5000, 'six webhooks')
    assert.deepEqual([...events()].sort(), ['channel_occupied', 'channel_vacated', 'connected', 'disconnected', 'join', 'leave'])
    const calls = receiver.callsTo('/hooks')
    assert.ok(calls.every(verified))
    assert.equal(new Set(calls.map((h) => h.body['id'])).size, 6, 'each event has its own id')
    const by = (e: string) => calls.find((h) => h.body['event'] === e)?.body['data'] as Record<string, unknown>
    assert.equal(by('connected')['client'], client)
    assert.deepEqual(by('join'), { channel: 'room', client, user: '' })
    assert.deepEqual(by('channel_occupied'), { channel: 'room' })
    assert.equal(by('disconnected')['client'], client)
  })
})
