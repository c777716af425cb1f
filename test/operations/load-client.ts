/**
 * A client process of the load scenarios (rolling reload, crash): forked by the scenario with an
 * IPC channel, it runs `clients` subscribers and `publishers` publishers (real HoldfastClient
 * instances over `ws`), and answers the scenario's commands. Clients live in separate processes so
 * that their CPU (JSON, timers) does not slow the measurement of the server's drain on a small
 * machine, and so that the server sees connections from more than one process.
 *
 * Every time is wall-clock milliseconds with sub-ms precision (`performance.timeOrigin + now()`),
 * comparable between the processes of one machine.
 */
import { WebSocket } from 'ws'
import type { WebSocketConstructor } from '@holdfast/client'
import { checkDeliveries, Publisher, Subscriber, type DeliveryReport } from './delivery.js'

export interface LoadStart {
  type: 'start'
  url: string | string[]
  /** Names publishers and tells processes apart. */
  name: string
  clients: number
  /** Subscriber i subscribes to `${channelPrefix}${i % channels}`. */
  channels: number
  channelPrefix: string
  publishers: number
  /** Each publisher publishes every `publishEveryMs`, to the channels in turn. */
  publishEveryMs: number
  /** Connect in batches of this many per event-loop turn (a ramp, not one burst). @default 50 */
  rampBatch?: number
  /** Client options (reconnect delays, a token); the client defaults otherwise. */
  clientOptions?: Record<string, number | string>
  /** Source addresses for the subscribers, in turn (127.0.0.x): how many clients one address holds. */
  localAddresses?: string[]
}

export type ParentMessage =
  | LoadStart
  | { type: 'publish' }
  | { type: 'stop' }
  | { type: 'expect'; byChannel: Record<string, string[]>; timeoutMs: number }
  | { type: 'exit' }

export interface Progress {
  type: 'progress'
  acked: number
  connected: number
  subscribed: number
}

export interface Acked {
  type: 'acked'
  /** publisher name → channel → acknowledged seqs */
  acked: Record<string, Record<string, number[]>>
  failed: number
  published: number
}

export interface ClientStats {
  /** `connecting` events. */
  attempts: number
  /** `connected` events. */
  connects: number
  /** Attempts that failed (refused, timed out, closed before the connect reply). */
  failedAttempts: number
  /** Wall-clock times of the `connected` events. */
  connectTimes: number[]
  /** Wall-clock times at which a connection was lost (the `disconnected` events). */
  disconnectTimes: number[]
  endedConnected: boolean
  endedSubscribed: boolean
  /** Resubscribes that could not recover their position (`recovered: false`). */
  unrecovered: number
  /** Reconnects that did not resume the session. */
  notResumed: number
}

export interface Report {
  type: 'report'
  deliveries: DeliveryReport[]
  clients: ClientStats[]
  /** Subscribers that had not received everything when the wait ended. */
  incomplete: number
}

export type ChildMessage = Progress | Acked | Report | { type: 'subscribed' } | { type: 'error'; message: string }

const now = (): number => performance.timeOrigin + performance.now()

function send(m: ChildMessage): void {
  process.send?.(m)
}

let subs: Subscriber[] = []
let pubs: Publisher[] = []
const stats = new Map<Subscriber, { connectTimes: number[]; disconnectTimes: number[] }>()
let progressTimer: NodeJS.Timeout | undefined
let pubTimer: NodeJS.Timeout | undefined
let channels: string[] = []

function progress(): Progress {
  return {
    type: 'progress',
    acked: pubs.reduce((n, p) => n + p.acked.length, 0),
    connected: subs.filter((s) => s.client.state === 'connected').length,
    subscribed: subs.filter((s) => s.subscribed).length,
  }
}

/** A `ws` WebSocket that connects from `localAddress` (one of 127.0.0.x), for the SDK's `WebSocket` option. */
function fromAddress(localAddress: string): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress })
    }
  }
}

async function start(m: LoadStart): Promise<void> {
  channels = Array.from({ length: m.channels }, (_, i) => `${m.channelPrefix}${i}`)
  const opts = m.clientOptions ?? {}
  const batch = m.rampBatch ?? 50
  for (let i = 0; i < m.clients; i++) {
    const from = m.localAddresses?.[i % m.localAddresses.length]
    const s = new Subscriber(m.url, channels[i % channels.length] as string, from === undefined ? opts : { ...opts, WebSocket: fromAddress(from) })
    const st = { connectTimes: [] as number[], disconnectTimes: [] as number[] }
    s.client.on('connected', () => st.connectTimes.push(now()))
    // From connected only: a failed attempt also ends in `disconnected`, but loses no connection.
    s.client.on('state', (c) => {
      if (c.from === 'connected') st.disconnectTimes.push(now())
    })
    stats.set(s, st)
    subs.push(s.connect())
    if (i % batch === batch - 1) await new Promise((r) => setImmediate(r))
  }
  pubs = Array.from({ length: m.publishers }, (_, i) => new Publisher(m.url, `${m.name}-p${i}`, opts).connect())
  progressTimer = setInterval(() => send(progress()), 100)
  const deadline = now() + 60_000
  while (!subs.every((s) => s.subscribed) || !pubs.every((p) => p.client.state === 'connected')) {
    if (now() > deadline) throw new Error(`only ${progress().subscribed}/${subs.length} subscribed after 60 s`)
    await new Promise((r) => setTimeout(r, 20))
  }
  send({ type: 'subscribed' })
  // Publishers tick together: one timer, each publisher to the next channel in turn.
  let turn = 0
  publishEvery = m.publishEveryMs
  startPublishing = () => {
    pubTimer = setInterval(() => {
      for (const p of pubs) void p.publish(channels[turn++ % channels.length] as string)
    }, publishEvery)
  }
}

let publishEvery = 0
let startPublishing: () => void = () => {}

async function stop(): Promise<void> {
  clearInterval(pubTimer)
  await Promise.all(pubs.map((p) => p.stop()))
  const acked: Acked['acked'] = {}
  let failed = 0
  let published = 0
  for (const p of pubs) {
    const byChannel: Record<string, number[]> = {}
    for (const seq of p.acked) {
      const ch = p.channelOf[seq] as string
      ;(byChannel[ch] ??= []).push(seq)
    }
    acked[p.name] = byChannel
    failed += p.failed.length
    published += p.published
  }
  send({ type: 'acked', acked, failed, published })
}

async function expect(byChannel: Record<string, string[]>, timeoutMs: number): Promise<void> {
  const expected = new Map<string, Set<string>>()
  for (const [ch, keys] of Object.entries(byChannel)) expected.set(ch, new Set(keys))
  const want = (s: Subscriber): number => expected.get(s.channel)?.size ?? 0
  const deadline = now() + timeoutMs
  while (subs.some((s) => s.received.length < want(s)) && now() < deadline) await new Promise((r) => setTimeout(r, 20))
  clearInterval(progressTimer)
  const deliveries = subs.map((s) => checkDeliveries(s.received, s.offsets, expected.get(s.channel) ?? new Set()))
  const clients = subs.map((s): ClientStats => {
    const resubscribes = s.subscribes.filter((e) => e.wasRecovering)
    return {
      attempts: s.attempts,
      connects: s.connects.length,
      failedAttempts: s.attempts - s.connects.length - (s.client.state === 'connecting' ? 1 : 0),
      connectTimes: stats.get(s)?.connectTimes ?? [],
      disconnectTimes: stats.get(s)?.disconnectTimes ?? [],
      endedConnected: s.client.state === 'connected',
      endedSubscribed: s.subscribed,
      unrecovered: resubscribes.filter((e) => !e.recovered).length,
      notResumed: s.connects.slice(1).filter((c) => !c.resumed).length,
    }
  })
  send({ type: 'report', deliveries, clients, incomplete: subs.filter((s) => s.received.length < want(s)).length })
}

process.on('message', (raw: unknown) => {
  const m = raw as ParentMessage
  const run = async (): Promise<void> => {
    switch (m.type) {
      case 'start':
        await start(m)
        return
      case 'publish':
        startPublishing()
        return
      case 'stop':
        await stop()
        return
      case 'expect':
        await expect(m.byChannel, m.timeoutMs)
        return
      case 'exit':
        for (const s of subs) s.close()
        for (const p of pubs) p.close()
        process.exit(0)
    }
  }
  run().catch((err: unknown) => send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }))
})
// The scenario going away (a failed test) takes its clients with it.
process.on('disconnect', () => process.exit(0))
