/**
 * Scenario 8 — a hostile client beside well-behaved ones.
 *
 * One node; ten subscribers and a publisher (50/s) use it normally, first alone (the baseline),
 * then while a separate process attacks it on four connections at a time for 10 s: garbage
 * frames, invalid JSON, a frame header declaring a terabyte, frames past the frame limit, data
 * past maxPayload, command floods, batch bombs, a MessagePack length bomb, connections that never
 * send `connect`, frames stalled halfway, and bytes that are not HTTP at all.
 *
 * Every attack must end the way docs/protocol.md says (the close code table, error codes, or an
 * HTTP status), the well-behaved clients must lose nothing and never be disconnected, and their
 * p99 delivery latency during the attack must stay within a generous factor of the baseline.
 */
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { CloseCodes, ErrorCodes } from '@holdfast/protocol'
import { DEEP_HISTORY, latency, makeClient, result, round, sleep, startSingle, within } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, now, Publisher, summary } from './history.js'
import type { HostileMessage, HostileRun, Outcomes } from './hostile-client.js'

const CHANNEL = 'hostile:feed'
const SUBSCRIBERS = 10
const BASELINE_MS = 5000
const ATTACK_MS = 10_000
/** Short heartbeats and connect timeout, so that stalled and silent connections end within the run. */
const NODE = {
  pingIntervalMs: 2000,
  pongTimeoutMs: 2000,
  connectTimeoutMs: 2000,
  // The attacker opens hundreds of connections from 127.0.0.1; the per-IP caps are another
  // scenario's subject. The command rate keeps its default (100/s, burst 200): floods must meet it.
  maxConnectionsPerIp: 1_000_000,
  connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
  ...DEEP_HISTORY,
}
const FACTOR = 10
const FLOOR_MS = 300

/** What docs/protocol.md promises for each attack. */
const EXPECTED: Record<string, string> = {
  'garbage-frame': String(CloseCodes.bad_request.code),
  'invalid-json': String(CloseCodes.bad_request.code),
  'huge-declared-length': String(CloseCodes.message_too_big.code),
  'oversized-frame': String(CloseCodes.message_too_big.code),
  'oversized-data': `error ${ErrorCodes.payload_too_large.code}`,
  'command-flood': String(CloseCodes.rate_limited.code),
  'batch-bomb': String(CloseCodes.bad_request.code),
  'msgpack-bomb': String(CloseCodes.bad_request.code),
  'no-connect': String(CloseCodes.connect_timeout.code),
  'stalled-frame': String(CloseCodes.heartbeat_timeout.code),
  'not-http': 'http 400',
}

describe('chaos: a hostile client', () => {
  it('malformed, oversized and flooding connections get their documented codes; the others lose nothing and keep their latency', async (t) => {
    const node = await startSingle(t, NODE)
    const logs = Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const c = makeClient(t, node.wsUrl)
      const log = new AppLog(c, `s${i}`, CHANNEL)
      c.connect()
      return log
    })
    await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const publisher = new Publisher(makeClient(t, node.wsUrl), 'p0')
    publisher.client.connect()
    publisher.start([CHANNEL], 20)
    await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 20, 10_000)))

    const baseFrom = now()
    await sleep(BASELINE_MS)
    const baseTo = now()

    const attacker = fork(fileURLToPath(new URL('./hostile-client.ts', import.meta.url)), [], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    t.after(() => void attacker.kill('SIGKILL'))
    const done = new Promise<{ outcomes: Outcomes; attacks: number }>((resolve, reject) => {
      attacker.on('message', (m: HostileMessage) => (m.type === 'done' ? resolve(m) : reject(new Error(`hostile client: ${m.message}`))))
      attacker.on('exit', (code) => reject(new Error(`the hostile client exited (${code})`)))
    })
    await new Promise<void>((resolve) => attacker.once('spawn', () => resolve()))
    const attackFrom = now()
    attacker.send({ type: 'run', url: node.wsUrl, port: node.port, durationMs: ATTACK_MS, concurrency: 4 } satisfies HostileRun)
    // The attack loops stop starting attacks after ATTACK_MS; the slowest (a stalled frame) ends within ~5 s.
    const { outcomes, attacks } = await within(ATTACK_MS + 30_000, 'the hostile client to finish', done)
    const attackTo = now()

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
    t.diagnostic(`well-behaved clients' latency: alone ${JSON.stringify(base)}, under attack ${JSON.stringify(attacked)} (limit p99 ${round(limit)} ms)`)
    result(t, 'hostile', {
      attacks,
      kinds: Object.keys(outcomes).length,
      p99Ms: { alone: base.p99, underAttack: attacked.p99, limit: round(limit) },
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })

    for (const [attack, expected] of Object.entries(EXPECTED)) {
      const got = outcomes[attack] ?? {}
      assert.ok(Object.keys(got).length > 0, `${attack} was tried`)
      assert.deepEqual(Object.keys(got), [expected], `${attack}: every attempt ended with ${expected} (${JSON.stringify(got)})`)
    }
    assertClean(report)
    for (const l of logs) assert.deepEqual(l.disconnects, [], `${l.client} was never disconnected`)
    assert.ok(attacked.p99 <= limit, `p99 under attack ${attacked.p99} ms <= ${round(limit)} ms (alone ${base.p99} ms)`)
  })
})
