/**
 * Scenario 9 — resource exhaustion (issue #12): twenty hostile connections at once beside
 * well-behaved clients, on one `serve` node with its default limits.
 *
 * Ten subscribers and a publisher (50/s) use the node normally, first alone (the baseline), then
 * while a separate process runs every attack of the security review at once for 15 s: reads of a
 * channel subscribe refuses, replies it never reads (pongs answered blindly), channel churn,
 * history filling, message-id floods, pong floods, large publications at the command rate, bytes
 * that grow in JSON, and TCP connections that never speak HTTP.
 *
 * Every attack must end the way docs/security.md says; the node's resident memory must stay
 * within the documented bound above its baseline; the well-behaved clients must lose nothing, never
 * be disconnected, and keep their delivery p99 within 2x their p99 alone, or that plus FLOOR_MS
 * (the scheduling of three busy processes on a shared 2-core machine; see below).
 */
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { setPriority } from 'node:os'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { latency, makeClient, metric, result, round, sleep, startSingle, within } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, now, Publisher, summary } from './history.js'
import type { ExhaustionMessage, ExhaustionRun, Outcomes } from './exhaustion-client.js'

const API_KEY = 'exhaustion-api-key-0123456789'
const FEED = 'feed'
const BULK = 'bulk'
const SECRET = 'vault#boss'
const HEAVY = 'heavy'
const SUBSCRIBERS = 10
const BASELINE_MS = 4000
const ATTACK_MS = 15_000
/**
 * RSS the attack may add to the node (docs/security.md, "What one node holds"): 20 connections ×
 * (maxQueueBytes + 2 × maxReplyBytes) = 60 MiB, what 15 s of the byte rate lets three history
 * fillers store (3 × 256 KiB/s × 15 s ≈ 12 MiB), message ids and presence, and the garbage the
 * collector has not yet returned.
 */
const RSS_BOUND_MB = 200
/** The target: p99 under attack at most twice the p99 alone. */
const FACTOR = 2
/**
 * What the p99 may add beyond that on a shared 2-core machine: the attacker, the node and the
 * measuring clients are three busy processes on two cores, beside whatever else the machine runs.
 * Measured (docs/reliability.md, scenario 10): 13.5-21 ms under attack against 5.7-9.6 ms alone on
 * a quiet machine, 144 ms with other work running (load average 9-11); with the attacker at the
 * lowest CPU priority, 6.4-12.8 ms against 4.3-5.8 ms on a quiet machine. The node as it was before
 * replies reused their publications' encodings measured 200-240 ms on a quiet machine and fails
 * here. Under heavier load from other work (average 15) the scenario measures the machine, not
 * the node, and fails at any bound that means something.
 */
const FLOOR_MS = 150

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? Number.NaN : Number(m[1]) / 1024
}

async function apiPublish(base: string, channel: string, data: unknown): Promise<void> {
  const res = await fetch(`${base}/api/publish`, {
    method: 'POST',
    headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  })
  if (res.status !== 200) throw new Error(`publish ${channel}: HTTP ${res.status} ${await res.text()}`)
}

/** What docs/security.md promises for each attack (every outcome seen must be one of these). */
const EXPECTED: Record<string, readonly string[]> = {
  'read-bypass': [`error ${ErrorCodes.permission_denied.code}`],
  // The node closes the stalled socket (4003, seen as 1006 by a client that reads nothing), or refuses reads (110).
  'reply-amplification': ['closed 1006', 'closed 4003', `error ${ErrorCodes.rate_limited.code}`],
  // 106: past maxSubscriptionsPerConnection (the churn forgets some unsubscribes); 113: the
  // unsubscribe of a channel whose subscribe was refused (not_subscribed, docs/protocol.md).
  churn: ['ok', `error ${ErrorCodes.rate_limited.code}`, `error ${ErrorCodes.limit_exceeded.code}`, `error ${ErrorCodes.not_subscribed.code}`, 'closed 4002'],
  'history-fill': ['ok', `error ${ErrorCodes.rate_limited.code}`, 'closed 4002'],
  'id-flood': ['ok', `error ${ErrorCodes.rate_limited.code}`, `error ${ErrorCodes.limit_exceeded.code}`, 'closed 4002'],
  'pong-flood': ['closed 4002'],
  'byte-flood': ['ok', `error ${ErrorCodes.rate_limited.code}`, 'closed 4002'],
  'bin-growth': [`error ${ErrorCodes.payload_too_large.code}`],
  'idle-tcp': ['tcp closed'],
}

describe('chaos: resource exhaustion', () => {
  it('twenty hostile connections running every attack at once: bounded memory, documented outcomes, and the others lose nothing', async (t) => {
    const node = await startSingle(t, { pingIntervalMs: 2000, pongTimeoutMs: 2000 }, ['--api-key', API_KEY])
    await apiPublish(node.url, SECRET, { secret: 'the launch codes' })
    for (let i = 0; i < 300; i++) await apiPublish(node.url, HEAVY, { i, blob: 'x'.repeat(60_000) })

    const logs = Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const c = makeClient(t, node.wsUrl, {}, { localAddress: '127.0.0.2' })
      const log = new AppLog(c, `s${i}`, FEED)
      c.connect()
      return log
    })
    // The byte flood's audience: they must keep up, not be evicted. (Kept apart from the clients
    // whose latency is measured: parsing its megabytes is their own work, not the node's.)
    const bulkReaders = Array.from({ length: 3 }, () => {
      const c = makeClient(t, node.wsUrl, {}, { localAddress: '127.0.0.4' })
      const closes: number[] = []
      c.on('state', ({ to, reason }) => {
        if (to === 'disconnected') closes.push(reason.code)
      })
      c.subscribe(BULK)
      c.connect()
      return closes
    })
    await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const publisher = new Publisher(makeClient(t, node.wsUrl, {}, { localAddress: '127.0.0.3' }), 'p0')
    publisher.client.connect()
    publisher.start([FEED], 20)
    await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 20, 10_000)))

    const baseFrom = now()
    let rssBase = Number.POSITIVE_INFINITY
    for (let waited = 0; waited < BASELINE_MS; waited += 250) {
      rssBase = Math.min(rssBase, rssMb(node.pid))
      await sleep(250)
    }
    const baseTo = now()

    const attacker = fork(fileURLToPath(new URL('./exhaustion-client.ts', import.meta.url)), [], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    t.after(() => void attacker.kill('SIGKILL'))
    const done = new Promise<Outcomes>((resolve, reject) => {
      attacker.on('message', (m: ExhaustionMessage) => (m.type === 'done' ? resolve(m.outcomes) : reject(new Error(`attacker: ${m.message}`))))
      attacker.on('exit', (code) => reject(new Error(`the attacker exited (${code})`)))
    })
    await new Promise<void>((resolve) => attacker.once('spawn', () => resolve()))
    // An attacker is on machines of its own; here it shares two cores with the node and the
    // measuring clients. At the lowest CPU priority it takes the CPU they leave, not theirs: what
    // reaches the node is the same (the attack volumes are reported and each attack must meet its
    // bound), but the latency measured is the node's, not the attacker's processes' share of the box.
    setPriority(attacker.pid as number, 19)
    const attackFrom = now()
    attacker.send({ type: 'run', url: node.wsUrl, port: node.port, durationMs: ATTACK_MS, secretChannel: SECRET, heavyChannel: HEAVY, bulkChannel: BULK } satisfies ExhaustionRun)
    let rssPeak = 0
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssMb(node.pid))
    }, 100)
    let outcomes: Outcomes
    try {
      // Idle TCP sockets opened near the end take the header timeout to be let go.
      outcomes = await within(ATTACK_MS + 40_000, 'the attacker to finish', done)
    } finally {
      clearInterval(sampler)
    }
    const attackTo = now()
    const lagMaxMs = 1000 * (await metric(node.url, 'holdfast_nodejs_eventloop_lag_max_seconds'))
    const lagP99Ms = 1000 * (await metric(node.url, 'holdfast_nodejs_eventloop_lag_p99_seconds'))
    t.diagnostic(`the node's event loop lag: p99 ${round(lagP99Ms)} ms, max ${round(lagMaxMs)} ms (since it started)`)

    await sleep(1000)
    const acks = await publisher.stop(10_000)
    await drain(logs, acks, 15_000)
    const report = checkHistory(acks, logs)
    t.diagnostic(summary(report))
    t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`)
    const window = (from: number, to: number): number[] => logs.flatMap((l) => l.pubs.filter((p) => p.at >= from && p.at <= to).map((p) => p.at - p.sentAt))
    const base = latency(window(baseFrom, baseTo))
    const attacked = latency(window(attackFrom, attackTo))
    const limit = Math.max(FACTOR * base.p99, base.p99 + FLOOR_MS)
    const rssGrowth = rssPeak - rssBase
    t.diagnostic(`RSS: ${round(rssBase)} MB before, peak ${round(rssPeak)} MB under attack (+${round(rssGrowth)} MB, bound +${RSS_BOUND_MB} MB)`)
    t.diagnostic(`well-behaved clients' latency: alone ${JSON.stringify(base)}, under attack ${JSON.stringify(attacked)} (limit p99 ${round(limit)} ms)`)
    result(t, 'exhaustion', {
      hostileConnections: 20,
      attacks: Object.fromEntries(Object.entries(outcomes).map(([k, v]) => [k, Object.values(v).reduce((a, b) => a + b, 0)])),
      rssMb: { before: round(rssBase), peak: round(rssPeak), bound: round(rssBase + RSS_BOUND_MB) },
      p99Ms: { alone: base.p99, underAttack: attacked.p99, limit: round(limit) },
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })

    for (const [attack, allowed] of Object.entries(EXPECTED)) {
      const got = outcomes[attack] ?? {}
      assert.ok(Object.keys(got).length > 0, `${attack} was tried`)
      // Any connection that does not answer a ping in time is dropped (4005, seen as 1006 when the
      // node terminates it): an attacker starved of CPU by its own floods may be, whatever it does.
      const anyAttack = ['closed 4005', 'closed 1006']
      for (const outcome of Object.keys(got)) {
        assert.ok(allowed.includes(outcome) || anyAttack.includes(outcome), `${attack}: outcome "${outcome}" is not one of ${allowed.join(', ')} (${JSON.stringify(got)})`)
      }
    }
    // Each attack met its bound at least once (not merely succeeded within it).
    assert.ok((outcomes['reply-amplification']?.['closed 1006'] ?? 0) + (outcomes['reply-amplification']?.['closed 4003'] ?? 0) > 0, 'a stalled reader was closed')
    assert.ok((outcomes['byte-flood']?.[`error ${ErrorCodes.rate_limited.code}`] ?? 0) > 0, 'the byte flood met the byte rate')
    assertClean(report)
    for (const l of logs) assert.deepEqual(l.disconnects, [], `${l.client} was never disconnected`)
    for (const closes of bulkReaders) assert.deepEqual(closes, [], 'the byte flood evicted no reader of its channel')
    assert.ok(rssGrowth <= RSS_BOUND_MB, `RSS grew by ${round(rssGrowth)} MB (bound ${RSS_BOUND_MB} MB)`)
    assert.ok(attacked.p99 <= limit, `p99 under attack ${attacked.p99} ms <= ${round(limit)} ms (alone ${base.p99} ms)`)
  })
})
