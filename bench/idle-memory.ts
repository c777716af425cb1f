/**
 * Memory per idle connection: RSS and heap growth of a server process holding N idle
 * connections, holdfast (connected, one session, two subscriptions) beside raw `ws` (accepting
 * and holding sockets, nothing else), measured the same way in the same run.
 *
 *   node --conditions=source --import tsx bench/idle-memory.ts [--connections 10000]
 *   BENCH_UWS=1 node --conditions=source --import tsx bench/idle-memory.ts   # + holdfast on uWS, raw uWS
 *
 * The server runs in a child process (`--expose-gc`) and reports `process.memoryUsage()` after a
 * GC before the clients connect and again one ping interval (2 s) after they all did, when every
 * connection has been pinged: the state an idle connection keeps; the clients run in another child process, spread over
 * source addresses 127.0.0.1-4 so no single address runs short of ephemeral ports.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'

type Kind = 'holdfast' | 'ws' | 'holdfast-uws' | 'uws'
interface Mem {
  rss: number
  heapUsed: number
  /** Bytes the V8 new space holds (its size follows the allocation rate, not what is kept). */
  newSpace: number
  /** Heap reserved beyond what is used (old space headroom and fragmentation). */
  heapTotal: number
  /** Memory outside the V8 heap owned by JS objects (Buffers, ArrayBuffers). */
  external: number
}

const { values } = parseArgs({ options: { connections: { type: 'string', default: '10000' }, role: { type: 'string' }, kind: { type: 'string' }, url: { type: 'string' } } })
const N = Number(values.connections)
const PING_MS = 2000

async function serverRole(kind: Kind): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run the server role with --expose-gc')
  // Pings every 2 s, so that by the measurement every connection has had one (the steady state of an idle connection).
  const opts = { logger: false as const, pingIntervalMs: PING_MS, maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 } }
  let port: number
  if (kind === 'holdfast-uws') {
    const { createHoldfast } = await import('@holdfast/server')
    port = await createHoldfast({ ...opts, transport: 'uws' }).listen({ host: '127.0.0.1', port: 0 })
  } else if (kind === 'uws') {
    // Raw uWebSockets.js: an open socket that does nothing, as the raw ws server below.
    const { loadUws } = await import('@holdfast/server/internal')
    const loaded = loadUws()
    if ('error' in loaded) throw new Error(loaded.error)
    const app = loaded.uws.App().ws('/ws', { idleTimeout: 0, message: () => {} })
    port = await new Promise<number>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (t) => (t === false ? reject(new Error('uWS could not listen')) : resolve(loaded.uws.us_socket_local_port(t)))),
    )
  } else {
    const http = createServer()
    if (kind === 'holdfast') {
      const { createHoldfast } = await import('@holdfast/server')
      createHoldfast(opts).attach(http)
    } else {
      const { WebSocketServer } = await import('ws')
      const wss = new WebSocketServer({ server: http, path: '/ws', clientTracking: true })
      wss.on('connection', (ws) => ws.on('message', () => {}))
    }
    http.listen(0, '127.0.0.1')
    await once(http, 'listening')
    port = (http.address() as AddressInfo).port
  }
  const measure = (): Mem => {
    gc()
    gc()
    const m = process.memoryUsage()
    const newSpace = v8.getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space')?.physical_space_size ?? 0
    return { rss: m.rss, heapUsed: m.heapUsed, newSpace, heapTotal: m.heapTotal, external: m.external }
  }
  process.send?.({ type: 'listening', port, mem: measure() })
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'measure') process.send?.({ type: 'mem', mem: measure() })
  })
}

async function clientRole(kind: Kind, url: string): Promise<void> {
  const { default: WebSocket } = await import('ws')
  const socks: InstanceType<typeof WebSocket>[] = []
  const batch = 500
  for (let i = 0; i < N; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, N - i) }, (_, k) => {
        const ws = new WebSocket(url, kind.startsWith('holdfast') ? ['holdfast.v1.json'] : [], { localAddress: `127.0.0.${1 + ((i + k) % 4)}` })
        socks.push(ws)
        return new Promise<void>((resolve, reject) => {
          ws.once('error', reject)
          if (!kind.startsWith('holdfast')) ws.once('open', () => resolve())
          else {
            let replies = 0
            ws.on('message', (data: Buffer) => {
              for (const line of data.toString().split('\n')) {
                const msg = JSON.parse(line) as { id?: number; type?: string }
                if (msg.type === 'ping') ws.send('{"type":"pong"}')
                if ((msg as { error?: unknown }).error !== undefined) reject(new Error(`refused: ${line}`))
                if (msg.id !== undefined && ++replies === 3) resolve()
              }
            })
            ws.once('open', () => {
              const n = i + k
              ws.send(
                // A shared room and a channel of its own (one subscriber: what a personal feed costs).
                // Not `user#<n>`: these clients are anonymous, and the node refuses another user's channel.
                process.env.BENCH_NOSUBS ? `{"id":1,"type":"connect","version":1}\n{"id":2,"type":"ping"}\n{"id":3,"type":"ping"}` : `{"id":1,"type":"connect","version":1}\n{"id":2,"type":"subscribe","channel":"room-${n % 100}"}\n{"id":3,"type":"subscribe","channel":"own-${n}"}`,
              )
            })
          }
        })
      }),
    )
  }
  process.send?.({ type: 'connected', count: socks.length })
  await new Promise(() => {}) // hold the sockets until killed
}

async function run(kind: Kind): Promise<{ kind: Kind; perConnRss: number; perConnHeap: number; perConnRssLessNew: number; base: Mem; loaded: Mem }> {
  const server = fork(new URL(import.meta.url).pathname, ['--role', 'server', '--kind', kind], {
    execArgv: ['--expose-gc', '--conditions=source', '--import', 'tsx'],
  })
  const [hello] = (await once(server, 'message')) as [{ port: number; mem: Mem }]
  const client = fork(new URL(import.meta.url).pathname, ['--role', 'client', '--kind', kind, '--url', `ws://127.0.0.1:${hello.port}/ws`, '--connections', String(N)], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
  })
  const [done] = (await once(client, 'message')) as [{ count: number }]
  if (done.count !== N) throw new Error(`only ${done.count} connected`)
  // Past one ping interval: each connection has been pinged and answered (what an idle connection holds for good).
  await new Promise((r) => setTimeout(r, PING_MS + 1500))
  server.send({ type: 'measure' })
  const [m] = (await once(server, 'message')) as [{ mem: Mem }]
  client.kill('SIGKILL')
  server.kill('SIGKILL')
  return { kind, base: hello.mem, loaded: m.mem, perConnRss: (m.mem.rss - hello.mem.rss) / N, perConnHeap: (m.mem.heapUsed - hello.mem.heapUsed) / N,
    perConnRssLessNew: (m.mem.rss - m.mem.newSpace - (hello.mem.rss - hello.mem.newSpace)) / N,
  }
}

if (values.role === 'server') await serverRole(values.kind as Kind)
else if (values.role === 'client') await clientRole(values.kind as Kind, values.url as string)
else {
  // BENCH_UWS=1 adds holdfast on the uWebSockets.js transport and a raw uWS server (Node 20 only).
  const kinds: Kind[] = process.env['BENCH_UWS'] ? ['ws', 'holdfast', 'uws', 'holdfast-uws'] : ['ws', 'holdfast']
  const results: Array<Awaited<ReturnType<typeof run>>> = []
  for (const kind of kinds) results.push(await run(kind))
  const kib = (b: number): string => (b / 1024).toFixed(2)
  console.log(`idle connections: ${N} (holdfast: connected + session + 2 subscriptions; ws/uws: open socket)`)
  // "less new space": the RSS growth without the V8 new space's growth, which follows how fast the
  // ramp allocated (up to 32 MiB, a fixed cost per process), not what each connection keeps.
  // "heap total": the heap V8 reserved (used plus headroom); "external": Buffers and other memory
  // outside the heap held by JS objects.
  console.log('server          RSS/conn KiB   heap/conn KiB   RSS less new space KiB   heap total KiB   external KiB')
  const per = (r: Awaited<ReturnType<typeof run>>, f: (m: Mem) => number): string => kib((f(r.loaded) - f(r.base)) / N)
  for (const r of results) {
    console.log(
      `${r.kind.padEnd(15)} ${kib(r.perConnRss).padStart(12)} ${kib(r.perConnHeap).padStart(15)} ${kib(r.perConnRssLessNew).padStart(24)} ${per(r, (m) => m.heapTotal).padStart(16)} ${per(r, (m) => m.external).padStart(14)}`,
    )
  }
  const by = new Map(results.map((r) => [r.kind, r]))
  const ratio = (a: Kind, b: Kind): void => {
    const x = by.get(a)
    const y = by.get(b)
    if (x !== undefined && y !== undefined) console.log(`ratio ${a}/${b}: RSS ${(x.perConnRss / y.perConnRss).toFixed(2)}x, heap ${(x.perConnHeap / y.perConnHeap).toFixed(2)}x`)
  }
  ratio('holdfast', 'ws')
  ratio('holdfast-uws', 'ws')
  ratio('holdfast-uws', 'uws')
  process.exit(0)
}
