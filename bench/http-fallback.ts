/**
 * The HTTP-streaming fallback beside WebSocket: the same server (bench/fallback-server.ts, its own
 * process), the same N subscribers (client SDK in this process) and the same publisher; once with
 * WebSocket, once with upgrades refused so that every client rides the fallback. Reports delivery
 * latency (publish call to `publication` event, one clock) and the server's CPU time per delivery,
 * and their ratios. Every delivery is checked: none lost, none twice.
 *
 *   node --conditions=source --import tsx bench/http-fallback.ts [--clients 200] [--rate 50] [--seconds 20]
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { HoldfastClient } from '@holdfast/client'
import { WebSocket } from 'ws'

const { values } = parseArgs({ options: { clients: { type: 'string', default: '200' }, rate: { type: 'string', default: '50' }, seconds: { type: 'string', default: '20' } } })
const N = Number(values.clients)
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const root = new URL('..', import.meta.url).pathname

interface Result {
  transport: string
  deliveries: number
  lost: number
  duplicated: number
  p50: number
  p99: number
  cpuUsPerDelivery: number
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN

async function run(fallback: boolean): Promise<Result> {
  const server = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', `${root}bench/fallback-server.ts`, ...(fallback ? ['--refuse-upgrades'] : [])], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: server.stdout })
  const waiting: Array<(l: string) => void> = []
  lines.on('line', (l) => waiting.shift()?.(l))
  const next = () => new Promise<string>((r) => waiting.push(r))
  const port = Number((await next()).split(' ')[1])
  const cpu = async (): Promise<number> => {
    const answer = next()
    server.stdin.write('cpu\n')
    return Number((await answer).split(' ')[1])
  }
  const url = `ws://127.0.0.1:${port}/ws`
  const latencies: number[] = []
  const seen = new Map<number, Set<number>>()
  let duplicated = 0
  const clients: HoldfastClient[] = []
  for (let i = 0; i < N; i++) {
    const c = new HoldfastClient(url, { WebSocket, minReconnectDelayMs: 10, maxReconnectDelayMs: 50 })
    c.on('error', () => {})
    const got = new Set<number>()
    seen.set(i, got)
    const sub = c.subscribe('bench')
    sub.on('publication', (p) => {
      const d = p.data as { n: number; t: number }
      latencies.push(performance.now() - d.t)
      if (got.has(d.n)) duplicated++
      got.add(d.n)
    })
    c.connect()
    clients.push(c)
  }
  await Promise.all(clients.map((c) => new Promise<void>((r) => (c.getSubscription('bench')?.state === 'subscribed' ? r() : c.getSubscription('bench')?.once('subscribed', () => r())))))
  const publisher = clients[0] as HoldfastClient
  const total = RATE * SECONDS
  const cpuStart = await cpu()
  const started = performance.now()
  for (let n = 1; n <= total; n++) {
    const due = started + (n * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    void publisher.publish('bench', { n, t: performance.now() })
  }
  const deadline = performance.now() + 10_000
  while (latencies.length < total * N && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const cpuUs = (await cpu()) - cpuStart
  for (const c of clients) c.close()
  server.kill('SIGTERM')
  const sorted = [...latencies].sort((a, b) => a - b)
  let lost = 0
  for (const got of seen.values()) lost += total - got.size
  return { transport: fallback ? 'HTTP streaming (fallback)' : 'WebSocket', deliveries: latencies.length, lost, duplicated, p50: pct(sorted, 50), p99: pct(sorted, 99), cpuUsPerDelivery: cpuUs / Math.max(1, latencies.length) }
}

const ws = await run(false)
const http = await run(true)
console.log(`${N} subscribers, ${RATE} publications/s for ${SECONDS} s (${RATE * SECONDS * N} deliveries each)\n`)
console.log('| transport | deliveries | lost | dup | latency p50 / p99 ms | server CPU µs / delivery |\n| --- | --- | --- | --- | --- | --- |')
for (const r of [ws, http]) console.log(`| ${r.transport} | ${r.deliveries} | ${r.lost} | ${r.duplicated} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} | ${r.cpuUsPerDelivery.toFixed(2)} |`)
console.log(`\nfallback / WebSocket: latency p50 ${(http.p50 / ws.p50).toFixed(2)}x, p99 ${(http.p99 / ws.p99).toFixed(2)}x, CPU per delivery ${(http.cpuUsPerDelivery / ws.cpuUsPerDelivery).toFixed(2)}x`)
process.exit(0)
