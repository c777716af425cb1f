/**
 * A client process of the reconnect storm (reconnect-storm.chaos.ts), forked with an IPC channel.
 * It runs `count` HoldfastClient instances (Node, `ws`) from one source address, each subscribed
 * to one channel, logs what every one of them delivers, and answers the scenario's commands:
 * `start` (connect at a ramp, report `ready` once all are subscribed), `mark` (the moment the
 * node died), `check` (wait until every client has the newest acked publication of its channel,
 * then run the history checker over all of them and report the counts and the timings).
 *
 * Clients live in several processes because one process holds 20,000 open files here, and so
 * that their CPU does not sit in the scenario's own event loop.
 */
import { HoldfastClient, type ClientOptions } from '@holdfast/client'
import { wsClass } from './harness.js'
import { AppLog, checkSubscriber, drain, emptyReport, indexAcks, now, type Ack, type CheckReport } from './history.js'

export interface StormStart {
  type: 'start'
  /** URL lists; client i takes `urls[i % urls.length]`. */
  urls: string[][]
  count: number
  localAddress: string
  /** Client i subscribes to `${channelPrefix}${(firstIndex + i) % channels}`. */
  channels: number
  channelPrefix: string
  firstIndex: number
  /**
   * Clients of this process connecting at once (started, not yet subscribed). A ramp that waits
   * for the node instead of a fixed rate: on a busy machine a fixed rate outruns the node, first
   * connects time out, and those clients start on another node — not the storm being measured.
   */
  inFlight: number
  clientOptions: ClientOptions
}

export type StormCommand = StormStart | { type: 'mark'; at: number; node: string } | { type: 'check'; acks: Ack[]; timeoutMs: number } | { type: 'exit' }

export interface StormProgress {
  type: 'progress'
  connected: number
  subscribed: number
  /** Clients connected to the marked node at the mark (the storm's clients). */
  victims: number
  /** Of those, the ones with a recovering resubscribe after the mark. */
  resubscribed: number
}

export interface StormReport {
  type: 'report'
  report: CheckReport
  /** Per client of the marked node: ms from the mark to its first recovering resubscribe (NaN: none). */
  resubscribedMs: number[]
  /** Per client of the marked node: connection attempts after the mark. */
  attempts: number[]
  /** Reconnects after the mark that did not resume the session. */
  notResumed: number
  /** Clients still short of the newest publication when the wait ended. */
  short: number
}

export type StormMessage = StormProgress | StormReport | { type: 'ready' } | { type: 'error'; message: string }

function send(m: StormMessage): void {
  process.send?.(m)
}

const logs: AppLog[] = []
const clients: HoldfastClient[] = []
const attemptsAfterMark: number[] = []
let mark = Number.POSITIVE_INFINITY
/** Indexes of the clients that were on the marked node. */
let victims: number[] = []
let progressTimer: NodeJS.Timeout | undefined

function progress(): StormProgress {
  let connected = 0
  let subscribed = 0
  for (const [i, l] of logs.entries()) {
    if (clients[i]?.state === 'connected') connected++
    if (l.sub.state === 'subscribed') subscribed++
  }
  const resubscribed = victims.filter((i) => resubscribedAt(i) !== undefined).length
  // -1 until the mark: nobody has been counted yet.
  return { type: 'progress', connected, subscribed, victims: mark === Number.POSITIVE_INFINITY ? -1 : victims.length, resubscribed }
}

function resubscribedAt(i: number): number | undefined {
  return logs[i]?.subscribes.find((s) => s.at > mark && s.wasRecovering)?.at
}

async function start(m: StormStart): Promise<void> {
  const WebSocket = wsClass({ localAddress: m.localAddress })
  let connecting = 0
  let wake: (() => void) | undefined
  for (let i = 0; i < m.count; i++) {
    while (connecting >= m.inFlight) await new Promise<void>((r) => (wake = r))
    const client = new HoldfastClient(m.urls[i % m.urls.length] as string[], { ...m.clientOptions, WebSocket })
    client.on('error', () => {})
    attemptsAfterMark.push(0)
    client.on('connecting', () => {
      if (now() > mark) attemptsAfterMark[i] = (attemptsAfterMark[i] ?? 0) + 1
    })
    const log = new AppLog(client, `${m.localAddress}#${i}`, `${m.channelPrefix}${(m.firstIndex + i) % m.channels}`)
    clients.push(client)
    logs.push(log)
    connecting++
    log.sub.once('subscribed', () => {
      connecting--
      wake?.()
    })
    client.connect()
  }
  progressTimer = setInterval(() => send(progress()), 250)
  const deadline = performance.now() + 120_000
  while (logs.some((l) => l.sub.state !== 'subscribed')) {
    if (performance.now() > deadline) throw new Error(`only ${progress().subscribed}/${logs.length} subscribed after 120 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
  send({ type: 'ready' })
}

async function check(acks: Ack[], timeoutMs: number): Promise<void> {
  clearInterval(progressTimer)
  const short = await drain(logs, acks, timeoutMs)
  // Only this process's channels; the ack checks (order, one publication per position) are the scenario's.
  const report = emptyReport()
  const idx = indexAcks(acks)
  for (const l of logs) checkSubscriber(l, idx, report)
  send({
    type: 'report',
    report,
    resubscribedMs: victims.map((i) => (resubscribedAt(i) ?? Number.NaN) - mark),
    attempts: victims.map((i) => attemptsAfterMark[i] ?? 0),
    notResumed: logs.reduce((n, l) => n + l.connects.filter((c) => c.at > mark && !c.resumed).length, 0),
    short: short.length,
  })
}

process.on('message', (raw: unknown) => {
  const m = raw as StormCommand
  const run = async (): Promise<void> => {
    switch (m.type) {
      case 'start':
        return start(m)
      case 'mark':
        // Under load some clients time out on the first node and start on the next one: the
        // storm is made by those on the marked node.
        victims = logs.flatMap((l, i) => (l.node === m.node && clients[i]?.state === 'connected' ? [i] : []))
        mark = m.at
        return
      case 'check':
        return check(m.acks, m.timeoutMs)
      case 'exit':
        clearInterval(progressTimer)
        for (const c of clients) c.close()
        process.exit(0)
    }
  }
  run().catch((err: unknown) => send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }))
})
// The scenario going away (a failed or killed test) takes its clients with it.
process.on('disconnect', () => process.exit(0))
