/**
 * The attacker of exhaustion.chaos.ts, in a process of its own: 20 connections at once, each
 * running one of the attacks of issue #12 (reads past authorization, replies it never reads,
 * channel churn, history filling, message-id floods, pong floods, byte floods, bytes that grow in
 * JSON) for the whole run, plus raw TCP connections that never speak HTTP. Answers with how each
 * attack ended, counted by outcome: `error <code>` for error replies, `closed <code>` for a close,
 * `ok` for a command the node performed (within the bounds), `tcp closed` for an idle socket the
 * node let go.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { RawClient } from '../../packages/server/test/helpers.js'

export interface ExhaustionRun {
  type: 'run'
  url: string
  port: number
  durationMs: number
  /** A user-limited channel the attacker may not read, holding a publication. */
  secretChannel: string
  /** A channel with a deep history of large publications. */
  heavyChannel: string
  /** A channel the well-behaved clients subscribe to: the byte flood aims at them. */
  bulkChannel: string
}

/** attack → outcome → count */
export type Outcomes = Record<string, Record<string, number>>

export type ExhaustionMessage = { type: 'done'; outcomes: Outcomes } | { type: 'error'; message: string }

const SOURCE = '127.0.0.1'

class Tally {
  readonly outcomes: Outcomes = {}
  add(attack: string, outcome: string, n = 1): void {
    const o = (this.outcomes[attack] ??= {})
    o[outcome] = (o[outcome] ?? 0) + n
  }
}

function socketOf(c: RawClient): Socket {
  return (c.ws as unknown as { _socket: Socket })._socket
}

function replyOutcome(reply: unknown): string {
  const e = (reply as { error?: { code: number } }).error
  return e === undefined ? 'ok' : `error ${e.code}`
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * The attacker shares the node's machine, where a real one would not: what it spends on itself
 * (encoding the same 60 kB string hundreds of times a second, writing into a socket the node no
 * longer reads) is taken from the node and from the clients whose latency is measured. So large
 * strings are serialized once, and the pong flood waits while its own socket is backed up. The
 * node receives the same frames at the same rate.
 */
class Attacker extends RawClient {
  static readonly #quoted = new Map<string, string>()
  override sendRaw(msg: object): void {
    const data = (msg as { data?: unknown }).data
    if (this.codec.name !== 'json' || typeof data !== 'string' || data.length < 1024) return super.sendRaw(msg)
    let quoted = Attacker.#quoted.get(data)
    if (quoted === undefined) Attacker.#quoted.set(data, (quoted = JSON.stringify(data)))
    const { data: _, ...rest } = msg as Record<string, unknown>
    const head = JSON.stringify(rest)
    this.ws.send(`${head.slice(0, -1)},"data":${quoted}}`)
  }
}

/** Most bytes the attacker lets pile up in its own socket before it waits for the node to read. */
const BACKED_UP = 1024 * 1024

/** Run `attack` on fresh connections until the deadline; a connection the node closes is replaced. */
async function loop(name: string, tally: Tally, deadline: number, attack: (c: RawClient) => Promise<void>, url: string, protocol: 'json' | 'msgpack' = 'json'): Promise<void> {
  while (performance.now() < deadline) {
    const c = new Attacker(url, { protocol })
    try {
      await c.connect()
      await attack(c)
    } catch {
      // a refused connect or a request cut by the close: the close is what counts
    }
    if (c.closed !== undefined) tally.add(name, `closed ${c.closed.code}`)
    c.close()
    await sleep(50)
  }
}

/** Requests until the deadline or the close; counts each reply's outcome. */
async function requests(name: string, tally: Tally, c: RawClient, deadline: number, next: (i: number) => Record<string, unknown> & { type: string }, gapMs: number): Promise<void> {
  for (let i = 0; performance.now() < deadline && c.closed === undefined; i++) {
    void c.request(next(i), 20_000).then(
      (r) => tally.add(name, replyOutcome(r)),
      () => {},
    )
    await sleep(gapMs)
  }
}

async function run(m: ExhaustionRun): Promise<Outcomes> {
  const tally = new Tally()
  const deadline = performance.now() + m.durationMs
  const { url } = m
  const loops: Array<Promise<void>> = []
  // HOLDFAST_EXHAUSTION_ONLY=churn,pong-flood runs only those (to find which one costs what).
  const only = process.env['HOLDFAST_EXHAUSTION_ONLY']?.split(',')
  let current = ''
  const times = (n: number, f: (k: number) => Promise<void>): void => {
    if (only !== undefined && !only.includes(current)) return
    for (let k = 0; k < n; k++) loops.push(f(k))
  }
  const attack = (name: string): void => {
    current = name
  }

  attack('read-bypass')
  // 1. Reads of a channel subscribe refuses (user-limited to someone else): 103 every time.
  times(2, () =>
    loop('read-bypass', tally, deadline, (c) => requests('read-bypass', tally, c, deadline, (i) => ({ type: i % 2 === 0 ? 'history' : 'presence', channel: m.secretChannel }), 100), url),
  )
  attack('reply-amplification')
  // 2. Replies it never reads: history of a deep channel, pongs answered blindly.
  times(4, () =>
    loop(
      'reply-amplification',
      tally,
      deadline,
      async (c) => {
        socketOf(c).pause()
        const blind = setInterval(() => c.sendRaw({ type: 'pong' }), 100)
        try {
          for (let i = 0; performance.now() < deadline && c.closed === undefined; i++) {
            c.sendRaw({ id: 10_000 + i, type: 'history', channel: m.heavyChannel, limit: 1000 })
            await sleep(20)
          }
        } finally {
          clearInterval(blind)
        }
      },
      url,
    ),
  )
  attack('churn')
  // 3. Subscribe/unsubscribe churn over fresh channel names.
  times(2, (k) =>
    loop('churn', tally, deadline, (c) => requests('churn', tally, c, deadline, (i) => ({ type: i % 2 === 0 ? 'subscribe' : 'unsubscribe', channel: `churn:${k}-${Math.floor(i / 2)}-${Date.now()}` }), 2), url),
  )
  attack('history-fill')
  // 4. History filling: 60 kB publications to fresh channels.
  const blob = 'h'.repeat(60_000)
  times(3, (k) =>
    loop('history-fill', tally, deadline, (c) => requests('history-fill', tally, c, deadline, (i) => ({ type: 'publish', channel: `fill:${k}-${i}-${Date.now()}`, data: blob, msgId: `f${k}-${i}-${Date.now()}` }), 10), url),
  )
  attack('id-flood')
  // 5. Message ids: tiny publishes, each with a new id.
  times(2, (k) =>
    loop('id-flood', tally, deadline, (c) => requests('id-flood', tally, c, deadline, (i) => ({ type: 'publish', channel: 'ids', data: i, msgId: `id-${k}-${i}-${Date.now()}` }), 3), url),
  )
  attack('pong-flood')
  // 6. Pongs nobody asked for, as fast as they go.
  times(2, () =>
    loop(
      'pong-flood',
      tally,
      deadline,
      async (c) => {
        const pong = JSON.stringify({ type: 'pong' })
        while (performance.now() < deadline && c.closed === undefined) {
          if (c.ws.bufferedAmount > BACKED_UP) await sleep(10)
          else {
            for (let i = 0; i < 500; i++) c.ws.send(pong)
            await new Promise((r) => setImmediate(r))
          }
        }
      },
      url,
    ),
  )
  attack('byte-flood')
  // 7. Large publications at the command rate, into a channel others read.
  const big = 'b'.repeat(60_000)
  times(2, (k) =>
    loop('byte-flood', tally, deadline, (c) => requests('byte-flood', tally, c, deadline, (i) => ({ type: 'publish', channel: m.bulkChannel, data: big, msgId: `b${k}-${i}-${Date.now()}` }), 10), url),
  )
  attack('bin-growth')
  // 8. 60,000 bytes from a MessagePack client: 60 kB there, several times more for JSON subscribers.
  times(1, (k) =>
    loop(
      'bin-growth',
      tally,
      deadline,
      (c) => requests('bin-growth', tally, c, deadline, (i) => ({ type: 'publish', channel: m.bulkChannel, data: new Uint8Array(60_000), msgId: `g${k}-${i}-${Date.now()}` }), 200),
      url,
      'msgpack',
    ),
  )
  attack('idle-tcp')
  // 9. Raw TCP connections that never send a byte.
  times(2, async () => {
    while (performance.now() < deadline) {
      const sockets = Array.from({ length: 25 }, () => tcpConnect({ port: m.port, host: '127.0.0.1', localAddress: SOURCE }))
      await Promise.all(
        sockets.map(
          (s) =>
            new Promise<void>((resolve) => {
              const started = performance.now()
              s.on('error', () => {})
              // Flowing, so that the node's FIN is seen (a paused socket never reports its end).
              s.resume()
              s.on('close', () => {
                tally.add('idle-tcp', performance.now() - started < 60_000 ? 'tcp closed' : 'tcp held')
                resolve()
              })
              setTimeout(() => {
                s.destroy()
              }, 60_000).unref()
            }),
        ),
      )
    }
  })
  await Promise.all(loops)
  return tally.outcomes
}

process.on('message', (raw: unknown) => {
  const m = raw as ExhaustionRun
  if (m.type !== 'run') return
  run(m).then(
    (outcomes) => process.send?.({ type: 'done', outcomes } satisfies ExhaustionMessage),
    (err: unknown) => process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies ExhaustionMessage),
  )
})
process.on('disconnect', () => process.exit(0))
