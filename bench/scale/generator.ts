/**
 * One load-generator process of the scale bench (bench/scale.ts forks several, bundled, under
 * plain node): it opens its share of the connections from its source addresses, speaks the
 * holdfast protocol over them (connect, subscribe, pong every ping), and counts every publication
 * each connection receives, with the delivery latency.
 *
 * Per connection it holds one `ScaleSocket` (a `net.Socket` with four fields) and nothing else:
 * the listeners are module-level functions shared by every socket, the frames it sends are built
 * once per process (frames.ts), and connect timeouts are one sweep per second over the sockets
 * still connecting, not a timer per socket. A process holds at most 19,000 sockets (20,000 open
 * files per process).
 *
 * Messages from the parent (IPC): `{ type: 'report', lastOffset }` asks for the final figures,
 * with the offset of the last publication so each connection's missing tail counts as lost;
 * `{ type: 'close' }` destroys every socket and exits.
 */
import { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'
import { clientFrame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, parseFrames, upgradeRequest, type FrameSink } from './frames.js'

export interface GeneratorConfig {
  host: string
  port: number
  path: string
  /** Subprotocol to offer; the reference server takes none. */
  protocol: string | undefined
  channel: string
  connections: number
  /** Connections opened per second by this process. */
  rate: number
  /** Most handshakes in flight at once in this process. */
  maxPending: number
  sourceIps: string[]
  connectTimeoutMs: number
}

export interface GeneratorProgress {
  type: 'progress'
  opened: number
  ready: number
  pending: number
  failed: number
  /** Connections that were ready and then closed. */
  closed: number
  delivered: number
  pings: number
  cpuUs: number
  /** The kernel's share of cpuUs (on loopback, much of the TCP work of both ends). */
  cpuSystemUs: number
  rssBytes: number
  rssBaselineBytes: number
}

export interface GeneratorReport {
  type: 'report'
  ready: number
  open: number
  failures: Record<string, number>
  closedAfterReady: Record<string, number>
  delivered: number
  lost: number
  duplicated: number
  pings: number
  /** Delivery latency (µs), hdr-histogram compressed base64. */
  latency: string
  /** Handshake time, TCP connect to the subscribe reply (µs), same encoding. */
  handshake: string
  /** Per publication number: deliveries, and the latest delivery's latency in µs. */
  perPublication: Array<{ n: number; count: number; lastUs: number }>
  cpuUs: number
  cpuSystemUs: number
  rssBytes: number
  /** RSS before the first connection. */
  rssBaselineBytes: number
}

const PHASE_UPGRADE = 0
const PHASE_CONNECT = 1
const PHASE_SUBSCRIBE = 2
const PHASE_READY = 3
const PHASE_CLOSED = 4

const now = (): number => performance.timeOrigin + performance.now()

let cfg: GeneratorConfig
let UPGRADE: Buffer
let CONNECT: Buffer
let SUBSCRIBE: Buffer
const PONG = clientFrame(OP_TEXT, Buffer.from('{"type":"pong"}'))
const EMPTY_PONG = clientFrame(OP_PONG, Buffer.alloc(0))

const stats = {
  opened: 0,
  ready: 0,
  failed: 0,
  closed: 0,
  delivered: 0,
  lost: 0,
  duplicated: 0,
  pings: 0,
}
const failures: Record<string, number> = {}
const closedAfterReady: Record<string, number> = {}
const latency = hdr.build({ numberOfSignificantValueDigits: 3, autoResize: true })
const handshake = hdr.build({ numberOfSignificantValueDigits: 3, autoResize: true })
const perPubCount = new Map<number, number>()
const perPubLast = new Map<number, number>()
const sockets: ScaleSocket[] = []
const connecting = new Set<ScaleSocket>()

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1
}

class ScaleSocket extends Socket implements FrameSink {
  phase = PHASE_UPGRADE
  /** Bytes of an incomplete frame (or of the HTTP response during the upgrade). */
  rest: Buffer | undefined = undefined
  /** Offset of the last publication delivered; -1 before the subscribe reply. */
  offset = -1
  /** When the TCP connect started (ms), until ready. */
  startedAt = 0

  fail(reason: string): void {
    if (this.phase === PHASE_CLOSED) return
    if (this.phase === PHASE_READY) {
      stats.closed++
      count(closedAfterReady, reason)
    } else {
      stats.failed++
      count(failures, reason)
      connecting.delete(this)
    }
    this.phase = PHASE_CLOSED
    this.destroy()
  }

  frame(opcode: number, payload: Buffer): void {
    if (opcode === OP_TEXT || opcode === OP_BINARY) {
      const text = payload.toString()
      let from = 0
      while (from < text.length) {
        let nl = text.indexOf('\n', from)
        if (nl === -1) nl = text.length
        if (nl > from) this.message(JSON.parse(text.slice(from, nl)) as Message)
        from = nl + 1
      }
    } else if (opcode === OP_PING) {
      stats.pings++
      this.write(payload.length === 0 ? EMPTY_PONG : clientFrame(OP_PONG, payload))
    } else if (opcode === OP_CLOSE) {
      this.fail(`close ${payload.length >= 2 ? payload.readUInt16BE(0) : 1005}`)
    }
  }

  message(m: Message): void {
    if (m.type === 'pub') return this.delivery(m)
    if (m.type === 'ping') {
      stats.pings++
      this.write(PONG)
      return
    }
    if (m.type === 'disconnect') return this.fail(`disconnect ${m.code ?? '?'}`)
    if (m.id === undefined) return
    if (m.error !== undefined) return this.fail(`${this.phase === PHASE_CONNECT ? 'connect' : 'subscribe'} error ${m.error.code}`)
    if (this.phase === PHASE_CONNECT && m.id === 1) {
      this.phase = PHASE_SUBSCRIBE
      this.write(SUBSCRIBE)
    } else if (this.phase === PHASE_SUBSCRIBE && m.id === 2) {
      this.phase = PHASE_READY
      this.offset = m.result?.offset ?? 0
      connecting.delete(this)
      stats.ready++
      handshake.recordValue(Math.max(1, Math.round((now() - this.startedAt) * 1000)))
    }
  }

  delivery(m: Message): void {
    const offset = m.offset ?? 0
    if (offset <= this.offset) {
      stats.duplicated++
      return
    }
    if (this.offset >= 0) stats.lost += offset - this.offset - 1
    this.offset = offset
    stats.delivered++
    const data = m.data
    if (data === undefined || typeof data.t !== 'number') return
    const us = Math.max(1, Math.round((now() - data.t) * 1000))
    latency.recordValue(us)
    const n = data.n ?? -1
    perPubCount.set(n, (perPubCount.get(n) ?? 0) + 1)
    if (us > (perPubLast.get(n) ?? 0)) perPubLast.set(n, us)
  }
}

interface Message {
  id?: number
  type?: string
  code?: number
  offset?: number
  data?: { t?: number; n?: number }
  result?: { offset?: number }
  error?: { code: number }
}

function onConnect(this: ScaleSocket): void {
  this.setNoDelay(true)
  this.write(UPGRADE)
}

function onData(this: ScaleSocket, chunk: Buffer): void {
  let data = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk])
  this.rest = undefined
  try {
    if (this.phase === PHASE_UPGRADE) {
      const end = data.indexOf('\r\n\r\n')
      if (end === -1) {
        this.rest = Buffer.from(data)
        return
      }
      const status = data.toString('latin1', 9, 12)
      if (status !== '101') return this.fail(`http ${status}`)
      this.phase = PHASE_CONNECT
      this.write(CONNECT)
      data = data.subarray(end + 4)
      if (data.length === 0) return
    }
    this.rest = parseFrames(data, this)
  } catch (err) {
    this.fail(`protocol: ${err instanceof Error ? err.message : String(err)}`)
  }
}

function onError(this: ScaleSocket, err: NodeJS.ErrnoException): void {
  this.fail(err.code ?? err.message)
}

function onClose(this: ScaleSocket): void {
  this.fail('closed by the server')
}

function open(i: number): void {
  const s = new ScaleSocket()
  s.on('connect', onConnect)
  s.on('data', onData)
  s.on('error', onError)
  s.on('close', onClose)
  s.startedAt = now()
  sockets.push(s)
  connecting.add(s)
  stats.opened++
  s.connect({ host: cfg.host, port: cfg.port, localAddress: cfg.sourceIps[i % cfg.sourceIps.length] as string })
}

function progress(): GeneratorProgress {
  const cpu = process.cpuUsage()
  return {
    type: 'progress',
    opened: stats.opened,
    ready: stats.ready,
    pending: connecting.size,
    failed: stats.failed,
    closed: stats.closed,
    delivered: stats.delivered,
    pings: stats.pings,
    cpuUs: cpu.user + cpu.system,
    cpuSystemUs: cpu.system,
    rssBytes: process.memoryUsage.rss(),
    rssBaselineBytes,
  }
}

function report(lastOffset: number): GeneratorReport {
  let open = 0
  let lost = stats.lost
  for (const s of sockets) {
    if (s.phase !== PHASE_READY) continue
    open++
    // The missing tail: publications after this connection's last delivery.
    if (lastOffset > s.offset) lost += lastOffset - s.offset
  }
  const cpu = process.cpuUsage()
  return {
    type: 'report',
    ready: stats.ready,
    open,
    failures,
    closedAfterReady,
    delivered: stats.delivered,
    lost,
    duplicated: stats.duplicated,
    pings: stats.pings,
    latency: hdr.encodeIntoCompressedBase64(latency),
    handshake: hdr.encodeIntoCompressedBase64(handshake),
    perPublication: [...perPubCount].map(([n, c]) => ({ n, count: c, lastUs: perPubLast.get(n) ?? 0 })),
    cpuUs: cpu.user + cpu.system,
    cpuSystemUs: cpu.system,
    rssBytes: process.memoryUsage.rss(),
    rssBaselineBytes,
  }
}

let rssBaselineBytes = 0

function ramp(): void {
  const TICK_MS = 20
  let allowance = 0
  let last = now()
  const timer = setInterval(() => {
    const t = now()
    allowance = Math.min(allowance + ((t - last) / 1000) * cfg.rate, cfg.maxPending)
    last = t
    while (allowance >= 1 && stats.opened < cfg.connections && connecting.size < cfg.maxPending) {
      open(stats.opened)
      allowance--
    }
    if (stats.opened >= cfg.connections) clearInterval(timer)
  }, TICK_MS)
  // One sweep for every connect timeout.
  setInterval(() => {
    const limit = now() - cfg.connectTimeoutMs
    for (const s of connecting) if (s.startedAt < limit) s.fail('connect timeout')
  }, 1000).unref()
}

function main(): void {
  const raw = process.env.HOLDFAST_SCALE_GENERATOR
  if (raw === undefined || process.send === undefined) throw new Error('generator: started without its config (fork it from bench/scale.ts)')
  cfg = JSON.parse(raw) as GeneratorConfig
  UPGRADE = upgradeRequest(`${cfg.host}:${cfg.port}`, cfg.path, cfg.protocol)
  CONNECT = clientFrame(OP_TEXT, Buffer.from('{"id":1,"type":"connect","version":1,"name":"scale-bench"}'))
  SUBSCRIBE = clientFrame(OP_TEXT, Buffer.from(JSON.stringify({ id: 2, type: 'subscribe', channel: cfg.channel })))
  const send = process.send.bind(process)
  rssBaselineBytes = process.memoryUsage.rss()
  setInterval(() => send(progress()), 1000)
  process.on('message', (m: { type: string; lastOffset?: number }) => {
    if (m.type === 'report') send(report(m.lastOffset ?? 0))
    else if (m.type === 'close') {
      for (const s of sockets) s.destroy()
      process.exit(0)
    }
  })
  // The parent gone: nothing left to report to.
  process.on('disconnect', () => process.exit(0))
  ramp()
}

main()
