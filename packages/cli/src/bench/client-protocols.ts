import WebSocket from 'ws'
import { Subprotocols } from '@holdfast/protocol'
import type { SeqState } from './sequence.js'
import type { WorkerSetup } from './types.js'

/**
 * The bench's client side of each server: the holdfast wire protocol spoken directly over `ws`,
 * the JSON adapter of the raw `ws` and uWebSockets.js peers, and Socket.IO events. The bench does
 * not use the client SDK: one SDK instance (state machine, outbox, timers, event emitters) per
 * connection would make the load generator, not the server, the thing measured at 10k+
 * connections. What each connection keeps is the one object below.
 */

/** A connection's life: connecting -> handshaken -> subscribed -> done (failed or closed). */
export const ConnState = { Connecting: 0, Handshaken: 1, Subscribed: 2, Done: 3 } as const
export type ConnState = (typeof ConnState)[keyof typeof ConnState]

/** Anything the three protocols hold per connection: a `ws` socket or a Socket.IO client socket. */
export interface Closable {
  close(): void
}

export class Conn implements SeqState {
  ackAt = Number.NaN
  closeAt = Number.POSITIVE_INFINITY
  first = -1
  next = 0
  owedRecv = 0
  dups = 0
  outOfOrder = 0
  holes: Set<number> | undefined = undefined
  early: Set<number> | undefined = undefined
  overflow = false
  state: ConnState = ConnState.Connecting
  sock: Closable | undefined = undefined

  constructor(
    /** Index into the worker's channel list. */
    readonly ch: number,
    /** performance.now() when the socket was created. */
    readonly startAt: number,
  ) {}
}

/** What a protocol reports about its connections; the worker counts and times it. */
export interface ConnSink {
  /** A publication arrived; `now` is the receive time on the shared clock (ms). */
  deliver(c: Conn, seq: number, t: number, now: number): void
  /** The server accepted the connection (holdfast: connect result; peers: open). */
  handshaken(c: Conn): void
  /** The subscription is confirmed. */
  subscribed(c: Conn): void
  /** The connection ended: a failure before `subscribed`, a disconnect after it. */
  ended(c: Conn, reason: string): void
}

export interface ClientProtocolImpl {
  open(c: Conn, localAddress: string): void
}

/** The time base shared by every process on this machine: publishers stamp `t` with it. */
export function clockMs(): number {
  return performance.timeOrigin + performance.now()
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57
}

/**
 * Read `"seq":N` and then `"t":X` from `s` starting at `from`, without JSON.parse: the deliveries
 * are the hot path of a load generator that must outrun the server it measures. Returns false when
 * the text is not shaped as expected (the caller then falls back to JSON.parse).
 */
function scanSeqT(s: string, from: number, to: number, out: { seq: number; t: number }): boolean {
  const i = s.indexOf('"seq":', from)
  if (i === -1 || i >= to) return false
  let k = i + 6
  let seq = 0
  const start = k
  while (k < s.length && isDigit(s.charCodeAt(k))) seq = seq * 10 + (s.charCodeAt(k++) - 48)
  if (k === start) return false
  const j = s.indexOf('"t":', k)
  if (j === -1 || j >= to) return false
  let e = j + 4
  while (e < s.length) {
    const c = s.charCodeAt(e)
    if (!(isDigit(c) || c === 46 /* . */ || c === 101 /* e */ || c === 43 /* + */ || c === 45 /* - */)) break
    e++
  }
  const t = Number(s.slice(j + 4, e))
  if (!Number.isFinite(t)) return false
  out.seq = seq
  out.t = t
  return true
}

const scratch = { seq: 0, t: 0 }

function readData(v: unknown, out: { seq: number; t: number }): boolean {
  if (typeof v !== 'object' || v === null) return false
  const { seq, t } = v as { seq?: unknown; t?: unknown }
  if (typeof seq !== 'number' || typeof t !== 'number') return false
  out.seq = seq
  out.t = t
  return true
}

function errorReason(err: Error): string {
  // ws reports a refused upgrade as "Unexpected server response: 429".
  const m = /Unexpected server response: (\d+)/.exec(err.message)
  if (m !== null) return `http ${m[1]}`
  const code = (err as NodeJS.ErrnoException).code
  return code !== undefined ? `error ${code}` : `error ${err.message}`
}

const WS_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true } as const

/** holdfast over JSON: `connect` and `subscribe` in the first frame, pongs to pings, pubs scanned. */
function holdfastProtocol(setup: WorkerSetup, sink: ConnSink): ClientProtocolImpl {
  const token = setup.token === undefined ? '' : `,"token":${JSON.stringify(setup.token)}`
  // One frame per channel, built once: pipelining subscribe behind connect saves a round trip
  // per connection; the server runs a frame's commands in order.
  const hello = setup.channels.map(
    (ch) => `{"id":1,"type":"connect","version":1,"name":"holdfast-bench"${token}}\n{"id":2,"type":"subscribe","channel":${JSON.stringify(ch)}}`,
  )
  const control = (c: Conn, ws: WebSocket, line: string): void => {
    let msg: { id?: number; type?: string; result?: unknown; error?: { code?: number; message?: string }; data?: unknown; code?: number }
    try {
      msg = JSON.parse(line) as typeof msg
    } catch {
      sink.ended(c, 'bad frame from server')
      ws.terminate()
      return
    }
    if (msg.id === 1) {
      if (msg.error !== undefined) {
        sink.ended(c, `connect refused ${msg.error.code ?? ''}`.trim())
        ws.close()
      } else sink.handshaken(c)
    } else if (msg.id === 2) {
      if (msg.error !== undefined) {
        sink.ended(c, `subscribe refused ${msg.error.code ?? ''}`.trim())
        ws.close()
      } else sink.subscribed(c)
    } else if (msg.type === 'pub' && readData(msg.data, scratch)) sink.deliver(c, scratch.seq, scratch.t, clockMs())
  }
  return {
    open(c, localAddress) {
      const ws = new WebSocket(setup.url, [Subprotocols.json], { ...WS_OPTIONS, localAddress })
      c.sock = ws
      ws.on('open', () => ws.send(hello[c.ch] as string))
      ws.on('message', (data: Buffer) => {
        const text = data.toString()
        const now = clockMs()
        let start = 0
        while (start < text.length) {
          let end = text.indexOf('\n', start)
          if (end === -1) end = text.length
          if (text.startsWith('{"type":"pub"', start)) {
            // The server writes `data` last but one (before an optional `info`): scan from its key.
            const d = text.indexOf('"data":', start)
            if (d !== -1 && d < end && scanSeqT(text, d, end, scratch)) sink.deliver(c, scratch.seq, scratch.t, now)
            else control(c, ws, text.slice(start, end))
          } else if (text.startsWith('{"type":"ping"}', start)) ws.send('{"type":"pong"}')
          else control(c, ws, text.slice(start, end))
          start = end + 1
        }
      })
      ws.on('error', (err) => sink.ended(c, errorReason(err)))
      ws.on('close', (code) => sink.ended(c, `close ${code}`))
    },
  }
}

/**
 * The JSON adapter of the raw `ws` and uWebSockets.js peers: `{"op":"sub","channel":C}` answered
 * by `{"op":"subok"}`; each delivery is the publication's data itself, `{"seq":..,"t":..,"pad":..}`.
 */
function jsonProtocol(setup: WorkerSetup, sink: ConnSink): ClientProtocolImpl {
  const sub = setup.channels.map((ch) => JSON.stringify({ op: 'sub', channel: ch }))
  return {
    open(c, localAddress) {
      const ws = new WebSocket(setup.url, { ...WS_OPTIONS, localAddress })
      c.sock = ws
      ws.on('open', () => {
        sink.handshaken(c)
        ws.send(sub[c.ch] as string)
      })
      ws.on('message', (data: Buffer) => {
        const text = data.toString()
        if (text.startsWith('{"seq":') && scanSeqT(text, 0, text.length, scratch)) sink.deliver(c, scratch.seq, scratch.t, clockMs())
        else if (text.startsWith('{"op":"subok"')) sink.subscribed(c)
        else {
          sink.ended(c, 'bad frame from server')
          ws.terminate()
        }
      })
      ws.on('error', (err) => sink.ended(c, errorReason(err)))
      ws.on('close', (code) => sink.ended(c, `close ${code}`))
    },
  }
}

interface IoSocket {
  on(event: string, fn: (...args: never[]) => void): unknown
  emit(event: string, ...args: unknown[]): unknown
  close(): void
}
type IoFactory = (url: string, opts: Record<string, unknown>) => IoSocket

/** Socket.IO: websocket transport only, no reconnection; `sub` with an ack, deliveries as `m` events. */
async function socketIoProtocol(setup: WorkerSetup, sink: ConnSink): Promise<ClientProtocolImpl> {
  let io: IoFactory
  try {
    io = (await import('socket.io-client')).io as unknown as IoFactory
  } catch (err) {
    throw new Error(`the Socket.IO peer needs socket.io-client, an optional package: npm install socket.io-client (${(err as Error).message.split('\n')[0]})`)
  }
  return {
    open(c, localAddress) {
      const s = io(setup.url, {
        transports: ['websocket'],
        forceNew: true,
        reconnection: false,
        timeout: setup.connectTimeoutMs,
        localAddress,
        perMessageDeflate: false,
      })
      c.sock = s
      s.on('connect', () => {
        sink.handshaken(c)
        s.emit('sub', setup.channels[c.ch], () => sink.subscribed(c))
      })
      s.on('m', (data: never) => {
        if (readData(data, scratch)) sink.deliver(c, scratch.seq, scratch.t, clockMs())
      })
      s.on('connect_error', (err: never) => sink.ended(c, `connect_error ${(err as Error).message}`))
      s.on('disconnect', (reason: never) => sink.ended(c, `disconnect ${String(reason)}`))
    },
  }
}

export async function makeClientProtocol(setup: WorkerSetup, sink: ConnSink): Promise<ClientProtocolImpl> {
  if (setup.protocol === 'holdfast') return holdfastProtocol(setup, sink)
  if (setup.protocol === 'json') return jsonProtocol(setup, sink)
  return socketIoProtocol(setup, sink)
}
