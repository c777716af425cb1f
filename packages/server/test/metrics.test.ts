import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import { Counters, Distribution } from '../src/counters.js'
import type { PublishOutcome, StreamPublication } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { createHoldfast } from '../src/holdfast.js'
import { DeliveryTimer } from '../src/metrics.js'
import type { HoldfastOptions } from '../src/options.js'
import { expectClosedWith, tryUpgrade, waitFor, serverPerTest, type TestServer } from './helpers.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const DOC = `${ROOT}docs/metrics.md`
const RULES_DIR = `${ROOT}deploy/prometheus`

// ---------------------------------------------------------------- the Prometheus text format

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Family {
  type: string
  samples: Sample[]
}

/** Parse the text exposition format (version 0.0.4): families by name, with their samples. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  let current: { name: string; family: Family } | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) {
      const family: Family = { type: type[2] as string, samples: [] }
      families.set(type[1] as string, family)
      current = { name: type[1] as string, family }
      continue
    }
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m !== null, `not a sample line: ${line}`)
    const name = m[1] as string
    const labels: Record<string, string> = {}
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
    for (let l = re.exec(m[2] ?? ''); l !== null; l = re.exec(m[2] ?? '')) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1')
    const base = current?.name
    assert.ok(base !== undefined && (name === base || [`${base}_bucket`, `${base}_sum`, `${base}_count`].includes(name)), `sample ${name} outside its family`)
    current?.family.samples.push({ name, labels, value: Number(m[3]) })
  }
  return families
}

/** Sum of the samples of `name` whose labels include `match`. */
function valueOf(families: Map<string, Family>, name: string, match: Record<string, string> = {}, sample = name): number {
  const family = families.get(name)
  assert.ok(family !== undefined, `${name} is not in the scrape`)
  let sum = 0
  for (const s of family.samples) {
    if (s.name === sample && Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}

// ---------------------------------------------------------------- docs/metrics.md

interface DocMetric {
  name: string
  type: string
  /** undefined: any label (the wildcard rows). */
  labels: string[] | undefined
}

function parseDoc(markdown: string): DocMetric[] {
  const out: DocMetric[] = []
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`(holdfast_[a-z0-9_*]+)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|/.exec(line)
    if (m === null) continue
    const cell = (m[3] as string).trim()
    out.push({
      name: m[1] as string,
      type: m[2] as string,
      labels: cell === 'any' ? undefined : [...cell.matchAll(/`([a-z_]+)`/g)].map((l) => l[1] as string),
    })
  }
  return out
}

/** Every disagreement between the documentation and a scrape; empty when they agree. */
function compareWithDoc(doc: DocMetric[], families: Map<string, Family>): string[] {
  const problems: string[] = []
  const exact = new Map(doc.filter((d) => !d.name.endsWith('*')).map((d) => [d.name, d]))
  const wildcards = doc.filter((d) => d.name.endsWith('*')).map((d) => d.name.slice(0, -1))
  for (const d of exact.values()) {
    const family = families.get(d.name)
    if (family === undefined) problems.push(`documented but not scraped: ${d.name}`)
    else if (family.type !== d.type) problems.push(`${d.name} is a ${family.type}, documented as a ${d.type}`)
  }
  for (const prefix of wildcards) {
    if (![...families.keys()].some((n) => n.startsWith(prefix))) problems.push(`no scraped metric matches ${prefix}*`)
  }
  for (const [name, family] of families) {
    if (!name.startsWith('holdfast_')) continue
    const d = exact.get(name)
    if (d === undefined) {
      if (!wildcards.some((p) => name.startsWith(p))) problems.push(`scraped but not documented: ${name}`)
      continue
    }
    const allowed = new Set([...(d.labels ?? []), ...(family.type === 'histogram' ? ['le'] : [])])
    for (const s of family.samples) {
      for (const label of Object.keys(s.labels)) if (!allowed.has(label)) problems.push(`${name} has the undocumented label ${label}`)
    }
  }
  return [...new Set(problems)]
}

// ---------------------------------------------------------------- tests

describe('metrics', () => {
  const fx = serverPerTest()
  const { client, start } = fx

  async function scrape(s: TestServer): Promise<Map<string, Family>> {
    return parseExposition(await s.gw.metricsText())
  }

  interface SubResult {
    epoch: string
    offset: number
    recovered: boolean
  }

  /**
   * Connect, subscribe, publish from a client and from the API, recover, get refused at the
   * upgrade, hit the rate limit, send a bad frame and a too-large payload, answer pings.
   */
  async function traffic(s: TestServer): Promise<void> {
    const refused = await tryUpgrade(s.url, { headers: { origin: 'https://evil.example' } })
    assert.ok('status' in refused && refused.status === 403)

    const c = client(s.url)
    await c.connect()
    const sub = await c.call<SubResult>({ type: 'subscribe', channel: 'room' })
    await c.call({ type: 'publish', channel: 'room', data: { text: 'hello' }, msgId: 'm1' })
    await c.call({ type: 'publish', channel: 'room', data: { text: 'hello' }, msgId: 'm1' }) // a retry: duplicate
    await s.gw.publish('room', { text: 'from the api' })
    await c.until(() => c.pubs('room').length === 2, 5000, '2 publications')
    await c.call({ type: 'unsubscribe', channel: 'room' })
    await s.gw.publish('room', { text: 'missed' })
    const recovered = await c.call<SubResult>({ type: 'subscribe', channel: 'room', recover: { offset: 2, epoch: sub.epoch } })
    assert.equal(recovered.recovered, true)
    const lost = await c.call<SubResult>({ type: 'subscribe', channel: 'elsewhere', recover: { offset: 3, epoch: 'an-old-epoch' } })
    assert.equal(lost.recovered, false)
    await c.call({ type: 'rpc', method: 'echo', data: 1, msgId: 'r1' })

    const big = await c.request({ type: 'publish', channel: 'room', data: 'x'.repeat(2048), msgId: 'm2' })
    assert.equal((big as { error?: { code: number } }).error?.code, ErrorCodes.payload_too_large.code)

    const flooder = client(s.url)
    await flooder.connect()
    const replies = await Promise.all(Array.from({ length: 15 }, () => flooder.request({ type: 'ping' })))
    assert.ok(replies.some((r) => (r as { error?: { code: number } }).error?.code === ErrorCodes.rate_limited.code))

    const bad = client(s.url)
    await bad.opened()
    bad.ws.send('this is not a frame')
    await expectClosedWith(bad, CloseCodes.bad_request.code)
    // The client sees its close before the server's socket reports the closing handshake done.
    await waitFor(() => s.gw.connectionCount === 2, 5000, 'the server to see the bad connection close')

    await waitFor(() => s.gw.counters.observations('ping_rtt_ms').count > 0, 5000, 'a ping round trip')
  }

  const TRAFFIC_OPTIONS: HoldfastOptions = {
    allowedOrigins: ['https://app.example'],
    commandRate: { perSecond: 20, burst: 10 },
    maxPayload: 1024,
    pingIntervalMs: 50,
  }

  it('docs/metrics.md lists exactly what a live gateway exports, after traffic', async () => {
    const s = await start(TRAFFIC_OPTIONS)
    s.gw.onRpc('echo', (_ctx, data) => data)
    await traffic(s)
    const families = await scrape(s)
    const doc = parseDoc(readFileSync(DOC, 'utf8'))
    assert.ok(doc.length >= 35, `only ${doc.length} metrics parsed from the doc`)
    assert.deepEqual(compareWithDoc(doc, families), [])
    // The traffic reached every labelled metric that it can: their labels were checked above.
    for (const name of ['holdfast_connections_rejected_total', 'holdfast_disconnects_total', 'holdfast_command_errors_total', 'holdfast_command_duration_seconds']) {
      assert.ok((families.get(name)?.samples.length ?? 0) > 0, `${name} has no samples`)
    }
  })

  it('the doc check fails on a missing, mistyped, undocumented or wrongly labelled metric', () => {
    const families = parseExposition(
      [
        '# TYPE holdfast_a_total counter',
        'holdfast_a_total{reason="x"} 1',
        '# TYPE holdfast_b gauge',
        'holdfast_b 2',
        '# TYPE holdfast_process_x gauge',
        'holdfast_process_x 1',
        '# TYPE holdfast_h_seconds histogram',
        'holdfast_h_seconds_bucket{le="+Inf"} 0',
        'holdfast_h_seconds_sum 0',
        'holdfast_h_seconds_count 0',
        '# TYPE other_metric gauge',
        'other_metric 1',
      ].join('\n'),
    )
    const doc: DocMetric[] = [
      { name: 'holdfast_a_total', type: 'counter', labels: ['reason'] },
      { name: 'holdfast_b', type: 'gauge', labels: [] },
      { name: 'holdfast_h_seconds', type: 'histogram', labels: [] },
      { name: 'holdfast_process_*', type: 'any', labels: undefined },
    ]
    assert.deepEqual(compareWithDoc(doc, families), [])
    assert.deepEqual(compareWithDoc([...doc, { name: 'holdfast_gone', type: 'gauge', labels: [] }], families), ['documented but not scraped: holdfast_gone'])
    assert.deepEqual(compareWithDoc(doc.slice(1), families), ['scraped but not documented: holdfast_a_total'])
    assert.deepEqual(compareWithDoc([{ name: 'holdfast_a_total', type: 'counter', labels: [] }, ...doc.slice(1)], families), ['holdfast_a_total has the undocumented label reason'])
    assert.deepEqual(compareWithDoc([doc[0] as DocMetric, { name: 'holdfast_b', type: 'counter', labels: [] }, ...doc.slice(2)], families), [
      'holdfast_b is a gauge, documented as a counter',
    ])
    assert.deepEqual(compareWithDoc([...doc, { name: 'holdfast_nodejs_*', type: 'any', labels: undefined }], families), ['no scraped metric matches holdfast_nodejs_*'])
  })

  it('values move with the traffic', async () => {
    const s = await start(TRAFFIC_OPTIONS)
    s.gw.onRpc('echo', (_ctx, data) => data)
    const before = await scrape(s)
    assert.equal(valueOf(before, 'holdfast_connections'), 0)
    assert.equal(valueOf(before, 'holdfast_recoveries_total', { outcome: 'recovered' }), 0)
    assert.equal(valueOf(before, 'holdfast_engine_ready'), 1)
    assert.equal(valueOf(before, 'holdfast_node_info', { node: s.gw.nodeId, engine: 'memory' }), 1)

    await traffic(s)
    const after = await scrape(s)
    assert.equal(valueOf(after, 'holdfast_connections'), 2, 'the bad-frame connection is gone, two are open')
    assert.equal(valueOf(after, 'holdfast_sessions'), 2)
    assert.equal(valueOf(after, 'holdfast_subscriptions'), 2)
    assert.equal(valueOf(after, 'holdfast_channels'), 2)
    assert.equal(valueOf(after, 'holdfast_connections_accepted_total'), 2)
    assert.equal(valueOf(after, 'holdfast_connections_rejected_total', { reason: 'origin' }), 1)
    assert.equal(valueOf(after, 'holdfast_connections_rejected_total', { reason: 'bad_request' }), 1, 'closed before its connect: a rejection')
    assert.equal(valueOf(after, 'holdfast_publishes_total', { source: 'client', duplicate: 'false' }), 1)
    assert.equal(valueOf(after, 'holdfast_publishes_total', { source: 'client', duplicate: 'true' }), 1)
    assert.equal(valueOf(after, 'holdfast_publishes_total', { source: 'api', duplicate: 'false' }), 2)
    assert.equal(valueOf(after, 'holdfast_recoveries_total', { outcome: 'recovered' }), 1)
    assert.equal(valueOf(after, 'holdfast_recoveries_total', { outcome: 'not_recovered' }), 1)
    assert.equal(valueOf(after, 'holdfast_recovery_failures_total', { reason: 'epoch_changed' }), 1)
    assert.equal(valueOf(after, 'holdfast_recovery_failures_total', { reason: 'history_unavailable' }), 0)
    assert.ok(valueOf(after, 'holdfast_rate_limited_total') >= 1)
    assert.equal(valueOf(after, 'holdfast_bad_frames_total'), 1)
    assert.equal(valueOf(after, 'holdfast_payload_too_large_total'), 1)
    assert.equal(valueOf(after, 'holdfast_rpcs_total'), 1)
    assert.equal(valueOf(after, 'holdfast_disconnects_total', { code: 'bad_request' }), 1)
    assert.equal(valueOf(after, 'holdfast_command_errors_total', { code: 'payload_too_large' }), 1)
    assert.equal(valueOf(after, 'holdfast_command_duration_seconds', { type: 'subscribe' }, 'holdfast_command_duration_seconds_count'), 3)
    assert.equal(valueOf(after, 'holdfast_command_duration_seconds', { type: 'rpc' }, 'holdfast_command_duration_seconds_count'), 1)
    assert.ok(valueOf(after, 'holdfast_ping_rtt_seconds', {}, 'holdfast_ping_rtt_seconds_count') >= 1)
    for (const name of ['holdfast_messages_in_total', 'holdfast_bytes_in_total', 'holdfast_messages_out_total', 'holdfast_bytes_out_total']) {
      assert.ok(valueOf(after, name) > valueOf(before, name), `${name} moved`)
    }

    // Close the two: the gauge goes back down, and the close codes are counted by name.
    fx.closeClients()
    await waitFor(() => s.gw.connectionCount === 0, 5000, 'connections to close')
    const closed = await scrape(s)
    assert.equal(valueOf(closed, 'holdfast_connections'), 0)
    assert.equal(valueOf(closed, 'holdfast_sessions'), 0)
    assert.equal(valueOf(closed, 'holdfast_subscriptions'), 0)
    assert.equal(valueOf(closed, 'holdfast_channels'), 0)
    assert.equal(valueOf(closed, 'holdfast_disconnects_total', { code: 'abnormal' }), 2, 'terminated sockets close with 1006')
  })

  it('counts bytes and messages out per write, exactly what the clients received', async () => {
    const s = await start()
    const subscribers = [client(s.url), client(s.url, { protocol: 'msgpack' })]
    const received = { bytes: 0, frames: 0 }
    for (const c of subscribers) {
      await c.connect()
      await c.call({ type: 'subscribe', channel: 'bytes' })
      c.ws.on('message', (data: Buffer) => {
        received.bytes += data.byteLength
        received.frames++
      })
    }
    const out0 = { messages: s.gw.counters.messagesOut, bytes: s.gw.counters.bytesOut }
    // Three publications in one turn: coalesced into one frame per subscriber.
    await Promise.all([s.gw.publish('bytes', 'one'), s.gw.publish('bytes', 'two'), s.gw.publish('bytes', { three: 3 })])
    await Promise.all(subscribers.map((c) => c.until(() => c.pubs('bytes').length === 3, 5000, '3 publications')))
    assert.equal(s.gw.counters.messagesOut - out0.messages, 6, 'three messages to each of two subscribers')
    assert.equal(s.gw.counters.bytesOut - out0.bytes, received.bytes)
    assert.equal(received.frames, 2, 'one coalesced write per subscriber')
    assert.equal(s.gw.counters.get('bytes_out'), s.gw.counters.bytesOut, 'the old get() still answers')
  })

  it('times publish-to-delivery once per publication, not per subscriber', async () => {
    const s = await start()
    const subscribers = [client(s.url), client(s.url), client(s.url)]
    for (const c of subscribers) {
      await c.connect()
      await c.call({ type: 'subscribe', channel: 'fan' })
    }
    const publisher = client(s.url)
    await publisher.connect()
    await s.gw.publish('fan', 1)
    await publisher.call({ type: 'publish', channel: 'fan', data: 2, msgId: 'p1' })
    await publisher.call({ type: 'publish', channel: 'fan', data: 2, msgId: 'p1' }) // duplicate: not fanned out
    await s.gw.publish('nobody-listens', 3)
    await Promise.all(subscribers.map((c) => c.until(() => c.pubs('fan').length === 2)))
    const families = await scrape(s)
    assert.equal(valueOf(families, 'holdfast_publish_delivery_seconds', {}, 'holdfast_publish_delivery_seconds_count'), 2)
    const sum = valueOf(families, 'holdfast_publish_delivery_seconds', {}, 'holdfast_publish_delivery_seconds_sum')
    assert.ok(sum > 0 && sum < 1, `sum ${sum} s`)
    assert.equal(s.gw.metrics.delivery.pending, 0, 'nothing left waiting')
  })

  it('reports engine readiness and the circuit state, from isReady() or the engine breaker', async () => {
    let ready = true
    let breaker: 'closed' | 'open' | 'halfOpen' | undefined
    class FlakyEngine extends MemoryEngine {
      override isReady(): boolean {
        return ready
      }
    }
    const engine = new FlakyEngine()
    const gw = createHoldfast({ logger: false, engine, processMetrics: false })
    try {
      await gw.ready()
      const read = async (): Promise<Map<string, Family>> => parseExposition(await gw.metricsText())
      let m = await read()
      assert.equal(valueOf(m, 'holdfast_engine_ready'), 1)
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'closed' }), 1)
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'open' }), 0)
      ready = false
      m = await read()
      assert.equal(valueOf(m, 'holdfast_engine_ready'), 0)
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'open' }), 1)
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'closed' }), 0)
      // An engine with a breaker (the Redis engine) reports its own state, in opossum's words.
      Object.assign(engine, { breakerState: () => breaker ?? 'closed' })
      breaker = 'halfOpen'
      m = await read()
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'half_open' }), 1)
      assert.equal(valueOf(m, 'holdfast_engine_circuit_state', { state: 'open' }), 0)
      // A failing engine call is counted, by operation.
      engine.publish = () => Promise.reject(new Error('boom'))
      await assert.rejects(gw.publish('x', 1))
      m = await read()
      assert.equal(valueOf(m, 'holdfast_engine_errors_total', { op: 'publish' }), 1)
    } finally {
      await gw.close({ drainMs: 0 })
    }
  })

  it('each gateway has its own registry; process metrics are prefixed and can be turned off', async () => {
    const a = createHoldfast({ logger: false })
    const b = createHoldfast({ logger: false, processMetrics: false })
    try {
      await Promise.all([a.ready(), b.ready()])
      await a.publish('only-a', 1)
      const ta = parseExposition(await a.metricsText())
      const tb = parseExposition(await b.metricsText())
      assert.equal(valueOf(ta, 'holdfast_publishes_total', { source: 'api' }), 1)
      assert.equal(valueOf(tb, 'holdfast_publishes_total', { source: 'api' }), 0)
      assert.ok(ta.has('holdfast_process_cpu_seconds_total'))
      assert.ok(ta.has('holdfast_nodejs_eventloop_lag_seconds'))
      assert.ok(![...ta.keys()].some((n) => !n.startsWith('holdfast_')), 'every name carries the prefix')
      assert.ok(![...tb.keys()].some((n) => n.startsWith('holdfast_process_') || n.startsWith('holdfast_nodejs_')))
      assert.equal(a.metrics.contentType, 'text/plain; version=0.0.4; charset=utf-8')
    } finally {
      await Promise.all([a.close({ drainMs: 0 }), b.close({ drainMs: 0 })])
    }
  })

  it('GET /metrics in the CLI app serves the text format', async (t) => {
    const { buildHttpApp } = await import('../../cli/src/http-app.js')
    const holdfast = createHoldfast({ logger: false })
    const app = await buildHttpApp({ holdfast, logger: false })
    t.after(() => app.close())
    await holdfast.publish('cli', 1)
    const res = await app.inject('/metrics')
    assert.equal(res.statusCode, 200)
    assert.match(res.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/)
    const families = parseExposition(res.body)
    assert.equal(valueOf(families, 'holdfast_publishes_total', { source: 'api', duplicate: 'false' }), 1)
    assert.equal(valueOf(families, 'holdfast_connections'), 0)
  })
})

describe('Counters and Distribution', () => {
  it('keeps the old API: inc/get by label, observations, snapshot', () => {
    const c = new Counters()
    c.inc('publishes', 'client')
    c.inc('publishes', 'client', 2)
    c.inc('rpcs')
    c.messagesIn += 5
    assert.equal(c.get('publishes', 'client'), 3)
    assert.equal(c.get('publishes', 'api'), 0)
    assert.equal(c.get('rpcs'), 1)
    assert.equal(c.get('messages_in'), 5)
    c.observe('ping_rtt_ms', 4)
    c.observe('ping_rtt_ms', 10)
    c.observe('command_ms', 1, 'rpc')
    c.observe('command_ms', 3, 'publish')
    assert.deepEqual(c.observations('ping_rtt_ms'), { count: 2, sum: 14, max: 10 })
    assert.deepEqual(c.observations('command_ms', 'publish'), { count: 1, sum: 3, max: 3 })
    assert.deepEqual(c.observations('command_ms'), { count: 2, sum: 4, max: 3 })
    const snap = c.snapshot()
    assert.equal(snap['publishes{client}'], 3)
    assert.equal(snap['rpcs'], 1)
    assert.equal(snap['messages_in'], 5)
  })

  it('a distribution counts each value in the first bucket whose bound holds it', () => {
    const d = new Distribution([1, 5, 10])
    for (const v of [0, 1, 1.5, 5, 7, 10, 11, 1000, -3]) d.observe(v)
    assert.deepEqual([...d.buckets], [3, 2, 2, 2]) // <=1: 0, 1, -3 (as 0); <=5: 1.5, 5; <=10: 7, 10; above: 11, 1000
    assert.equal(d.count, 9)
    assert.equal(d.sum, 0 + 1 + 1.5 + 5 + 7 + 10 + 11 + 1000 + 0)
    assert.throws(() => new Distribution([5, 1]), TypeError)
  })

  it('histograms are exported cumulative, in seconds, with +Inf, sum and count', async () => {
    const gw = createHoldfast({ logger: false, processMetrics: false })
    try {
      for (const ms of [0.5, 3, 30, 20_000]) gw.counters.observe('ping_rtt_ms', ms)
      const f = parseExposition(await gw.metricsText())
      const bucket = (le: string): number => valueOf(f, 'holdfast_ping_rtt_seconds', { le }, 'holdfast_ping_rtt_seconds_bucket')
      assert.equal(bucket('0.001'), 1)
      assert.equal(bucket('0.005'), 2)
      assert.equal(bucket('0.05'), 3)
      assert.equal(bucket('10'), 3)
      assert.equal(bucket('+Inf'), 4)
      assert.equal(valueOf(f, 'holdfast_ping_rtt_seconds', {}, 'holdfast_ping_rtt_seconds_count'), 4)
      assert.ok(Math.abs(valueOf(f, 'holdfast_ping_rtt_seconds', {}, 'holdfast_ping_rtt_seconds_sum') - 20.0335) < 1e-9)
    } finally {
      await gw.close({ drainMs: 0 })
    }
  })
})

describe('DeliveryTimer', () => {
  const pub = (offset: number, epoch = 'e'): StreamPublication => ({ offset, epoch, data: null })
  const outcome = (offset: number, duplicate = false, epoch = 'e'): PublishOutcome => ({ offset, epoch, duplicate })

  it('delivered inside the publish call (memory engine): timed once, nothing left', () => {
    const seen: number[] = []
    const t = new DeliveryTimer((ms) => seen.push(ms))
    const p = t.start('c')
    t.delivered('c', pub(1))
    t.delivered('c', pub(1)) // a repeat is not timed twice
    t.stored(p, outcome(1), true)
    assert.equal(seen.length, 1)
    assert.equal(t.pending, 0)
  })

  it('delivered after the publish resolved (Redis): matched by offset, not by order', () => {
    const seen: number[] = []
    const t = new DeliveryTimer((ms) => seen.push(ms))
    const a = t.start('c')
    const b = t.start('c')
    t.stored(b, outcome(7), true)
    t.stored(a, outcome(8), true)
    t.delivered('c', pub(7))
    assert.equal(seen.length, 1)
    assert.equal(t.pending, 1)
    t.delivered('c', pub(9)) // someone else's publication: nothing of ours
    assert.equal(seen.length, 1)
    t.delivered('c', pub(8))
    assert.equal(seen.length, 2)
    assert.equal(t.pending, 0)
  })

  it('duplicates, publishes without local subscribers and failures are forgotten at once', () => {
    const t = new DeliveryTimer(() => assert.fail('nothing may be timed'))
    t.stored(t.start('c'), outcome(1, true), true)
    t.stored(t.start('c'), outcome(2), false)
    t.failed(t.start('c'))
    assert.equal(t.pending, 0)
    t.delivered('c', pub(2))
  })

  it('deliveries that never come are swept, so nothing piles up', async () => {
    const t = new DeliveryTimer(() => {}, 30)
    for (let i = 1; i <= 100; i++) t.stored(t.start('lossy'), outcome(i), true)
    assert.equal(t.pending, 100)
    await new Promise((r) => setTimeout(r, 40))
    t.start('other')
    assert.equal(t.pending, 1)
  })
})

// ---------------------------------------------------------------- promtool

/**
 * promtool ships with the Debian package `prometheus`, which .ci/run installs: in CI a missing
 * promtool is a failure; elsewhere the test is skipped with a message.
 */
function promtool(): string | undefined {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' })
  if (probe.error === undefined && probe.status === 0) return 'promtool'
  if (process.env['CI'] === 'true') assert.fail('promtool is missing in CI: .ci/run installs the Debian package prometheus')
  return undefined
}

describe('Prometheus rules (promtool)', () => {
  const tool = promtool()
  const skip = tool === undefined ? 'promtool not installed (apt-get install prometheus); skipping' : false

  it('promtool check rules accepts deploy/prometheus/holdfast-alerts.yml', { skip }, () => {
    const r = spawnSync(tool as string, ['check', 'rules', 'holdfast-alerts.yml'], { cwd: RULES_DIR, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /SUCCESS: 5 rules found/)
  })

  it('promtool test rules: each alert fires on a bad series and not on a healthy one', { skip }, () => {
    const r = spawnSync(tool as string, ['test', 'rules', 'holdfast-alerts.test.yml'], { cwd: RULES_DIR, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /SUCCESS/)
  })

  it('the alert rules only use metrics that docs/metrics.md lists', () => {
    const doc = new Set(parseDoc(readFileSync(DOC, 'utf8')).map((d) => d.name))
    const rules = readFileSync(`${RULES_DIR}/holdfast-alerts.yml`, 'utf8')
    const used = new Set([...rules.matchAll(/\b(holdfast_[a-z0-9_]+)/g)].map((m) => (m[1] as string).replace(/_(bucket|sum|count)$/, '')))
    assert.ok(used.size >= 6)
    for (const name of used) {
      assert.ok(doc.has(name) || [...doc].some((d) => d.endsWith('*') && name.startsWith(d.slice(0, -1))), `${name} is not documented`)
    }
  })

  it('promtool check metrics finds nothing to lint in our own metrics', { skip }, async () => {
    const gw = createHoldfast({ logger: false })
    try {
      await gw.publish('lint', 1)
      gw.counters.observe('command_ms', 1, 'publish')
      const r = spawnSync(tool as string, ['check', 'metrics'], { input: await gw.metricsText(), encoding: 'utf8' })
      // prom-client's own default metrics (holdfast_nodejs_active_handles_total is a gauge) are not ours to rename.
      const ours = (r.stdout + r.stderr)
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^holdfast_(nodejs|process)_/.test(l))
      assert.deepEqual(ours, [])
    } finally {
      await gw.close({ drainMs: 0 })
    }
  })
})
