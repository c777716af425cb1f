/**
 * RPC round trip through the backend proxy, beside the backend called directly (issue #16).
 *
 * Three processes on loopback: an HTTP backend (node:http, keep-alive, answers `/rpc` with the
 * data it got), a holdfast gateway with `proxy.rpc` pointing at it (and one local `onRpc` handler),
 * and this process as the client. Sequential calls, one in flight at a time, after a warm-up:
 *
 * - `direct`: the client POSTs the proxy's request body to the backend itself (undici keep-alive
 *   pool): what calling the backend costs without holdfast.
 * - `local`: an RPC over the WebSocket to a handler inside the gateway: holdfast's own round trip.
 * - `proxied`: an RPC over the WebSocket that the gateway forwards to the backend.
 *
 * `proxied - direct` at p50 is what the proxy path adds to a call the app would make anyway;
 * `proxied - local` is what the backend hop adds inside the gateway.
 *
 *   flock /tmp/holdfast-bench.lock node --conditions=source --import tsx bench/proxy-rpc.ts [--calls 5000] [--warmup 500] [--json FILE]
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import WebSocket from 'ws'

const SELF = fileURLToPath(import.meta.url)
const LOADER = ['--conditions=source', '--import', 'tsx']

async function backendRole(): Promise<number> {
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => {
      const call = JSON.parse(body) as { data?: unknown }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ result: { data: call.data ?? null } }))
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

async function serverRole(backendUrl: string): Promise<number> {
  const { createHoldfast } = await import('@holdfast/server')
  const unlimited = { perSecond: 1_000_000, burst: 1_000_000 }
  const holdfast = createHoldfast({ logger: false, commandRate: unlimited, maxMessageIdsPerUser: 10_000_000, proxy: { rpc: { url: `${backendUrl}/rpc` } } })
  holdfast.onRpc('local', (_ctx, data) => data)
  const http = createServer()
  holdfast.attach(http)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  await holdfast.ready()
  return (http.address() as AddressInfo).port
}

function child(role: string, arg: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = fork(SELF, ['--role', role, '--arg', arg], { execArgv: LOADER, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    proc.once('message', (m: { port: number }) => resolve({ proc, port: m.port }))
    proc.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)))
  })
}

function pct(sorted: number[], p: number): number {
  return Math.round((sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN) * 1000) / 1000
}

function summary(ms: number[]): { p50: number; p99: number; mean: number } {
  const s = [...ms].sort((a, b) => a - b)
  return { p50: pct(s, 50), p99: pct(s, 99), mean: Math.round((s.reduce((a, b) => a + b, 0) / s.length) * 1000) / 1000 }
}

async function timed(n: number, call: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await call(i)
    out.push(performance.now() - t0)
  }
  return out
}

/** A raw protocol client: one RPC at a time, answered by id. */
async function wsClient(url: string): Promise<{ rpc(method: string, i: number): Promise<void>; close(): void }> {
  const ws = new WebSocket(url, ['holdfast.v1.json'], { perMessageDeflate: false })
  await once(ws, 'open')
  let waiting: ((line: string) => void) | undefined
  ws.on('message', (raw: Buffer) => {
    for (const line of raw.toString().split('\n')) if (line.startsWith('{"id":')) waiting?.(line)
  })
  let id = 0
  const send = (msg: object): Promise<void> =>
    new Promise((resolve, reject) => {
      waiting = (line) => (line.includes('"error"') ? reject(new Error(line)) : resolve())
      ws.send(JSON.stringify({ id: ++id, ...msg }))
    })
  await send({ type: 'connect', version: 1 })
  return {
    rpc: (method, i) => send({ type: 'rpc', method, data: { n: i, text: 'hello' }, msgId: `${method}-${i}` }),
    close: () => ws.close(),
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '5000' }, warmup: { type: 'string', default: '500' }, json: { type: 'string' } } })
  const calls = Number(values.calls)
  const warmup = Number(values.warmup)
  const backend = await child('backend', '')
  const backendUrl = `http://127.0.0.1:${backend.port}`
  const server = await child('server', backendUrl)
  try {
    const pool = new Pool(backendUrl, { connections: 1 })
    const direct = async (i: number): Promise<void> => {
      const body = JSON.stringify({ client: 'c', user: '', remoteAddr: '127.0.0.1', protocol: 'json', traceId: '0'.repeat(32), headers: {}, method: 'echo', data: { n: i, text: 'hello' } })
      const res = await pool.request({ path: '/rpc', method: 'POST', headers: { 'content-type': 'application/json' }, body })
      await res.body.text()
    }
    const c = await wsClient(`ws://127.0.0.1:${server.port}/ws`)
    const results: Record<string, { p50: number; p99: number; mean: number }> = {}
    // Interleaved rounds, so that a noisy neighbour slows all three alike.
    const samples: Record<string, number[]> = { direct: [], local: [], proxied: [] }
    await timed(warmup, direct)
    await timed(warmup, (i) => c.rpc('local', -1 - i))
    await timed(warmup, (i) => c.rpc('echo', -1 - i))
    const round = 500
    for (let done = 0; done < calls; done += round) {
      samples['direct']?.push(...(await timed(round, direct)))
      samples['local']?.push(...(await timed(round, (i) => c.rpc('local', done + i))))
      samples['proxied']?.push(...(await timed(round, (i) => c.rpc('echo', done + i))))
    }
    for (const [k, v] of Object.entries(samples)) results[k] = summary(v)
    c.close()
    await pool.close()
    const r = results as Record<'direct' | 'local' | 'proxied', { p50: number; p99: number; mean: number }>
    console.log(`${calls} sequential calls each (after ${warmup} warm-up), Node ${process.version}`)
    console.log('| path | p50 ms | p99 ms | mean ms |\n| --- | --- | --- | --- |')
    for (const k of ['direct', 'local', 'proxied'] as const) console.log(`| ${k} | ${r[k].p50} | ${r[k].p99} | ${r[k].mean} |`)
    console.log(`added by the proxy path over calling the backend directly: p50 ${(r.proxied.p50 - r.direct.p50).toFixed(3)} ms, p99 ${(r.proxied.p99 - r.direct.p99).toFixed(3)} ms`)
    console.log(`added by the backend hop over a local handler: p50 ${(r.proxied.p50 - r.local.p50).toFixed(3)} ms`)
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), node: process.version, calls, results }, null, 2)}\n`)
  } finally {
    for (const p of [server.proc, backend.proc]) p.kill()
  }
}

const role = process.argv.includes('--role') ? process.argv[process.argv.indexOf('--role') + 1] : undefined
if (role !== undefined) {
  const arg = process.argv[process.argv.indexOf('--arg') + 1] ?? ''
  const start = role === 'backend' ? backendRole() : serverRole(arg)
  start.then(
    (port) => process.send?.({ port }),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
  process.on('disconnect', () => process.exit(0))
} else {
  await main()
}
