/**
 * Handshakes per core with JWT verification (performance issue #8).
 *
 * For every (server, auth, variant) cell, one server process and `--processes` client processes
 * (each from its own source address 127.0.0.2, .3, ...) open `--connections` connections in all,
 * `--concurrency` at a time per process, each with its own pre-minted token; every connection does
 * its handshake and is closed as soon as it is done, and its slot goes to the next connection once
 * the close has completed. Measured per cell:
 *
 * - handshakes per second (wall clock of the load phase);
 * - the server process's CPU over the load phase, from /proc/<pid>/stat, hence handshakes per
 *   server-CPU-second (= per core) and server CPU µs per handshake;
 * - handshake latency p50/p99, from creating the socket to the server's answer.
 *
 * Servers:
 * - `holdfast`: `createHoldfast` on node:http as an application embeds it (like the CLI bench's
 *   holdfast-server.ts: logger off, admission limits lifted). The token travels the way the SDK
 *   sends it: in the `connect` command. The handshake is done at the connect reply (variant
 *   `connect`) or at the subscribe reply (variant `subscribe`: connect + subscribe pipelined in the
 *   first frame, as the SDK and `holdfast bench` do).
 * - `ws`: a raw `ws` WebSocketServer that verifies the same token with jose's `jwtVerify` in
 *   `verifyClient` (token in the `token` query parameter, 401 when invalid): done at `open`
 *   (variant `connect`) or at the answer to one `{"op":"sub"}` (variant `subscribe`).
 *
 * Auth modes: `none` (holdfast anonymous; ws without verifyClient), `hs256` (shared secret),
 * `es256` (PEM public key), `jwks` (ES256 keys from a JWKS URL served by this process, which counts
 * the fetches: one per server run shows that the keys are cached), `proxy` (holdfast only: the
 * connect is proxied to a keep-alive HTTP backend served by this process, which names the user
 * from the `session` cookie each client sends on its upgrade, as a browser would).
 *
 *   flock /tmp/holdfast-bench.lock node --conditions=source --import tsx bench/handshakes.ts
 *        [--connections 20000] [--processes 4] [--concurrency 50] [--warmup 0] [--rounds 1]
 *        [--servers holdfast,ws] [--auth none,hs256,es256,jwks,proxy] [--variants connect,subscribe]
 *        [--cpu-prof DIR] [--json FILE]
 *
 * `--warmup N` first has the clients do N handshakes (in all) that are not measured, after which
 * the load phase starts: what is measured is then the server's steady state, not also its one-time
 * costs (compiling its code paths, the backend pool's connections and HTTP parser for `proxy`).
 *
 * `--rounds R` (R > 1) starts the cells of a variant side by side and measures them in R
 * interleaved slices (each cell's share of handshakes split in R), summing each cell's server CPU
 * over its slices: the machine's other load then falls on every cell alike, which makes the ratio
 * between cells (e.g. proxy / JWT) steadier than cells run one after the other.
 *
 * `--cpu-prof DIR` runs the holdfast server processes with `--cpu-prof` and writes their profiles
 * to DIR (one per cell). Bounded: a cell stops starting connections after --max-seconds (times R).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { SignJWT, importJWK, type JWK } from 'jose'
import WebSocket from 'ws'
import { addEncoded, encodeHistogram, newHistogram, percentiles, readProcSample, recordMs } from 'holdfast/bench'

const SELF = fileURLToPath(import.meta.url)
const LOADER = ['--conditions=source', '--import', 'tsx']
const CHANNELS = 100

type ServerName = 'holdfast' | 'ws'
type AuthMode = 'none' | 'hs256' | 'es256' | 'jwks' | 'proxy'
type Variant = 'connect' | 'subscribe'

/** What a server process needs to verify tokens; the private half stays with the clients. */
interface ServerAuth {
  mode: AuthMode
  secret?: string
  publicKeyPem?: string
  jwksUrl?: string
  /** The backend of the connect proxy (mode `proxy`). */
  proxyUrl?: string
}

/** What a client process needs to mint its tokens. */
interface Signing {
  alg: 'HS256' | 'ES256'
  secret?: string
  privateJwk?: JWK
  kid?: string
}

interface ClientSetup {
  type: 'setup'
  server: ServerName
  variant: Variant
  url: string
  count: number
  /** Handshakes done before `ready`, not measured: the server's code paths and pools warmed. */
  warmup: number
  concurrency: number
  localAddress: string
  signing: Signing | undefined
  /** Send a `session` cookie on the upgrade (the connect proxy's credential). */
  cookie: boolean
  /** Distinguishes the subjects of different processes. */
  prefix: string
  stopStartingAt: number
}

interface ClientTotals {
  done: number
  failed: number
  failures: Record<string, number>
  /** Encoded hdr histogram of handshake latency (µs). */
  latency: string
}

type FromClient = { type: 'ready' } | { type: 'done'; totals: ClientTotals } | { type: 'error'; message: string }
type FromServer = { type: 'listening'; url: string } | { type: 'error'; message: string }

// ------------------------------------------------------------------------------------- server role

async function serverRole(name: ServerName, auth: ServerAuth): Promise<string> {
  const http = createServer()
  if (name === 'holdfast') {
    const { createHoldfast } = await import('@holdfast/server')
    const unlimited = { perSecond: 1_000_000, burst: 1_000_000 }
    const jwt =
      auth.mode === 'hs256'
        ? { jwt: { secret: auth.secret as string } }
        : auth.mode === 'es256'
          ? { jwt: { publicKey: auth.publicKeyPem as string } }
          : auth.mode === 'jwks'
            ? { jwt: { jwksUrl: auth.jwksUrl as string } }
            : auth.mode === 'proxy'
              ? { proxy: { connect: { url: `${auth.proxyUrl as string}/connect` } } }
              : {}
    const holdfast = createHoldfast({ logger: false, maxConnections: 1_000_000, maxConnectionsPerIp: 1_000_000, connectRatePerIp: unlimited, commandRate: unlimited, ...jwt })
    holdfast.attach(http)
    await holdfast.ready()
  } else {
    const { WebSocketServer } = await import('ws')
    const { createRemoteJWKSet, importSPKI, jwtVerify } = await import('jose')
    type Key = Parameters<typeof jwtVerify>[1]
    const key: Key | undefined =
      auth.mode === 'hs256'
        ? new TextEncoder().encode(auth.secret)
        : auth.mode === 'es256'
          ? await importSPKI(auth.publicKeyPem as string, 'ES256')
          : auth.mode === 'jwks'
            ? createRemoteJWKSet(new URL(auth.jwksUrl as string))
            : undefined
    const verifyClient =
      key === undefined
        ? undefined
        : (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number) => void): void => {
            const q = info.req.url?.indexOf('?') ?? -1
            const token = q === -1 ? null : new URLSearchParams(info.req.url?.slice(q + 1)).get('token')
            if (token === null) return cb(false, 401)
            jwtVerify(token, key as Parameters<typeof jwtVerify>[1]).then(
              () => cb(true),
              () => cb(false, 401),
            )
          }
    const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false, ...(verifyClient === undefined ? {} : { verifyClient }) })
    wss.on('connection', (ws) => {
      ws.on('message', (raw) => {
        const msg = JSON.parse(String(raw)) as { op?: string; channel?: string }
        if (msg.op === 'sub') ws.send(JSON.stringify({ op: 'subok', channel: msg.channel }))
      })
    })
  }
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  return `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`
}

// ------------------------------------------------------------------------------------- client role

async function mintAll(signing: Signing | undefined, prefix: string, count: number): Promise<Array<string | undefined>> {
  if (signing === undefined) return new Array<undefined>(count).fill(undefined)
  const key = signing.alg === 'HS256' ? new TextEncoder().encode(signing.secret) : await importJWK(signing.privateJwk as JWK, 'ES256')
  const exp = Math.floor(Date.now() / 1000) + 3600
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const header = signing.kid === undefined ? { alg: signing.alg } : { alg: signing.alg, kid: signing.kid }
    out.push(await new SignJWT({}).setProtectedHeader(header).setSubject(`${prefix}-${i}`).setJti(`${prefix}-${i}`).setExpirationTime(exp).sign(key))
  }
  return out
}

/** One connection: resolves after its socket has closed, with its handshake time or a failure. */
function handshake(setup: ClientSetup, token: string | undefined, i: number): Promise<{ ms: number } | { failure: string }> {
  const channel = `bench:c${i % CHANNELS}`
  return new Promise((resolve) => {
    const start = performance.now()
    let outcome: { ms: number } | { failure: string } | undefined
    const finish = (o: { ms: number } | { failure: string }): void => {
      outcome ??= o
    }
    let ws: WebSocket
    const opts = { perMessageDeflate: false, localAddress: setup.localAddress, ...(setup.cookie ? { headers: { cookie: `session=${setup.prefix}-${i}` } } : {}) }
    if (setup.server === 'holdfast') {
      ws = new WebSocket(setup.url, ['holdfast.v1.json'], opts)
      // The SDK's way: the token rides in the connect command, not in the upgrade request.
      const connect = `{"id":1,"type":"connect","version":1,"name":"bench"${token === undefined ? '' : `,"token":${JSON.stringify(token)}`}}`
      const hello = setup.variant === 'connect' ? connect : `${connect}\n{"id":2,"type":"subscribe","channel":"${channel}"}`
      const want = setup.variant === 'connect' ? '{"id":1,' : '{"id":2,'
      ws.on('open', () => ws.send(hello))
      ws.on('message', (data: Buffer) => {
        for (const line of data.toString().split('\n')) {
          if (!line.startsWith('{"id":')) continue
          if (line.includes('"error"')) {
            finish({ failure: `reply ${line.slice(0, 80)}` })
            ws.close()
          } else if (line.startsWith(want)) {
            finish({ ms: performance.now() - start })
            ws.close()
          }
        }
      })
    } else {
      const url = token === undefined ? setup.url : `${setup.url}?token=${token}`
      ws = new WebSocket(url, opts)
      ws.on('open', () => {
        if (setup.variant === 'connect') {
          finish({ ms: performance.now() - start })
          ws.close()
        } else ws.send(`{"op":"sub","channel":"${channel}"}`)
      })
      ws.on('message', () => {
        finish({ ms: performance.now() - start })
        ws.close()
      })
    }
    ws.on('error', (err) => finish({ failure: err.message.slice(0, 60) }))
    ws.on('close', (code) => resolve(outcome ?? { failure: `closed ${code} before the handshake` }))
  })
}

/** Handshakes `from` .. `to` - 1 (each its own token), `concurrency` at a time. */
async function load(setup: ClientSetup, tokens: Array<string | undefined>, from: number, to: number): Promise<{ totals: ClientTotals; hist: ReturnType<typeof newHistogram> }> {
  const hist = newHistogram()
  const totals: ClientTotals = { done: 0, failed: 0, failures: {}, latency: '' }
  let next = from
  await Promise.all(
    Array.from({ length: setup.concurrency }, async () => {
      while (next < to && Date.now() < setup.stopStartingAt) {
        const i = next++
        const r = await handshake(setup, tokens[i], i)
        if ('ms' in r) {
          totals.done++
          recordMs(hist, r.ms)
        } else {
          totals.failed++
          totals.failures[r.failure] = (totals.failures[r.failure] ?? 0) + 1
        }
      }
    }),
  )
  return { totals, hist }
}

async function clientRole(setup: ClientSetup): Promise<void> {
  const tokens = await mintAll(setup.signing, setup.prefix, setup.warmup + setup.count)
  const warm = await load(setup, tokens, 0, setup.warmup)
  if (warm.totals.failed > 0) throw new Error(`warm-up: ${warm.totals.failed} handshakes failed ${JSON.stringify(warm.totals.failures)}`)
  process.send?.({ type: 'ready' } satisfies FromClient)
  // Each `go` runs the next `count` handshakes (a slice; one slice when the cells are not interleaved).
  let next = setup.warmup
  process.on('message', (m: { type: 'go'; count: number }) => {
    const to = Math.min(next + m.count, setup.warmup + setup.count)
    load(setup, tokens, next, to).then(({ totals, hist }) => {
      next = to
      totals.latency = encodeHistogram(hist)
      process.send?.({ type: 'done', totals } satisfies FromClient)
    })
  })
}

// ------------------------------------------------------------------------------------- main

interface Keys {
  secret: string
  publicKeyPem: string
  privateJwk: JWK
  kid: string
  jwks: { keys: JWK[] }
}

function makeKeys(): Keys {
  const secret = randomBytes(32).toString('base64url')
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const kid = 'bench-1'
  // A second key in the set, as an identity provider rotating keys publishes: lookup is by kid.
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as JWK
  return {
    secret,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }) as string,
    privateJwk: privateKey.export({ format: 'jwk' }) as JWK,
    kid,
    jwks: {
      keys: [
        { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' },
        { ...other, kid: 'bench-0', alg: 'ES256', use: 'sig' },
      ],
    },
  }
}

interface CellResult {
  server: ServerName
  auth: AuthMode
  variant: Variant
  handshakes: number
  failed: number
  failures: Record<string, number>
  seconds: number
  perSecond: number
  serverCpuSeconds: number
  perCpuSecond: number
  cpuUsPerHandshake: number
  p50Ms: number | null
  p99Ms: number | null
  jwksFetches: number | null
}

function waitFor<T extends { type: string }>(child: ChildProcess, type: T['type'], what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: T): void => {
      if (m.type === type) {
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(m)
      } else if (m.type === 'error') reject(new Error(`${what}: ${(m as unknown as { message: string }).message}`))
    }
    const onExit = (code: number | null): void => reject(new Error(`${what} exited (${code}) before '${type}'`))
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, 'exit')
  // A disconnect lets the server exit by itself, so --cpu-prof can write its profile.
  if (child.connected) child.disconnect()
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await gone
  clearTimeout(timer)
}

/** A cell's server and client processes, started and warmed, and what its slices measured so far. */
interface Cell {
  server: ServerName
  auth: AuthMode
  variant: Variant
  srv: ChildProcess
  clients: ChildProcess[]
  /** Measured handshakes each client process runs in all. */
  counts: number[]
  fetchesBefore: number
  seconds: number
  cpuUs: number
  results: ClientTotals[]
}

async function startCell(
  server: ServerName,
  auth: AuthMode,
  variant: Variant,
  keys: Keys,
  jwks: { url: string; fetches: () => number; proxyUrl: string },
  opts: Options,
): Promise<Cell> {
  const serverAuth: ServerAuth =
    auth === 'hs256'
      ? { mode: auth, secret: keys.secret }
      : auth === 'es256'
        ? { mode: auth, publicKeyPem: keys.publicKeyPem }
        : auth === 'jwks'
          ? { mode: auth, jwksUrl: jwks.url }
          : auth === 'proxy'
            ? { mode: auth, proxyUrl: jwks.proxyUrl }
            : { mode: auth }
  const signing: Signing | undefined =
    auth === 'hs256'
      ? { alg: 'HS256', secret: keys.secret }
      : auth === 'es256'
        ? { alg: 'ES256', privateJwk: keys.privateJwk }
        : auth === 'jwks'
          ? { alg: 'ES256', privateJwk: keys.privateJwk, kid: keys.kid }
          : undefined
  const profArgs = opts.cpuProf !== undefined && server === 'holdfast' ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf] : []
  const srv = fork(SELF, ['--role', 'server', '--server', server], { execArgv: [...LOADER, ...profArgs], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const cell: Cell = { server, auth, variant, srv, clients: [], counts: [], fetchesBefore: 0, seconds: 0, cpuUs: 0, results: [] }
  try {
    const listening = waitFor<FromServer & { type: 'listening' }>(srv, 'listening', 'server')
    srv.send(serverAuth)
    const { url } = await listening
    cell.fetchesBefore = jwks.fetches()
    const per = Math.ceil(opts.connections / opts.processes)
    const ready: Array<Promise<unknown>> = []
    for (let p = 0; p < opts.processes; p++) {
      const child = fork(SELF, ['--role', 'client'], { execArgv: LOADER, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      cell.clients.push(child)
      cell.counts.push(Math.max(0, Math.min(per, opts.connections - p * per)))
      ready.push(waitFor(child, 'ready', `client ${p}`))
      // Started before the load, so no one waits on the other's clock: the deadline is a bound, not a schedule.
      child.send({
        type: 'setup',
        server,
        variant,
        url,
        count: cell.counts[p] as number,
        warmup: Math.ceil(opts.warmup / opts.processes),
        concurrency: opts.concurrency,
        localAddress: `127.0.0.${2 + p}`,
        signing,
        cookie: auth === 'proxy',
        prefix: `p${p}`,
        stopStartingAt: Date.now() + 120_000 + opts.maxSeconds * opts.rounds * 1000,
      } satisfies ClientSetup)
    }
    await Promise.all(ready)
    return cell
  } catch (err) {
    await stopCell(cell)
    throw err
  }
}

/** Slice `round` of `rounds`: its share of each client's handshakes, the server's CPU over it counted. */
async function runSlice(cell: Cell, round: number, rounds: number): Promise<void> {
  const done = cell.clients.map((c, p) => waitFor<FromClient & { type: 'done' }>(c, 'done', `client ${p}`))
  const before = readProcSample(cell.srv.pid as number)
  const started = performance.now()
  cell.clients.forEach((c, p) => {
    const total = cell.counts[p] as number
    const share = Math.ceil(total / rounds)
    c.send({ type: 'go', count: Math.max(0, Math.min(share, total - round * share)) })
  })
  const results = await Promise.all(done)
  cell.seconds += (performance.now() - started) / 1000
  const after = readProcSample(cell.srv.pid as number)
  cell.cpuUs += before !== undefined && after !== undefined ? after.cpuUs - before.cpuUs : Number.NaN
  for (const { totals } of results) cell.results.push(totals)
}

function cellResult(cell: Cell, jwks: { fetches: () => number }): CellResult {
  const hist = newHistogram()
  const failures: Record<string, number> = {}
  let handshakes = 0
  let failed = 0
  for (const totals of cell.results) {
    handshakes += totals.done
    failed += totals.failed
    addEncoded(hist, totals.latency)
    for (const [k, n] of Object.entries(totals.failures)) failures[k] = (failures[k] ?? 0) + n
  }
  const cpu = cell.cpuUs / 1e6
  const pc = percentiles(hist)
  return {
    server: cell.server,
    auth: cell.auth,
    variant: cell.variant,
    handshakes,
    failed,
    failures,
    seconds: round(cell.seconds, 2),
    perSecond: Math.round(handshakes / cell.seconds),
    serverCpuSeconds: round(cpu, 2),
    perCpuSecond: Math.round(handshakes / cpu),
    cpuUsPerHandshake: Math.round((cpu * 1e6) / handshakes),
    p50Ms: pc?.p50 ?? null,
    p99Ms: pc?.p99 ?? null,
    jwksFetches: cell.auth === 'jwks' ? jwks.fetches() - cell.fetchesBefore : null,
  }
}

function stopCell(cell: Cell): Promise<unknown> {
  return Promise.all([...cell.clients, cell.srv].map(stopChild))
}

/**
 * The cells of `group`, measured: one after the other (`rounds` 1), or side by side in `rounds`
 * interleaved slices, so that the machine's other load falls on every cell alike.
 */
async function runCells(group: Array<Parameters<typeof startCell>>, opts: Options): Promise<CellResult[]> {
  const out: CellResult[] = []
  if (opts.rounds === 1) {
    for (const args of group) {
      const cell = await startCell(...args)
      try {
        await runSlice(cell, 0, 1)
        out.push(cellResult(cell, args[4]))
      } finally {
        await stopCell(cell)
      }
    }
    return out
  }
  const cells: Cell[] = []
  try {
    for (const args of group) cells.push(await startCell(...args))
    for (let r = 0; r < opts.rounds; r++) for (const cell of cells) await runSlice(cell, r, opts.rounds)
    cells.forEach((cell, i) => out.push(cellResult(cell, (group[i] as Parameters<typeof startCell>)[4])))
  } finally {
    await Promise.all(cells.map(stopCell))
  }
  return out
}

interface Options {
  connections: number
  processes: number
  concurrency: number
  warmup: number
  rounds: number
  maxSeconds: number
  cpuProf: string | undefined
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

function list<T extends string>(v: string, allowed: readonly T[], name: string): T[] {
  const out = v.split(',').map((s) => s.trim())
  for (const s of out) if (!allowed.includes(s as T)) throw new TypeError(`--${name}: unknown "${s}" (use ${allowed.join(', ')})`)
  return out as T[]
}

function formatTable(rows: CellResult[]): string {
  const head = ['server', 'auth', 'variant', 'ok', 'failed', 'handshakes/s', 'server CPU s', 'per CPU-s', 'CPU µs each', 'p50 ms', 'p99 ms', 'JWKS fetches', 'vs ws (per CPU-s)']
  const peer = (r: CellResult): CellResult | undefined => rows.find((o) => o.server === 'ws' && o.auth === r.auth && o.variant === r.variant)
  const body = rows.map((r) => {
    const p = peer(r)
    return [
      r.server,
      r.auth,
      r.variant,
      String(r.handshakes),
      String(r.failed),
      String(r.perSecond),
      r.serverCpuSeconds.toFixed(2),
      String(r.perCpuSecond),
      String(r.cpuUsPerHandshake),
      String(r.p50Ms),
      String(r.p99Ms),
      r.jwksFetches === null ? '' : String(r.jwksFetches),
      r.server === 'ws' || p === undefined ? '' : `${(r.perCpuSecond / p.perCpuSecond).toFixed(2)}×`,
    ]
  })
  return [head, head.map(() => '---'), ...body].map((cols) => `| ${cols.join(' | ')} |`).join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '20000' },
      processes: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '50' },
      warmup: { type: 'string', default: '0' },
      rounds: { type: 'string', default: '1' },
      servers: { type: 'string', default: 'holdfast,ws' },
      auth: { type: 'string', default: 'none,hs256,es256,jwks' },
      variants: { type: 'string', default: 'connect,subscribe' },
      'max-seconds': { type: 'string', default: '120' },
      'cpu-prof': { type: 'string' },
      json: { type: 'string' },
    },
  })
  const servers = list(values.servers, ['holdfast', 'ws'] as const, 'servers')
  const auths = list(values.auth, ['none', 'hs256', 'es256', 'jwks', 'proxy'] as const, 'auth')
  const variants = list(values.variants, ['connect', 'subscribe'] as const, 'variants')
  const opts: Options = {
    connections: Number(values.connections),
    processes: Number(values.processes),
    concurrency: Number(values.concurrency),
    warmup: Number(values.warmup),
    rounds: Number(values.rounds),
    maxSeconds: Number(values['max-seconds']),
    cpuProf: values['cpu-prof'],
  }
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new TypeError('--rounds must be a positive integer')
  if (opts.processes < 1 || opts.processes > 8) throw new TypeError('--processes must be 1..8 (source addresses 127.0.0.2-9)')
  const keys = makeKeys()
  let fetches = 0
  const jwksServer = createServer((_req, res) => {
    fetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keys.jwks))
  })
  jwksServer.listen(0, '127.0.0.1')
  await once(jwksServer, 'listening')
  // The connect proxy's backend: who the session cookie names (a real app would look the session up).
  const backend = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => {
      const cookie = (JSON.parse(body) as { headers: { cookie?: string } }).headers.cookie ?? ''
      const user = /session=([\w-]+)/.exec(cookie)?.[1]
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(user === undefined ? { error: { code: 101, message: 'no session' } } : { result: { user } }))
    })
  })
  backend.keepAliveTimeout = 60_000
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const jwks = {
    url: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`,
    fetches: () => fetches,
    proxyUrl: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`,
  }
  const rows: CellResult[] = []
  console.log(
    `${opts.connections} connections per cell after ${opts.warmup} unmeasured, ${opts.rounds === 1 ? 'cells one after the other' : `cells interleaved in ${opts.rounds} slices`}, ${opts.processes} client processes × ${opts.concurrency} in flight; Node ${process.version}`,
  )
  for (const variant of variants) {
    const group: Array<Parameters<typeof startCell>> = []
    for (const auth of auths) {
      for (const server of servers) {
        // The connect proxy is holdfast's; a bare ws server has no such thing to compare.
        if (auth !== 'proxy' || server !== 'ws') group.push([server, auth, variant, keys, jwks, opts])
      }
    }
    for (const r of await runCells(group, opts)) {
      rows.push(r)
      const fails = r.failed === 0 ? '' : ` failures ${JSON.stringify(r.failures)}`
      console.log(
        `${r.server.padEnd(8)} ${r.auth.padEnd(5)} ${variant.padEnd(9)} ${r.handshakes} ok in ${r.seconds} s = ${r.perSecond}/s; server CPU ${r.serverCpuSeconds} s = ${r.perCpuSecond}/CPU-s (${r.cpuUsPerHandshake} µs each); p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms${r.jwksFetches === null ? '' : `; JWKS fetches ${r.jwksFetches}`}${fails}`,
      )
    }
  }
  console.log(`\n${formatTable(rows)}`)
  jwksServer.close()
  backend.close()
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), node: process.version, ...opts, rows }, null, 2)}\n`)
}

const role = process.argv.includes('--role') ? process.argv[process.argv.indexOf('--role') + 1] : undefined
if (role === 'server') {
  const name = process.argv[process.argv.indexOf('--server') + 1] as ServerName
  process.once('message', (auth: ServerAuth) => {
    serverRole(name, auth).then(
      (url) => process.send?.({ type: 'listening', url } satisfies FromServer),
      (err: unknown) => {
        process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies FromServer)
        process.exit(1)
      },
    )
  })
  // Exit normally (not by a signal) so that --cpu-prof writes its profile.
  process.on('disconnect', () => process.exit(0))
} else if (role === 'client') {
  process.once('message', (setup: ClientSetup) => {
    clientRole(setup).catch((err: unknown) => {
      process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies FromClient, () => process.exit(1))
    })
  })
  process.on('disconnect', () => process.exit(0))
} else {
  await main()
}
