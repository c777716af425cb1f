/**
 * The checker of the operations tests: real HoldfastClient instances (Node, `ws`) that subscribe
 * and record every publication they are given, publishers whose every publication carries a
 * sequence number, and the one rule both sides are held to — each subscriber receives exactly the
 * acknowledged publications, each once, in the order the stream assigned them.
 */
import assert from 'node:assert/strict'
import { HoldfastClient, type ClientOptions, type ConnectedEvent, type SubscribedEvent } from '@holdfast/client'
import { WebSocket } from 'ws'

/** A publication as the tests publish it: who published it and its number in that publisher's sequence. */
export interface Tagged {
  pub: string
  seq: number
}

function isTagged(v: unknown): v is Tagged {
  return typeof v === 'object' && v !== null && typeof (v as Tagged).pub === 'string' && typeof (v as Tagged).seq === 'number'
}

/** `${pub}:${seq}`: one key per publication. */
export function keyOf(t: Tagged): string {
  return `${t.pub}:${t.seq}`
}

/** A client subscribed to one channel that records what it receives and where it is connected. */
export class Subscriber {
  readonly client: HoldfastClient
  readonly channel: string
  readonly received: Tagged[] = []
  readonly offsets: number[] = []
  /** Every `connected` event (node, resumed, time). */
  readonly connects: Array<ConnectedEvent & { at: number }> = []
  readonly subscribes: Array<SubscribedEvent & { at: number }> = []
  /** Connection attempts (`connecting` events). */
  attempts = 0
  /** Publications that were not the tests' own (never expected). */
  readonly foreign: unknown[] = []

  constructor(urls: string | string[], channel: string, options: ClientOptions = {}) {
    this.channel = channel
    this.client = new HoldfastClient(urls, { WebSocket, ...options })
    // Errors show up as missed or extra publications in the check; the SDK reports them here too.
    this.client.on('error', () => {})
    this.client.on('connecting', () => this.attempts++)
    this.client.on('connected', (e) => this.connects.push({ ...e, at: performance.now() }))
    const sub = this.client.subscribe(channel)
    sub.on('subscribed', (e) => this.subscribes.push({ ...e, at: performance.now() }))
    sub.on('publication', (p) => {
      this.offsets.push(p.offset)
      if (isTagged(p.data)) this.received.push({ pub: p.data.pub, seq: p.data.seq })
      else this.foreign.push(p.data)
    })
  }

  connect(): this {
    this.client.connect()
    return this
  }

  /** The node of the current (last) connection. */
  get node(): string | undefined {
    return this.connects.at(-1)?.node
  }

  get subscribed(): boolean {
    return this.client.getSubscription(this.channel)?.state === 'subscribed'
  }

  close(): void {
    this.client.close()
  }
}

/** Publishes `{ pub, seq }` to a channel; knows which publications the server acknowledged. */
export class Publisher {
  readonly client: HoldfastClient
  readonly name: string
  readonly acked: number[] = []
  readonly failed: Array<{ seq: number; error: string }> = []
  /** Every `connected` event (node, time). */
  readonly connects: Array<ConnectedEvent & { at: number }> = []
  /** The channel of each publication, by seq. */
  readonly channelOf: string[] = []
  #seq = 0
  readonly #pending = new Set<Promise<unknown>>()
  #timer: NodeJS.Timeout | undefined

  constructor(urls: string | string[], name: string, options: ClientOptions = {}) {
    this.name = name
    this.client = new HoldfastClient(urls, { WebSocket, ...options })
    this.client.on('error', () => {})
    this.client.on('connected', (e) => this.connects.push({ ...e, at: performance.now() }))
  }

  connect(): this {
    this.client.connect()
    return this
  }

  /** The node of the current (last) connection. */
  get node(): string | undefined {
    return this.connects.at(-1)?.node
  }

  get published(): number {
    return this.#seq
  }

  /** Publish one; resolves when it is acknowledged (or records why not). */
  publish(channel: string): Promise<unknown> {
    const seq = this.#seq++
    this.channelOf[seq] = channel
    const p = this.client.publish(channel, { pub: this.name, seq } satisfies Tagged).then(
      () => {
        this.acked.push(seq)
      },
      (err: unknown) => {
        this.failed.push({ seq, error: err instanceof Error ? err.message : String(err) })
      },
    )
    this.#pending.add(p)
    void p.finally(() => this.#pending.delete(p))
    return p
  }

  /** Publish to `channel` every `everyMs` until `stop()`; the SDK queues while it is offline. */
  start(channel: string, everyMs: number): void {
    this.#timer = setInterval(() => void this.publish(channel), everyMs)
  }

  /** Stop publishing and wait until every publication has been acknowledged or has failed. */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    while (this.#pending.size > 0) await Promise.all([...this.#pending])
  }

  close(): void {
    clearInterval(this.#timer)
    this.client.close()
  }
}

export interface DeliveryReport {
  /** Publications expected at this subscriber (acknowledged ones to its channel). */
  expected: number
  delivered: number
  duplicates: number
  lost: number
  /** Publications delivered after a later one of the same stream (offsets not increasing). */
  outOfOrder: number
  /** Delivered but never acknowledged to their publisher. */
  unexpected: number
}

/**
 * Hold one subscriber's deliveries against the acknowledged publications of its channel.
 * Exactly once: every acknowledged publication once, nothing else; in order: offsets strictly
 * increase (the stream's order, which the SDK must keep across reconnects and recoveries).
 */
export function checkDeliveries(received: readonly Tagged[], offsets: readonly number[], expected: ReadonlySet<string>): DeliveryReport {
  const seen = new Set<string>()
  let duplicates = 0
  let unexpected = 0
  for (const t of received) {
    const k = keyOf(t)
    if (seen.has(k)) duplicates++
    else {
      seen.add(k)
      if (!expected.has(k)) unexpected++
    }
  }
  let lost = 0
  for (const k of expected) if (!seen.has(k)) lost++
  let outOfOrder = 0
  for (let i = 1; i < offsets.length; i++) if ((offsets[i] as number) <= (offsets[i - 1] as number)) outOfOrder++
  return { expected: expected.size, delivered: received.length, duplicates, lost, outOfOrder, unexpected }
}

/** The acknowledged publications of these publishers as `pub:seq` keys. */
export function ackedKeys(publishers: readonly Publisher[]): Set<string> {
  const keys = new Set<string>()
  for (const p of publishers) for (const seq of p.acked) keys.add(keyOf({ pub: p.name, seq }))
  return keys
}

/** Sum of the per-subscriber reports, with the number of subscribers that were not perfect. */
export function totals(reports: readonly DeliveryReport[]): DeliveryReport & { subscribers: number; imperfect: number } {
  const sum = { subscribers: reports.length, imperfect: 0, expected: 0, delivered: 0, duplicates: 0, lost: 0, outOfOrder: 0, unexpected: 0 }
  for (const r of reports) {
    sum.expected += r.expected
    sum.delivered += r.delivered
    sum.duplicates += r.duplicates
    sum.lost += r.lost
    sum.outOfOrder += r.outOfOrder
    sum.unexpected += r.unexpected
    if (r.duplicates + r.lost + r.outOfOrder + r.unexpected > 0) sum.imperfect++
  }
  return sum
}

/** The acknowledged publications to `channel`, as `pub:seq` keys. */
export function ackedKeysFor(publishers: readonly Publisher[], channel: string): Set<string> {
  const keys = new Set<string>()
  for (const p of publishers) for (const seq of p.acked) if (p.channelOf[seq] === channel) keys.add(keyOf({ pub: p.name, seq }))
  return keys
}

/** Publish from every publisher every `everyMs`, each to the channels in turn; returns the stop function. */
export function publishRoundRobin(publishers: readonly Publisher[], channels: readonly string[], everyMs: number): () => Promise<void> {
  let turn = 0
  const timer = setInterval(() => {
    for (const p of publishers) void p.publish(channels[turn++ % channels.length] as string)
  }, everyMs)
  return async () => {
    clearInterval(timer)
    await Promise.all(publishers.map((p) => p.stop()))
  }
}

/**
 * Wait (bounded) until every subscriber holds every acknowledged publication of its channel, then
 * hold each to exactly once, in order; every publish must have been acknowledged.
 */
export async function assertDelivered(subs: readonly Subscriber[], publishers: readonly Publisher[], ms = 20_000): Promise<DeliveryReport & { subscribers: number; imperfect: number }> {
  for (const p of publishers) assert.deepEqual(p.failed, [], `publisher ${p.name}: every publication acknowledged`)
  const expected = new Map<string, Set<string>>()
  for (const s of subs) if (!expected.has(s.channel)) expected.set(s.channel, ackedKeysFor(publishers, s.channel))
  const want = (s: Subscriber): number => expected.get(s.channel)?.size ?? 0
  const deadline = performance.now() + ms
  while (subs.some((s) => s.received.length < want(s)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const reports = subs.map((s) => checkDeliveries(s.received, s.offsets, expected.get(s.channel) ?? new Set()))
  reports.forEach((r, i) => {
    assert.ok(r.expected > 0, `subscriber ${i} expected publications`)
    assert.deepEqual(
      { lost: r.lost, duplicates: r.duplicates, outOfOrder: r.outOfOrder, unexpected: r.unexpected },
      { lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 },
      `subscriber ${i} on ${subs[i]?.channel} (node ${subs[i]?.node}): ${JSON.stringify(r)}`,
    )
  })
  return totals(reports)
}
