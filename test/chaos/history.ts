/**
 * The Jepsen-style history of a chaos scenario and its checker.
 *
 * Two logs make up a history: every acknowledged publish (who published it, its sequence number,
 * and the `{epoch, offset}` the server's ack gave it) and, per subscriber and channel, everything
 * the application saw, in the order it saw it (publications and `subscribed` events, which say
 * whether a resubscribe recovered). The checker runs after the faults are healed and every
 * publish is acknowledged, and holds the logs to the product's guarantees:
 *
 * - nothing acknowledged is lost: every acked publication after a subscriber's starting position
 *   reached it, unless a `recovered: false` declared the loss (never a silent gap);
 * - nothing is delivered twice to the app, and offsets only increase within an epoch;
 * - every delivery is an acknowledged publication, with the data stored at that offset;
 * - acks themselves are sane: no two publishes acked at one offset, and each publisher's
 *   publications to a channel land in the order it issued them (its outbox is FIFO).
 *
 * Everything here is plain data and pure functions, so client processes (the reconnect storm)
 * can check their own clients against acks sent to them and report only the counts.
 *
 * The one stream checker of the repository: the chaos scenarios and the multi-node tests
 * (test/multinode, through `assertExactlyOnce`) both hold their histories to it.
 */
import assert from 'node:assert/strict'
import type { HoldfastClient, Subscription } from '@holdfast/client'
import { Waiters } from '../support/waiters.js'

/** Wall-clock ms with sub-ms precision, comparable between processes of one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now()
}

/** What every test publication carries: its publisher, its number there, and when it was issued. */
export interface Tag {
  pub: string
  seq: number
  /** `now()` at publish, for delivery latency. */
  t: number
}

export function isTag(v: unknown): v is Tag {
  return typeof v === 'object' && v !== null && typeof (v as Tag).pub === 'string' && typeof (v as Tag).seq === 'number' && typeof (v as Tag).t === 'number'
}

/** One acknowledged publish. */
export interface Ack {
  pub: string
  seq: number
  channel: string
  epoch: string
  offset: number
  /** `now()` when the ack arrived. */
  at: number
}

export type AppEvent =
  | { kind: 'pub'; epoch: string; offset: number; pub: string; seq: number; sentAt: number; at: number }
  | { kind: 'subscribed'; recovered: boolean; wasRecovering: boolean; epoch: string; offset: number; at: number }

/** What one subscriber's application saw on one channel, in order. */
export interface AppHistory {
  client: string
  channel: string
  events: AppEvent[]
}

/**
 * Records what the application sees on one subscription, plus the client's connection events.
 * Listeners are attached before anything can arrive, so the log is complete from the first event.
 */
export class AppLog implements AppHistory {
  readonly client: string
  readonly channel: string
  readonly events: AppEvent[] = []
  readonly connects: Array<{ at: number; node: string; client: string; resumed: boolean }> = []
  readonly disconnects: Array<{ at: number; code: number }> = []
  /** Publications that did not carry a Tag (never expected). */
  foreign = 0
  readonly sub: Subscription
  readonly #waiters = new Waiters()

  constructor(client: HoldfastClient, name: string, channel: string) {
    this.client = name
    this.channel = channel
    this.sub = client.subscribe(channel)
    this.sub.on('publication', (p) => {
      if (isTag(p.data)) this.events.push({ kind: 'pub', epoch: p.epoch, offset: p.offset, pub: p.data.pub, seq: p.data.seq, sentAt: p.data.t, at: now() })
      else this.foreign++
      this.#notify()
    })
    this.sub.on('subscribed', (e) => {
      this.events.push({ kind: 'subscribed', recovered: e.recovered, wasRecovering: e.wasRecovering, epoch: e.epoch, offset: e.offset, at: now() })
      this.#notify()
    })
    client.on('connected', (e) => {
      this.connects.push({ at: now(), node: e.node, client: e.client, resumed: e.resumed })
      this.#notify()
    })
    client.on('disconnected', (e) => {
      this.disconnects.push({ at: now(), code: e.reason.code })
      this.#notify()
    })
  }

  get subscribes(): Array<Extract<AppEvent, { kind: 'subscribed' }>> {
    return this.events.filter((e): e is Extract<AppEvent, { kind: 'subscribed' }> => e.kind === 'subscribed')
  }

  get pubs(): Array<Extract<AppEvent, { kind: 'pub' }>> {
    return this.events.filter((e): e is Extract<AppEvent, { kind: 'pub' }> => e.kind === 'pub')
  }

  /** The node of the current connection. */
  get node(): string | undefined {
    return this.connects.at(-1)?.node
  }

  /** true once this log holds the publication acked at `ack`. */
  has(ack: Pick<Ack, 'epoch' | 'offset'>): boolean {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i] as AppEvent
      if (e.kind === 'pub' && e.epoch === ack.epoch && e.offset === ack.offset) return true
    }
    return false
  }

  /** Resolve when publication #`seq` (of publisher `pub`, or of any) has arrived. */
  untilSeq(seq: number, ms: number, pub?: string): Promise<void> {
    return this.until(`publication #${seq}`, () => this.events.some((e) => e.kind === 'pub' && e.seq === seq && (pub === undefined || e.pub === pub)), ms)
  }

  /** Resolve when `cond()` holds (checked after every event); reject after `ms` naming `what`. */
  until(what: string, cond: () => boolean, ms: number): Promise<void> {
    return this.#waiters.until(cond, ms, () => `${this.client}/${this.channel}: timed out after ${ms} ms waiting for ${what} (${this.pubs.length} publications, last ${JSON.stringify(this.pubs.at(-1))})`)
  }

  #notify(): void {
    this.#waiters.notify()
  }
}

/**
 * Publishes Tags through one client without waiting for acks (the SDK queues and retries through
 * outages) and logs every ack. `stop()` waits until every issued publish is acked.
 */
export class Publisher {
  readonly name: string
  readonly client: HoldfastClient
  readonly acks: Ack[] = []
  readonly errors: string[] = []
  readonly #pending = new Set<Promise<void>>()
  #seq = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(client: HoldfastClient, name: string) {
    this.client = client
    this.name = name
    // A failed test closes its clients in its cleanup: the publishing timer must go with them, or
    // it would keep the test process alive.
    client.on('state', ({ to }) => {
      if (to === 'closed') clearInterval(this.#timer)
    })
  }

  get issued(): number {
    return this.#seq
  }

  get pending(): number {
    return this.#pending.size
  }

  publish(channel: string, pad = ''): void {
    const seq = ++this.#seq
    const tag: Tag & { pad?: string } = pad === '' ? { pub: this.name, seq, t: now() } : { pub: this.name, seq, t: now(), pad }
    const p = this.client.publish(channel, tag).then(
      (r) => {
        this.acks.push({ pub: this.name, seq, channel, epoch: r.epoch, offset: r.offset, at: now() })
      },
      (err: unknown) => {
        this.errors.push(`${this.name}#${seq} on ${channel}: ${err instanceof Error ? err.message : String(err)}`)
      },
    )
    this.#pending.add(p)
    void p.finally(() => this.#pending.delete(p))
  }

  /** Publish every `everyMs` to `channels` in turn (each call to the next one), until `stop()`. */
  start(channels: readonly string[], everyMs: number, pad = ''): void {
    let i = 0
    this.#timer = setInterval(() => this.publish(channels[i++ % channels.length] as string, pad), everyMs)
  }

  /** Stop issuing; wait (at most `ms`) until every issued publish is acked or failed. */
  async stop(ms: number): Promise<Ack[]> {
    clearInterval(this.#timer)
    this.#timer = undefined
    const deadline = performance.now() + ms
    while (this.#pending.size > 0) {
      if (performance.now() > deadline) throw new Error(`${this.name}: ${this.#pending.size} publishes still unacked after ${ms} ms (queue ${this.client.queueSize})`)
      await Promise.race([...this.#pending, new Promise((r) => setTimeout(r, 50))])
    }
    return this.acks
  }

  /** `stop(ms)`, and every publish must have been acked (none failed): the acks in issue order. */
  async settle(ms: number): Promise<Ack[]> {
    await this.stop(ms)
    assert.deepEqual(this.errors, [], `${this.name}: every publish was acked (the SDK retries through outages)`)
    return [...this.acks].sort((a, b) => a.seq - b.seq)
  }
}

/** 1..n */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1)
}

/** The outcome of checking a history. Every count but the informational ones must be 0. */
export interface CheckReport {
  subscribers: number
  acked: number
  /** Publications the subscribers had to receive (acked, after their starting position, not excused). */
  expected: number
  delivered: number
  lost: number
  duplicated: number
  /** Within one epoch, an offset at or below the previous one. */
  outOfOrder: number
  /** A move to another epoch without `recovered: false` before it: the gap nobody was told about. */
  silentGaps: number
  /** Delivered, but no ack carries that position (a publish stored twice, or corruption). */
  unacked: number
  /**
   * Informational: delivered past the last ack of an epoch that a later `recovered: false`
   * abandoned — stored just before the history was lost, its ack lost with it, and retried into
   * the new epoch (the app was told to reload).
   */
  unackedTail: number
  /** Delivered at a position whose ack names another publication. */
  mismatched: number
  /** Two acks at one `{epoch, offset}`, or a publisher's publications out of issue order. */
  ackAnomalies: number
  /** Informational: resubscribes told `recovered: false`, and the acked publications that excused. */
  unrecovered: number
  declaredLoss: number
  /** Subscribers with at least one anomaly, and the first anomalies, for the failure message. */
  imperfect: number
  examples: string[]
}

export function emptyReport(): CheckReport {
  return {
    subscribers: 0,
    acked: 0,
    expected: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    silentGaps: 0,
    unacked: 0,
    unackedTail: 0,
    mismatched: 0,
    ackAnomalies: 0,
    unrecovered: 0,
    declaredLoss: 0,
    imperfect: 0,
    examples: [],
  }
}

const EXAMPLES = 10
const posKey = (epoch: string, offset: number): string => `${epoch}/${offset}`

/** Acks indexed by channel, then by position. */
export type AckIndex = Map<string, Map<string, Ack>>

export function indexAcks(acks: readonly Ack[]): AckIndex {
  const idx: AckIndex = new Map()
  for (const a of acks) {
    let ch = idx.get(a.channel)
    if (ch === undefined) idx.set(a.channel, (ch = new Map()))
    ch.set(posKey(a.epoch, a.offset), a)
  }
  return idx
}

/** Check the acks on their own: one publication per position, and each publisher's order kept per channel and epoch. */
export function checkAcks(acks: readonly Ack[], into: CheckReport = emptyReport()): CheckReport {
  into.acked += acks.length
  const at = new Map<string, Ack>()
  for (const a of acks) {
    const k = `${a.channel} ${posKey(a.epoch, a.offset)}`
    const other = at.get(k)
    if (other !== undefined) {
      into.ackAnomalies++
      note(into, `two publishes acked at ${k}: ${other.pub}#${other.seq} and ${a.pub}#${a.seq}`)
    } else at.set(k, a)
  }
  const lastBy = new Map<string, Ack>()
  for (const a of [...acks].sort((x, y) => x.seq - y.seq)) {
    const k = `${a.pub} ${a.channel} ${a.epoch}`
    const prev = lastBy.get(k)
    if (prev !== undefined && a.offset <= prev.offset) {
      into.ackAnomalies++
      note(into, `${a.pub}: #${a.seq} acked at ${a.channel} ${a.offset}, before #${prev.seq} at ${prev.offset}`)
    }
    lastBy.set(k, a)
  }
  return into
}

function note(r: CheckReport, s: string): void {
  if (r.examples.length < EXAMPLES) r.examples.push(s)
}

interface Segment {
  epoch: string
  /** The position the segment starts after. */
  start: number
  /** The last offset delivered in it. */
  last: number
}

/**
 * Check one subscriber's history against the acks of its channel and add the counts to `into`.
 * A segment starts at the first `subscribed` and at every `recovered: false`: inside a segment
 * every acked publication after its start must arrive once and in order; what a later
 * `recovered: false` excused is counted as declared loss, not as lost.
 */
export function checkSubscriber(h: AppHistory, acks: AckIndex, into: CheckReport = emptyReport()): CheckReport {
  const before = into.lost + into.duplicated + into.outOfOrder + into.silentGaps + into.unacked + into.mismatched
  const byPos = acks.get(h.channel) ?? new Map<string, Ack>()
  const who = `${h.client}/${h.channel}`
  into.subscribers++
  const segments: Segment[] = []
  let cur: Segment | undefined
  const seenPos = new Set<string>()
  // Across a declared loss a publisher's retry may be stored again in the new stream: the app was
  // told to reload, so only a repeat inside one segment is a duplicate.
  let seenTags = new Set<string>()
  const noAck: Array<{ epoch: string; offset: number; what: string }> = []
  for (const e of h.events) {
    if (e.kind === 'subscribed') {
      if (cur === undefined || !e.recovered) {
        if (cur !== undefined) into.unrecovered++
        cur = { epoch: e.epoch, start: e.offset, last: e.offset }
        segments.push(cur)
        seenTags = new Set()
      } else if (e.epoch !== cur.epoch) {
        into.silentGaps++
        note(into, `${who}: recovered:true into epoch ${e.epoch}, delivering ${cur.epoch}`)
      }
      continue
    }
    into.delivered++
    const pk = posKey(e.epoch, e.offset)
    const tk = `${e.pub}#${e.seq}`
    if (seenPos.has(pk) || seenTags.has(tk)) {
      into.duplicated++
      note(into, `${who}: ${tk} at ${pk} delivered twice`)
      continue
    }
    seenPos.add(pk)
    seenTags.add(tk)
    if (cur === undefined) {
      into.outOfOrder++
      note(into, `${who}: ${tk} at ${pk} before any subscribed event`)
      continue
    }
    if (e.epoch !== cur.epoch) {
      into.silentGaps++
      note(into, `${who}: moved from epoch ${cur.epoch} to ${e.epoch} without recovered:false`)
      cur = { epoch: e.epoch, start: e.offset - 1, last: e.offset }
      segments.push(cur)
    } else if (e.offset <= cur.last) {
      into.outOfOrder++
      note(into, `${who}: ${pk} after offset ${cur.last}`)
    } else cur.last = e.offset
    const ack = byPos.get(pk)
    if (ack === undefined) noAck.push({ epoch: e.epoch, offset: e.offset, what: `${who}: ${tk} delivered at ${pk}, which no ack names` })
    else if (ack.pub !== e.pub || ack.seq !== e.seq) {
      into.mismatched++
      note(into, `${who}: ${pk} delivered ${tk}, acked as ${ack.pub}#${ack.seq}`)
    }
  }
  const lastAcked = new Map<string, number>()
  for (const a of byPos.values()) lastAcked.set(a.epoch, Math.max(lastAcked.get(a.epoch) ?? 0, a.offset))
  const finalEpoch = segments.at(-1)?.epoch
  for (const u of noAck) {
    if (u.epoch !== finalEpoch && u.offset > (lastAcked.get(u.epoch) ?? 0)) into.unackedTail++
    else {
      into.unacked++
      note(into, u.what)
    }
  }
  // Lost: acked in a segment's range and never delivered.
  for (const [i, seg] of segments.entries()) {
    const next = segments[i + 1]
    for (const a of byPos.values()) {
      if (a.epoch !== seg.epoch || a.offset <= seg.start) continue
      const inRange = next === undefined || a.offset <= seg.last
      if (inRange) {
        into.expected++
        if (!seenPos.has(posKey(a.epoch, a.offset))) {
          into.lost++
          note(into, `${who}: ${a.pub}#${a.seq} acked at ${posKey(a.epoch, a.offset)} never delivered`)
        }
      } else if (next.epoch !== seg.epoch || a.offset <= next.start) into.declaredLoss++
    }
  }
  if (into.lost + into.duplicated + into.outOfOrder + into.silentGaps + into.unacked + into.mismatched > before) into.imperfect++
  return into
}

/** Check every subscriber and the acks; the whole history in one report. */
export function checkHistory(acks: readonly Ack[], histories: readonly AppHistory[]): CheckReport {
  const report = checkAcks(acks)
  const idx = indexAcks(acks)
  for (const h of histories) checkSubscriber(h, idx, report)
  return report
}

/** Add `b`'s counts to `a` (reports from several processes). */
export function mergeReports(a: CheckReport, b: CheckReport): CheckReport {
  for (const k of Object.keys(a) as Array<keyof CheckReport>) {
    if (k === 'examples') a.examples.push(...b.examples.slice(0, Math.max(0, EXAMPLES - a.examples.length)))
    else a[k] += b[k]
  }
  return a
}

/** The report's anomalies as one line (what failure messages and diagnostics print). */
export function summary(r: CheckReport): string {
  return (
    `${r.subscribers} subscribers, ${r.acked} acked publishes, ${r.delivered} deliveries (${r.expected} expected): ` +
    `lost ${r.lost}, duplicated ${r.duplicated}, out of order ${r.outOfOrder}, silent gaps ${r.silentGaps}, ` +
    `unacked ${r.unacked} (+${r.unackedTail} in an abandoned epoch's tail), mismatched ${r.mismatched}, ack anomalies ${r.ackAnomalies}; ` +
    `recovered:false ${r.unrecovered} (declared loss ${r.declaredLoss})`
  )
}

/**
 * Throw unless the history is clean. `allowUnrecovered`: resubscribes may have been told
 * `recovered: false` (history really was lost); otherwise every resubscribe must have recovered.
 */
export function assertClean(r: CheckReport, opts: { allowUnrecovered?: boolean } = {}): void {
  const bad = r.lost + r.duplicated + r.outOfOrder + r.silentGaps + r.unacked + r.mismatched + r.ackAnomalies
  const unrecovered = opts.allowUnrecovered === true ? 0 : r.unrecovered + r.declaredLoss + r.unackedTail
  if (bad + unrecovered > 0 || r.expected === 0) {
    throw new Error(`history check failed: ${summary(r)}${r.expected === 0 ? ' (nothing was expected: the scenario did not run)' : ''}\n  ${r.examples.join('\n  ')}`)
  }
}

/**
 * The strict single-stream case of the checker (one channel, one epoch, one subscriber from its
 * first publication): the acks are offsets 1..N in issue order (no publish stored twice), the
 * history is clean with every resubscribe recovered, and all N reached the subscriber, once each.
 */
export function assertExactlyOnce(log: AppHistory & { foreign: number }, acks: readonly Ack[], who = log.client): void {
  const n = acks.length
  assert.ok(n > 0, 'something was published')
  assert.deepEqual(
    [...acks].sort((a, b) => a.seq - b.seq).map((a) => a.offset),
    range(n),
    'acks: offsets 1..N in publish order (no publish stored twice)',
  )
  assert.equal(new Set(acks.map((a) => a.epoch)).size, 1, 'acks: one epoch')
  assert.equal(log.foreign, 0, `${who}: only test publications`)
  const report = checkHistory(acks, [log])
  assertClean(report)
  assert.equal(report.delivered, n, `${who}: every publication exactly once, from the first`)
}

/**
 * Wait (at most `ms`) until every log holds the newest acked publication of its channel; a
 * subscription delivers in offset order, so then it has had everything it will ever get. Returns
 * the logs still short at the deadline: the checker then says what they miss.
 */
export async function drain(logs: readonly AppLog[], acks: readonly Ack[], ms: number): Promise<AppLog[]> {
  // The channel's current epoch is that of its latest ack; the newest publication, its highest offset.
  const latest = new Map<string, Ack>()
  for (const a of acks) {
    const n = latest.get(a.channel)
    if (n === undefined || a.at > n.at) latest.set(a.channel, a)
  }
  const newest = new Map<string, Ack>()
  for (const a of acks) {
    const n = newest.get(a.channel)
    if (a.epoch === latest.get(a.channel)?.epoch && (n === undefined || a.offset > n.offset)) newest.set(a.channel, a)
  }
  const short = (): AppLog[] =>
    logs.filter((l) => {
      const a = newest.get(l.channel)
      return a !== undefined && !l.has(a)
    })
  const results = await Promise.allSettled(
    short().map((l) => {
      const a = newest.get(l.channel) as Ack
      return l.until(`${a.pub}#${a.seq} at ${a.epoch}/${a.offset}`, () => l.has(a), ms)
    }),
  )
  return results.some((r) => r.status === 'rejected') ? short() : []
}
