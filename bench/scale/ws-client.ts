/**
 * The same load as generator.ts (connect, subscribe, pong), over the `ws` client library with
 * permessage-deflate off and the listeners shared by every socket: what the scale bench's
 * generator would cost per connection on a library instead of on bare sockets. Run by
 * bench/scale/client-cost.ts (docs/benchmarks.md, "A million connections"), not by the bench.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type { GeneratorConfig, GeneratorProgress } from './generator.js'

const raw = process.env.HOLDFAST_SCALE_GENERATOR
if (raw === undefined || process.send === undefined) throw new Error('ws-client: started without its config')
const cfg = JSON.parse(raw) as GeneratorConfig
const stats = { opened: 0, ready: 0, failed: 0, pings: 0 }
let pending = 0
const rssBaselineBytes = process.memoryUsage.rss()
const CONNECT = '{"id":1,"type":"connect","version":1,"name":"scale-bench"}'
const SUBSCRIBE = JSON.stringify({ id: 2, type: 'subscribe', channel: cfg.channel })
const url = `ws://${cfg.host}:${cfg.port}${cfg.path}`

function onOpen(this: WebSocket): void {
  this.send(CONNECT)
}

function onMessage(this: WebSocket, data: Buffer): void {
  for (const line of data.toString().split('\n')) {
    if (line === '') continue
    const m = JSON.parse(line) as { id?: number; type?: string }
    if (m.type === 'ping') {
      stats.pings++
      this.send('{"type":"pong"}')
    } else if (m.id === 1) this.send(SUBSCRIBE)
    else if (m.id === 2) {
      stats.ready++
      pending--
    }
  }
}

function onError(): void {
  stats.failed++
  pending--
}

function open(i: number): void {
  const ws = new WebSocket(url, cfg.protocol === undefined ? [] : [cfg.protocol], { perMessageDeflate: false, localAddress: cfg.sourceIps[i % cfg.sourceIps.length] as string })
  ws.on('open', onOpen)
  ws.on('message', onMessage)
  ws.on('error', onError)
  stats.opened++
  pending++
}

const send = process.send.bind(process)
setInterval(() => {
  const cpu = process.cpuUsage()
  const p: GeneratorProgress = {
    type: 'progress',
    ...stats,
    pending,
    closed: 0,
    delivered: 0,
    cpuUs: cpu.user + cpu.system,
    cpuSystemUs: cpu.system,
    rssBytes: process.memoryUsage.rss(),
    rssBaselineBytes,
  }
  send(p)
}, 1000)
process.on('disconnect', () => process.exit(0))
let last = performance.now()
let allowance = 0
const timer = setInterval(() => {
  const t = performance.now()
  allowance = Math.min(allowance + ((t - last) / 1000) * cfg.rate, cfg.maxPending)
  last = t
  while (allowance >= 1 && stats.opened < cfg.connections && pending < cfg.maxPending) {
    open(stats.opened)
    allowance--
  }
  if (stats.opened >= cfg.connections) clearInterval(timer)
}, 20)
