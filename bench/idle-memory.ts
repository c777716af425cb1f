/**
 * Memory per idle connection: RSS and heap growth of a server process holding N idle
 * connections, holdfast (connected, one session, two subscriptions) beside raw `ws` (accepting
 * and holding sockets, nothing else), measured the same way in the same run.
 *
 *   node --conditions=source --import tsx bench/idle-memory.ts [--connections 10000]
 *   BENCH_UWS=1 node --conditions=source --import tsx bench/idle-memory.ts   # + holdfast on uWS, raw uWS
 *   BENCH_ECHO=1 ...                                                           # + raw ws with holdfast's traffic
 *   ... --runs 5     # each server 5 times, interleaved: medians and ranges (RSS moves by several hundred bytes per connection from run to run)
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

type Kind = 'holdfast' | 'ws' | 'ws-echo' | 'holdfast-uws' | 'uws'
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

const { values } = parseArgs({ options: { connections: { type: 'string', default: '10000' }, runs: { type: 'string', default: '1' }, role: { type: 'string' }, kind: { type: 'string' }, url: { type: 'string' } } })
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
      if (kind === 'ws-echo') {
        // Raw ws with holdfast's traffic: each client's first message answered, and a ping to
        // every socket each interval that the client answers (what the allocator sees, with no
        // state kept for it).
        wss.on('connection', (ws) => ws.on('message', (data, binary) => String(data).startsWith('{"type":"pong"') || ws.send(data, { binary })))
        setInterval(() => {
          for (const ws of wss.clients) ws.send('{"type":"ping"}')
        }, PING_MS).unref()
      } else wss.on('connection', (ws) => ws.on('message', () => {}))
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
          if (kind === 'ws-echo') {
            ws.on('message', (data: Buffer) => {
              if (String(data) === '{"type":"ping"}') ws.send('{"type":"pong"}')
              else resolve()
            })
            ws.once('open', () => ws.send(`{"id":1,"type":"connect","version":1}\n{"id":2,"type":"subscribe","channel":"room-${(i + k) % 100}"}\n{"id":3,"type":"subscribe","channel":"own-${i + k}"}`))
          } else if (!kind.startsWith('holdfast')) ws.once('open', () => resolve())
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

async function run(kind: Kind): Promise<{ kind: Kind; base: Mem; loaded: Mem }> {
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
  return { kind, base: hello.mem, loaded: m.mem }
}

if (values.role === 'server') await serverRole(values.kind as Kind)
else if (values.role === 'client') await clientRole(values.kind as Kind, values.url as string)
else {
  // BENCH_UWS=1 adds holdfast on the uWebSockets.js transport and a raw uWS server (Node 20 only).
  // BENCH_ECHO=1 adds raw ws with holdfast's traffic and no state (`ws-echo`).
  const kinds: Kind[] = ['ws', ...(process.env['BENCH_ECHO'] ? (['ws-echo'] as const) : []), 'holdfast', ...(process.env['BENCH_UWS'] ? (['uws', 'holdfast-uws'] as const) : [])]
  type Result = Awaited<ReturnType<typeof run>>
  // --runs N: every kind N times, interleaved (so drift of the machine hits all alike); the table
  // gives each column's median and, with more than one run, its range.
  const runs = Number(values.runs)
  const results = new Map<Kind, Result[]>(kinds.map((k) => [k, []]))
  for (let i = 0; i < runs; i++) for (const kind of kinds) results.get(kind)?.push(await run(kind))
  const kib = (b: number): string => (b / 1024).toFixed(2)
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b)
    const mid = Math.floor(s.length / 2)
    return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  }
  const growth = (f: (m: Mem) => number) => (r: Result): number => (f(r.loaded) - f(r.base)) / N
  const COLUMNS: Array<[string, (r: Result) => number]> = [
    ['RSS', growth((m) => m.rss)],
    ['heap', growth((m) => m.heapUsed)],
    // The RSS growth without the V8 new space's growth, which follows how fast the ramp allocated
    // (up to 32 MiB, a fixed cost per process), not what each connection keeps.
    ['RSS less new space', growth((m) => m.rss - m.newSpace)],
    // The heap V8 reserved (used plus headroom).
    ['heap total', growth((m) => m.heapTotal)],
    // Buffers and other memory outside the heap held by JS objects.
    ['external', growth((m) => m.external)],
  ]
  const cell = (rs: Result[], f: (r: Result) => number): string => {
    const xs = rs.map(f)
    return runs === 1 ? kib(median(xs)) : `${kib(median(xs))} (${kib(Math.min(...xs))}-${kib(Math.max(...xs))})`
  }
  console.log(`idle connections: ${N} (holdfast: connected + session + 2 subscriptions; ws/uws: open socket), ${runs} run(s); KiB per connection${runs > 1 ? ', median (range)' : ''}`)
  const width = runs === 1 ? 10 : 22
  console.log(`${'server'.padEnd(15)} ${COLUMNS.map(([name]) => name.padStart(Math.max(width, name.length))).join(' ')}`)
  for (const [kind, rs] of results) console.log(`${kind.padEnd(15)} ${COLUMNS.map(([name, f]) => cell(rs, f).padStart(Math.max(width, name.length))).join(' ')}`)
  const ratio = (a: Kind, b: Kind): void => {
    const x = results.get(a)
    const y = results.get(b)
    if (x === undefined || y === undefined) return
    const of = (f: (r: Result) => number): string => (median(x.map(f)) / median(y.map(f))).toFixed(2)
    console.log(`ratio ${a}/${b} (medians): RSS ${of(COLUMNS[0]![1])}x, heap ${of(COLUMNS[1]![1])}x, RSS less new space ${of(COLUMNS[2]![1])}x`)
  }
  ratio('holdfast', 'ws')
  ratio('holdfast', 'ws-echo')
  ratio('holdfast-uws', 'ws')
  process.exit(0)
}
