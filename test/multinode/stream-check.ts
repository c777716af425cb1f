/**
 * What the application sees, and the checker that says whether it is right: a publisher that
 * keeps publishing numbered messages at a steady rate (through outages: the SDK queues and
 * retries), subscribers that log every publication, (re)subscription and connection with its
 * time, and assertions that each publication arrived exactly once, in order, with no gap.
 */
import assert from 'node:assert/strict'
import type { ConnectedEvent, HoldfastClient, SubscribedEvent, Subscription } from '@holdfast/client'

export interface Received {
  offset: number
  epoch: string
  seq: number
  /** performance.now() at delivery to the app. */
  at: number
}

export interface Ack {
  seq: number
  offset: number
  epoch: string
  /** performance.now() when the ack arrived. */
  at: number
}

/** Everything one subscriber's application sees on one channel, with a way to wait for a state of it. */
export class SubscriberLog {
  readonly pubs: Received[] = []
  readonly subscribed: (SubscribedEvent & { at: number })[] = []
  readonly connected: (ConnectedEvent & { at: number })[] = []
  readonly disconnected: { at: number; code: number }[] = []
  readonly sub: Subscription
  readonly #waiters = new Set<() => void>()

  constructor(client: HoldfastClient, channel: string) {
    this.sub = client.subscribe(channel)
    this.sub.on('publication', (p) => {
      const seq = (p.data as { seq?: unknown } | null)?.seq
      this.pubs.push({ offset: p.offset, epoch: p.epoch, seq: typeof seq === 'number' ? seq : -1, at: performance.now() })
      this.#notify()
    })
    this.sub.on('subscribed', (e) => {
      this.subscribed.push({ ...e, at: performance.now() })
      this.#notify()
    })
    client.on('connected', (e) => {
      this.connected.push({ ...e, at: performance.now() })
      this.#notify()
    })
    client.on('disconnected', (e) => {
      this.disconnected.push({ at: performance.now(), code: e.reason.code })
      this.#notify()
    })
  }

  /** The node the client is connected to now (from the latest `connected` event). */
  get node(): string | undefined {
    return this.connected.at(-1)?.node
  }

  /** Resolve when `cond()` holds (checked after every event); reject after `ms` naming `what`. */
  until(what: string, cond: () => boolean, ms: number): Promise<void> {
    if (cond()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (received ${this.pubs.length}, last ${JSON.stringify(this.pubs.at(-1))}, subscribed ${JSON.stringify(this.subscribed.map((s) => s.recovered))})`))
      }, ms)
      this.#waiters.add(check)
    })
  }

  /** Resolve when the publication with this sequence number has arrived. */
  untilSeq(seq: number, ms: number): Promise<void> {
    return this.until(`publication #${seq}`, () => this.pubs.some((p) => p.seq === seq), ms)
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w()
  }
}

/** Publishes `{ seq, t }` every `everyMs` without waiting for acks: calls queue in the SDK while it is offline. */
export class Publisher {
  readonly acks: Ack[] = []
  readonly errors: unknown[] = []
  readonly #client: HoldfastClient
  readonly #channel: string
  readonly #everyMs: number
  readonly #pending = new Set<Promise<void>>()
  #seq = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(client: HoldfastClient, channel: string, everyMs: number) {
    this.#client = client
    this.#channel = channel
    this.#everyMs = everyMs
  }

  /** Publications issued so far. */
  get issued(): number {
    return this.#seq
  }

  start(): void {
    this.#timer = setInterval(() => this.publishOne(), this.#everyMs)
  }

  publishOne(): void {
    const seq = ++this.#seq
    const p = this.#client.publish(this.#channel, { seq, t: Date.now() }).then(
      (r) => {
        this.acks.push({ seq, offset: r.offset, epoch: r.epoch, at: performance.now() })
      },
      (err: unknown) => {
        this.errors.push(err)
      },
    )
    this.#pending.add(p)
    void p.finally(() => this.#pending.delete(p))
  }

  /** Stop issuing and wait (at most `ms`) until every issued publish is acked or failed. */
  async stop(ms: number): Promise<Ack[]> {
    clearInterval(this.#timer)
    const deadline = performance.now() + ms
    while (this.#pending.size > 0) {
      if (performance.now() > deadline) throw new Error(`${this.#pending.size} publishes still unacked after ${ms} ms (queue ${this.#client.queueSize})`)
      await Promise.race([...this.#pending, new Promise((r) => setTimeout(r, 50))])
    }
    assert.deepEqual(this.errors, [], 'every publish was acked (the SDK retries through outages)')
    return [...this.acks].sort((a, b) => a.seq - b.seq)
  }
}

/** 1..n */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1)
}

/**
 * One epoch, nothing lost: the publisher's acks are offsets 1..N in publish order (so no publish
 * was stored twice), and the subscriber delivered exactly those, each once, in order.
 */
export function assertExactlyOnce(log: SubscriberLog, acks: Ack[], who = 'subscriber'): void {
  const n = acks.length
  assert.ok(n > 0, 'something was published')
  assert.deepEqual(
    acks.map((a) => a.offset),
    range(n),
    'acks: offsets 1..N in publish order (no publish stored twice)',
  )
  assert.equal(new Set(acks.map((a) => a.epoch)).size, 1, 'acks: one epoch')
  assert.deepEqual(
    log.pubs.map((p) => p.offset),
    range(n),
    `${who}: every offset exactly once, in order`,
  )
  assert.deepEqual(
    log.pubs.map((p) => p.seq),
    range(n),
    `${who}: every publication exactly once, in publish order`,
  )
  assert.ok(
    log.pubs.every((p) => p.epoch === acks[0]?.epoch),
    `${who}: one epoch`,
  )
}
