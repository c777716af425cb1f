/**
 * The failover scenario shared by kill -9 (node-kill.chaos.ts) and SIGSTOP (node-stop.chaos.ts):
 * three `serve --engine redis` nodes, subscribers that all start on the victim n1 (their URL
 * lists are [n1, n2, n3] or [n1, n3, n2], so they land on both survivors), one publisher on the
 * victim (its publishes in flight must be resent elsewhere and deduplicated across nodes) and one
 * on a survivor. The fault is applied to n1 while they publish; the scenario waits until every
 * subscriber has resubscribed on a survivor and recovered, publishes on, and checks the history.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import type { ClientOptions } from '@holdfast/client'
import { DEEP_HISTORY, makeClient, OPEN_LIMITS, sleep, startFleet, type ServeNode } from './harness.js'
import { AppLog, checkHistory, drain, now, Publisher, type Ack, type CheckReport } from './history.js'

export interface FailoverOptions {
  redisUrl: string
  subscribers: number
  channels: number
  /** Server options for every node (heartbeat intervals). */
  config?: Record<string, unknown>
  client?: ClientOptions
  /**
   * Apply the fault to the victim; resolves when the fault is over (at once for a kill; after the
   * thaw and the node's recovery for a freeze). The history is checked only after that, so that
   * anything a thawed node still does with what it read before it froze is in it.
   */
  fault: (victim: ServeNode) => Promise<void>
}

export interface FailoverOutcome {
  report: CheckReport
  logs: AppLog[]
  acks: Ack[]
  faultAt: number
  /** Per subscriber, ms from the fault to its first disconnect and to its recovering resubscribe. */
  detectMs: number[]
  resubscribedMs: number[]
  victim: ServeNode
  nodes: ServeNode[]
}

export async function failover(t: TestContext, o: FailoverOptions): Promise<FailoverOutcome> {
  const nodes = await startFleet(t, o.redisUrl, 3, { config: { ...OPEN_LIMITS, ...DEEP_HISTORY, ...o.config } })
  const [n1, n2, n3] = nodes
  assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined)
  const channels = Array.from({ length: o.channels }, (_, i) => `failover:${i}`)
  const logs = Array.from({ length: o.subscribers }, (_, i) => {
    const urls = i % 2 === 0 ? [n1.wsUrl, n2.wsUrl, n3.wsUrl] : [n1.wsUrl, n3.wsUrl, n2.wsUrl]
    const c = makeClient(t, urls, o.client, { localAddress: `127.0.0.${2 + (i % 8)}` })
    const log = new AppLog(c, `s${i}`, channels[i % channels.length] as string)
    c.connect()
    return log
  })
  await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 20_000)))
  assert.ok(
    logs.every((l) => l.node === 'n1'),
    'every subscriber starts on the victim',
  )
  const publishers = [
    new Publisher(makeClient(t, [n1.wsUrl, n2.wsUrl, n3.wsUrl], o.client), 'p-victim'),
    new Publisher(makeClient(t, [n2.wsUrl, n3.wsUrl], o.client), 'p-survivor'),
  ]
  for (const [i, p] of publishers.entries()) {
    p.client.connect()
    p.start(i === 0 ? channels : [...channels].reverse(), 25)
  }
  await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 10, 15_000)))

  const faultAt = now()
  const over = o.fault(n1)
  await Promise.all(
    logs.map((l) =>
      l.until('a recovering resubscribe on a survivor', () => l.subscribes.some((s) => s.at > faultAt && s.wasRecovering) && l.node !== 'n1', 30_000),
    ),
  )
  await over
  // Publish on after the failover, so that recovery had to merge with the live feed.
  await sleep(2000)
  const acks: Ack[] = []
  for (const p of publishers) acks.push(...(await p.stop(20_000)))
  assert.deepEqual(
    publishers.flatMap((p) => p.errors),
    [],
    'every publish was acked',
  )
  await drain(logs, acks, 20_000)
  const report = checkHistory(acks, logs)
  const detectMs = logs.map((l) => (l.disconnects.find((d) => d.at > faultAt)?.at ?? Number.NaN) - faultAt)
  const resubscribedMs = logs.map((l) => (l.subscribes.find((s) => s.at > faultAt && s.wasRecovering)?.at ?? Number.NaN) - faultAt)
  return { report, logs, acks, faultAt, detectMs, resubscribedMs, victim: n1, nodes }
}
