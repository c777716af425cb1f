import WebSocket from 'ws'
import { Subprotocols } from '@holdfast/protocol'
import { clockMs } from './client-protocols.js'
import type { ChannelLog, ClientProtocol, DrainTarget } from './types.js'

/**
 * The publisher: one or a few client connections in the bench's main process that publish at the
 * set rate, each publication `{"seq":S,"t":T,"pad":"..."}` with a per-channel sequence and its
 * send time on the clock every bench process shares. A client connection rather than a server
 * API, so that the four servers of `--compare` are driven the same way (holdfast has no privileged
 * path the peers lack) and any holdfast URL can be loaded without an API key. Each channel has
 * exactly one publisher connection, so its sequence order is its delivery order.
 */
export interface PublisherOptions {
  url: string
  protocol: ClientProtocol
  channels: string[]
  /** Target size of a publication's data in bytes. */
  size: number
  token: string | undefined
  /** Publisher connections; channel k is published by connection k % publishers. */
  publishers: number
  connectTimeoutMs: number
}

/** Send times by sequence; NaN marks a publication the server refused (not owed to anyone). */
class GrowLog {
  private buf = new Float64Array(1024)
  n = 0
  push(t: number): number {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2)
      next.set(this.buf)
      this.buf = next
    }
    this.buf[this.n] = t
    return this.n++
  }
  refuse(seq: number): void {
    if (seq < this.n) this.buf[seq] = Number.NaN
  }
  /** When the last publication was sent; NaN before any. */
  lastT(): number {
    return this.n === 0 ? Number.NaN : (this.buf[this.n - 1] as number)
  }
  snapshot(): Float64Array {
    return this.buf.slice(0, this.n)
  }
}

interface PubConn {
  publish(channel: number, seq: number, data: string): void
  close(): void
  /** Why the server closed this connection, once it has: later publications are not sent. */
  closed: string | undefined
}

/** Characters of `{"seq":,"t":,"pad":""}` plus a typical sequence (5 digits) and send time (17). */
const DATA_OVERHEAD = 22 + 5 + 17

export class Publisher {
  published = 0
  readonly errors: Record<string, number> = {}
  private readonly logs: GrowLog[]
  private readonly pad: string
  private timer: NodeJS.Timeout | undefined
  private next = 0
  private conns: PubConn[] = []

  private constructor(private readonly opts: PublisherOptions) {
    this.logs = opts.channels.map(() => new GrowLog())
    this.pad = 'x'.repeat(Math.max(0, opts.size - DATA_OVERHEAD))
  }

  static async start(opts: PublisherOptions): Promise<Publisher> {
    const p = new Publisher(opts)
    const n = Math.max(1, Math.min(opts.publishers, opts.channels.length))
    try {
      for (let i = 0; i < n; i++) p.conns.push(await p.connect())
    } catch (err) {
      p.close()
      throw err
    }
    return p
  }

  private refused(channel: number, seq: number, reason: string): void {
    this.logs[channel]?.refuse(seq)
    this.errors[reason] = (this.errors[reason] ?? 0) + 1
  }

  private connect(): Promise<PubConn> {
    const { protocol } = this.opts
    if (protocol === 'socketio') return this.connectSocketIo()
    return new Promise<PubConn>((resolve, reject) => {
      const ws = new WebSocket(this.opts.url, protocol === 'holdfast' ? [Subprotocols.json] : [], { perMessageDeflate: false })
      const timer = setTimeout(() => {
        ws.terminate()
        reject(new Error(`publisher could not connect to ${this.opts.url} within ${this.opts.connectTimeoutMs} ms`))
      }, this.opts.connectTimeoutMs)
      ws.on('error', (err) => {
        clearTimeout(timer)
        reject(new Error(`publisher could not connect to ${this.opts.url}: ${err.message}`))
      })
      const channels = this.opts.channels.map((c) => JSON.stringify(c))
      if (protocol === 'json') {
        ws.on('open', () => {
          clearTimeout(timer)
          const conn: PubConn = {
            publish: (ch, _seq, data) => ws.send(`{"op":"pub","channel":${channels[ch]},"data":${data}}`),
            close: () => ws.terminate(),
            closed: undefined,
          }
          ws.on('close', (code) => (conn.closed = `publisher closed ${code}`))
          resolve(conn)
        })
        return
      }
      // holdfast: connect, then publish commands with ids; a refused one is struck from the log.
      let id = 1
      const inflight = new Map<number, number>()
      let conn: PubConn | undefined
      let farewell: string | undefined
      const token = this.opts.token === undefined ? '' : `,"token":${JSON.stringify(this.opts.token)}`
      ws.on('open', () => ws.send(`{"id":${id++},"type":"connect","version":1,"name":"holdfast-bench-publisher"${token}}`))
      ws.on('message', (raw: Buffer) => {
        for (const line of raw.toString().split('\n')) {
          if (line.length === 0) continue
          const msg = JSON.parse(line) as { id?: number; type?: string; result?: unknown; error?: { code: number; message: string }; code?: number; reason?: string }
          if (msg.type === 'ping') ws.send('{"type":"pong"}')
          if (msg.type === 'disconnect') farewell = `${msg.reason ?? ''} (${msg.code ?? ''})`
          if (msg.id === undefined) continue
          if (msg.id === 1) {
            clearTimeout(timer)
            if (msg.error !== undefined) {
              ws.close()
              reject(new Error(`publisher was refused by ${this.opts.url}: ${msg.error.message} (${msg.error.code})`))
              return
            }
            conn = {
              publish: (ch, seq, data) => {
                const cmd = id++
                inflight.set(cmd, ch * 0x100000000 + seq)
                ws.send(`{"id":${cmd},"type":"publish","channel":${channels[ch]},"data":${data},"msgId":"b${cmd}"}`)
              },
              close: () => ws.terminate(),
              closed: undefined,
            }
            resolve(conn)
            continue
          }
          const key = inflight.get(msg.id)
          if (key === undefined) continue
          inflight.delete(msg.id)
          if (msg.error !== undefined) this.refused(Math.floor(key / 0x100000000), key % 0x100000000, `error ${msg.error.code}`)
        }
      })
      ws.on('close', (code, reason) => {
        if (conn === undefined) {
          // Refused at connect (a bad token...): the server closes without replying to it.
          clearTimeout(timer)
          reject(new Error(`publisher was refused by ${this.opts.url}: closed with ${code} ${farewell ?? reason.toString()}`.trim()))
          return
        }
        conn.closed = `publisher closed ${code}`
        // Unacknowledged publications may or may not have been stored: owed to no one.
        for (const key of inflight.values()) this.refused(Math.floor(key / 0x100000000), key % 0x100000000, `publisher closed ${code}`)
        inflight.clear()
      })
    })
  }

  private async connectSocketIo(): Promise<PubConn> {
    const { io } = await import('socket.io-client')
    const s = io(this.opts.url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: this.opts.connectTimeoutMs })
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve())
      s.once('connect_error', (err) => reject(new Error(`publisher could not connect to ${this.opts.url}: ${err.message}`)))
    })
    const channels = this.opts.channels
    const conn: PubConn = {
      // Socket.IO serializes the event itself; handing it the parsed object is how an app would.
      publish: (ch, _seq, data) => s.emit('pub', { channel: channels[ch], data: JSON.parse(data) as unknown }),
      close: () => s.close(),
      closed: undefined,
    }
    s.on('disconnect', (reason) => (conn.closed = `publisher disconnected (${reason})`))
    return conn
  }

  private publishOne(): void {
    const ch = this.next++ % this.logs.length
    const log = this.logs[ch] as GrowLog
    const t = clockMs()
    const seq = log.push(t)
    this.published++
    const conn = this.conns[ch % this.conns.length] as PubConn
    if (conn.closed !== undefined) this.refused(ch, seq, conn.closed)
    else conn.publish(ch, seq, `{"seq":${seq},"t":${t},"pad":"${this.pad}"}`)
  }

  /** Publish `rate` per second, round-robin over the channels, until stop(). */
  start(rate: number): void {
    this.stop()
    if (rate <= 0) return
    const t0 = performance.now()
    let sent = 0
    // Due publications are computed from elapsed time, so timer lateness does not lower the rate;
    // the catch-up is capped at one second's worth, so a stalled loop does not fire a flood.
    const period = Math.max(1, Math.min(10, 1000 / rate))
    const tick = (): void => {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) + 1
      if (due - sent > rate) sent = due - Math.ceil(rate)
      while (sent < due) {
        this.publishOne()
        sent++
      }
      this.timer = setTimeout(tick, period)
    }
    tick()
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  /** Per channel, what a caught-up subscriber has received: the count and time of the last publication. */
  drainTargets(): DrainTarget[] {
    return this.logs.map((l) => ({ count: l.n, t: l.lastT() }))
  }

  channelLogs(): ChannelLog[] {
    return this.logs.map((l) => ({ t: l.snapshot() }))
  }

  close(): void {
    this.stop()
    for (const c of this.conns) c.close()
    this.conns = []
  }
}
