/**
 * The Redis failover scenario shared by the Sentinel, failover-endpoint and Cluster chaos files:
 * two `serve --engine redis` nodes, subscribers spread over both, two publishers (one per node)
 * publishing without waiting for acks (the SDK queues and retries through the outage), a fault
 * applied to Redis under that load, then: every node ready again, publishing on, every publish
 * acknowledged, and the whole history held to the checker (test/chaos/history.ts).
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { DEEP_HISTORY, makeClient, OPEN_LIMITS, rotate, sleep, startFleet, until, type ServeNode } from './harness.js'
import { AppLog, checkHistory, drain, Publisher, type Ack, type CheckReport } from './history.js'

export interface RedisFailoverOptions {
  redisUrl: string
  channels: string[]
  subscribers: number
  durability: 'none' | 'replicated'
  /** Publish period of each publisher, ms. */
  everyMs: number
  /** Apply the fault; resolves, when Redis is whole again, with the moment of the fault itself (`now()` at the kill). */
  fault: () => Promise<number>
  /** Publishing after the nodes are ready again, ms. @default 2000 */
  afterMs?: number
}

export interface RedisFailoverOutcome {
  report: CheckReport
  logs: AppLog[]
  acks: Ack[]
  /** `now()` when the fault happened (the kill, after any stall before it). */
  faultAt: number
  /** When every node answered /readyz 200 again. */
  readyAt: number
  nodes: ServeNode[]
  /** Publish errors the SDK surfaced (none expected: it retries temporary errors). */
  errors: string[]
}

/** A client backoff short enough to keep retries close to the recovery. */
const CLIENT = { minReconnectDelayMs: 100, maxReconnectDelayMs: 1000 }

export async function redisFailover(t: TestContext, o: RedisFailoverOptions): Promise<RedisFailoverOutcome> {
  const config = {
    ...OPEN_LIMITS,
    channels: { default: { ...DEEP_HISTORY.channels.default, durability: o.durability } },
  }
  const nodes = await startFleet(t, o.redisUrl, 2, { config })
  const urls = nodes.map((n) => n.wsUrl)
  const logs = Array.from({ length: o.subscribers }, (_, i) => {
    const c = makeClient(t, rotate(urls, i), CLIENT)
    const log = new AppLog(c, `s${i}`, o.channels[i % o.channels.length] as string)
    c.connect()
    return log
  })
  await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 20_000)))
  const publishers = urls.map((_, i) => {
    const p = new Publisher(makeClient(t, rotate(urls, i), CLIENT), `p${i}`)
    p.client.connect()
    p.start(rotate(o.channels, i), o.everyMs)
    return p
  })
  await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 10, 20_000)))

  const faultAt = await o.fault()
  await until('every node to be ready again', async () => (await Promise.all(nodes.map((n) => n.readyz().catch(() => 0)))).every((c) => c === 200), 30_000, 50)
  const readyAt = performance.timeOrigin + performance.now()
  await sleep(o.afterMs ?? 2000)
  const acks: Ack[] = []
  for (const p of publishers) acks.push(...(await p.stop(30_000)))
  const errors = publishers.flatMap((p) => p.errors)
  const short = await drain(logs, acks, 20_000)
  assert.ok(acks.length > 0)
  return { report: checkHistory(acks, logs), logs, acks, faultAt, readyAt, nodes, errors: [...errors, ...short.map((l) => `${l.client} did not catch up`)] }
}

/**
 * ms from the fault to the first acknowledgement of a publication stored after it: one in an epoch
 * that no ack had before the fault, or — when nothing could be acknowledged between the stall and
 * the fault (durability 'replicated') — any ack after it.
 */
export function firstAckAfter(acks: readonly Ack[], at: number, anyEpoch: boolean): number {
  const before = new Set(acks.filter((a) => a.at <= at).map((a) => a.epoch))
  const after = acks.filter((a) => a.at > at && (anyEpoch || !before.has(a.epoch))).map((a) => a.at)
  return after.length === 0 ? Number.NaN : Math.min(...after) - at
}

/** The anomalies the checker may never find, whatever Redis lost: a loss must always be told. */
export function silentAnomalies(r: CheckReport): number {
  return r.lost + r.duplicated + r.outOfOrder + r.silentGaps + r.unacked + r.mismatched + r.ackAnomalies
}

/**
 * Acknowledged publications given an offset that an earlier epoch of their channel had already
 * given out: what a subscriber deduplicating by offset would have dropped, had the epoch not
 * changed (the measurement: 57 of 600).
 */
export function reusedOffsets(acks: readonly Ack[]): number {
  let reused = 0
  for (const ch of new Set(acks.map((a) => a.channel))) {
    const mine = acks.filter((a) => a.channel === ch).sort((a, b) => a.at - b.at)
    const epochs = [...new Set(mine.map((a) => a.epoch))]
    for (let i = 1; i < epochs.length; i++) {
      const before = Math.max(...mine.filter((a) => epochs.slice(0, i).includes(a.epoch)).map((a) => a.offset))
      reused += mine.filter((a) => a.epoch === epochs[i] && a.offset <= before).length
    }
  }
  return reused
}
