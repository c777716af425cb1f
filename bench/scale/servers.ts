/**
 * The servers the scale bench loads: `holdfast serve --workers N` (built CLI, ws or uws
 * transport, memory or Redis engine) and the raw uWebSockets.js reference (reference-uws.ts, N
 * processes on one port). Each is started, measured from /proc by its process ids, published to,
 * and killed, by this file; nothing here outlives the bench.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { countServerLog, type ServerLog } from './processes.js'
import { childrenOf } from './system.js'

export type ServerKind = 'holdfast-uws' | 'holdfast-ws' | 'uws'
export const SERVER_KINDS: readonly ServerKind[] = ['holdfast-uws', 'holdfast-ws', 'uws']

export interface RunningServer {
  kind: ServerKind
  wsHost: string
  wsPort: number
  /** Subprotocol the generator offers. */
  protocol: string | undefined
  /** The processes whose RSS and CPU are the server's (primary, workers, redis-server). */
  pids: number[]
  /** Publish `{ t, n }` to the bench channel; resolves with the publication's offset. */
  publish(n: number): Promise<number>
  /** Warnings and errors the server logged, with the first few of them. */
  logged: ServerLog
  stop(): Promise<void>
}

export const CHANNEL = 'scale'
const API_KEY = 'scale-bench-api-key-0123456789'

const now = (): number => performance.timeOrigin + performance.now()

function killAll(procs: ChildProcess[], pids: number[]): Promise<void> {
  const exits = procs.filter((p) => p.exitCode === null && p.signalCode === null).map((p) => new Promise((r) => p.once('exit', r)))
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  return Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 10_000))]).then(() => undefined)
}

export interface HoldfastStart {
  root: string
  dir: string
  transport: 'ws' | 'uws'
  workers: number
  redisUrl: string | undefined
  redisPid: number | undefined
  track(child: ChildProcess): ChildProcess
}

/** `holdfast serve --workers N` from the built CLI (packages/cli/dist), lean processes. */
export async function startHoldfast(o: HoldfastStart): Promise<RunningServer> {
  // Per worker: the bench's clients come from a few source addresses at thousands per second.
  // The HTTP server's own per-address cap guards the ws transport's upgrades too. Pongs get 60 s
  // instead of 10: on a busy machine a generator process may not run for longer than 10 s, and a
  // connection closed for that measures the generator's delay, not the server.
  const config = {
    pongTimeoutMs: 60_000,
    maxConnectionsPerIp: 1_000_000,
    connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
    http: { maxConnectionsPerIp: 1_000_000 },
  }
  const configFile = join(o.dir, 'limits.json')
  writeFileSync(configFile, JSON.stringify(config))
  const args = ['packages/cli/dist/bin.js', 'serve', '--host', '127.0.0.1', '--port', '0', '--workers', String(o.workers), '--transport', o.transport]
  if (o.transport === 'uws') args.push('--ws-port', String(await freePort()))
  args.push('--config', configFile, '--api-key', API_KEY, '--log-level', 'warn', '--drain-ms', '0')
  if (o.redisUrl !== undefined) args.push('--engine', 'redis', '--redis-url', o.redisUrl, '--session-secret', 'scale-bench-session-secret-0123456789')
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOLDFAST_')))
  const proc = o.track(spawn(process.execPath, args, { cwd: o.root, env: { ...env, NODE_ENV: 'development' }, stdio: ['ignore', 'pipe', 'pipe'] }))
  const logged: ServerLog = { warn: 0, error: 0, samples: [] }
  const onLog = countServerLog(logged)
  proc.stderr?.on('data', onLog)
  const { httpUrl, wsHost, wsPort } = await new Promise<{ httpUrl: string; wsHost: string; wsPort: number }>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`holdfast serve did not start within 120 s: ${out.slice(-500)}`)), 120_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      onLog(d)
      const m = /holdfast listening on (\S+) \(ws:\/\/([^:]+):(\d+)\/ws\)/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ httpUrl: m[1] as string, wsHost: m[2] as string, wsPort: Number(m[3]) })
      }
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`holdfast serve exited (code ${code}) before listening: ${out.slice(-500)}`))
    })
  })
  const primary = proc.pid as number
  // With one worker, serve runs in the one process it was started as.
  const workers = o.workers === 1 ? [] : childrenOf(primary, (cmd) => cmd.includes('bin.js'))
  if (o.workers > 1 && workers.length !== o.workers) throw new Error(`expected ${o.workers} workers under pid ${primary}, found ${workers.length}`)
  const pids = [primary, ...workers, ...(o.redisPid === undefined ? [] : [o.redisPid])]
  return {
    kind: o.transport === 'uws' ? 'holdfast-uws' : 'holdfast-ws',
    wsHost,
    wsPort,
    protocol: 'holdfast.v1.json',
    pids,
    logged,
    async publish(n) {
      const res = await fetch(`${httpUrl}/api/publish`, {
        method: 'POST',
        headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ channel: CHANNEL, data: { t: now(), n } }),
        signal: AbortSignal.timeout(30_000),
      })
      const body = (await res.json()) as { offset?: number; error?: { code: string } }
      if (!res.ok || typeof body.offset !== 'number') throw new Error(`publish ${n}: HTTP ${res.status} ${JSON.stringify(body)}`)
      return body.offset
    },
    stop: () => killAll([proc], [...workers, primary]),
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

export interface ReferenceStart {
  root: string
  bundle: string
  workers: number
  /** Seconds of silence before uWS pings a socket. */
  idleTimeout: number
  track(child: ChildProcess): ChildProcess
}

/** N raw uWebSockets.js processes on one port (SO_REUSEPORT), published to over IPC. */
export async function startReference(o: ReferenceStart): Promise<RunningServer> {
  const procs: ChildProcess[] = []
  const startOne = (port: number): Promise<number> => {
    const env = { ...process.env, HOLDFAST_SCALE_REFERENCE: JSON.stringify({ port, topic: CHANNEL, idleTimeout: o.idleTimeout }) }
    const child = o.track(fork(o.bundle, [], { cwd: o.root, env, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    procs.push(child)
    return new Promise((resolve, reject) => {
      child.once('message', (m: { type: string; port: number }) => resolve(m.port))
      child.once('exit', (code) => reject(new Error(`the uWS reference exited (code ${code}) before listening`)))
    })
  }
  // uWS sets SO_REUSEPORT only on a port it is given (not on port 0): pick one first, as
  // `serve --transport uws --workers N` does.
  const port = await freePort()
  for (let i = 0; i < o.workers; i++) await startOne(port)
  let offset = 0
  return {
    kind: 'uws',
    wsHost: '127.0.0.1',
    wsPort: port,
    protocol: undefined,
    pids: procs.map((p) => p.pid as number),
    logged: { warn: 0, error: 0, samples: [] },
    publish(n) {
      offset++
      const frame = JSON.stringify({ type: 'pub', channel: CHANNEL, offset, data: { t: now(), n } })
      for (const p of procs) p.send({ type: 'publish', frame })
      return Promise.resolve(offset)
    },
    stop: () =>
      killAll(
        procs,
        procs.map((p) => p.pid as number),
      ),
  }
}
