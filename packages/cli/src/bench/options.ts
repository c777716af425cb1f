import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { isLoopbackHost } from '../chaos/loopback.js'
import { CliError } from '../cli-error.js'
import { parseDuration } from '../duration.js'
import { BENCH_MODES, SERVER_KINDS, type BenchConfig, type BenchMode, type ServerKind } from './types.js'

/** Every `holdfast bench` flag, with the value it takes and one line of help. */
export const BENCH_FLAGS = {
  url: { type: 'string', value: 'URL', help: 'holdfast server to load, e.g. ws://127.0.0.1:8080/ws (loopback only unless --allow-remote); without it the bench starts --server itself' },
  server: { type: 'string', value: 'NAME', help: 'server the bench starts when there is no --url: holdfast | holdfast-uws | ws | socketio | uws (default holdfast)' },
  connections: { type: 'string', value: 'N', help: 'connections to open; in shootout mode the most clients to reach (default 1000)' },
  duration: { type: 'string', value: 'SECONDS', help: 'publishing time, e.g. 30, 30s or 2m (default 10s)' },
  rate: { type: 'string', value: 'R', help: 'publications per second over all channels (default 10)' },
  size: { type: 'string', value: 'BYTES', help: 'size of each publication\'s data {"seq","t","pad"} (default 64)' },
  channels: { type: 'string', value: 'C', help: 'channels; connection i subscribes to channel i % C (default 1)' },
  ramp: { type: 'string', value: 'CONN/S', help: 'new connections per second (default 1000)' },
  workers: { type: 'string', value: 'W', help: 'client processes (default: one per 5,000 connections, up to the cores; at most 18,000 each)' },
  'source-ips': { type: 'string', value: 'LIST', help: 'client source addresses, e.g. 127.0.0.1-8 or 127.0.0.1,127.0.0.2 (default 127.0.0.1-8)' },
  token: { type: 'string', value: 'T', help: 'connection token every client sends' },
  'token-secret': { type: 'string', value: 'S', help: 'mint an HS256 token with this secret (as "serve --token-secret"; with --url also $HOLDFAST_TOKEN_SECRET)' },
  json: { type: 'string', value: 'FILE', help: 'write the report as JSON ("-" for stdout)' },
  html: { type: 'string', value: 'FILE', help: 'write a self-contained HTML report with charts' },
  mode: { type: 'string', value: 'MODE', help: 'fanout (default): ramp, then publish for --duration; shootout: add --step clients until p95 > --p95-limit-ms' },
  'p95-limit-ms': { type: 'string', value: 'MS', help: 'shootout: the broadcast latency p95 that ends the run (default 500)' },
  step: { type: 'string', value: 'N', help: 'shootout: clients added per step (default 1000)' },
  'step-duration': { type: 'string', value: 'SECONDS', help: 'shootout: broadcasting measured after each step (default 5s)' },
  compare: { type: 'boolean', value: '', help: 'run the scenario against holdfast, raw ws, Socket.IO and uWebSockets.js, each started by the bench, and print the ratios' },
  servers: { type: 'string', value: 'LIST', help: 'with --compare: the servers to run (default holdfast,holdfast-uws,ws,socketio,uws)' },
  'server-pid': {
    type: 'string',
    value: 'PID[,PID...]',
    help: 'with --url: the local server process(es), to report CPU and memory from /proc (serve --workers N: the primary and each worker; summed and shown per process)',
  },
  'allow-remote': { type: 'boolean', value: '', help: 'allow a --url that is not on this machine' },
  timeout: { type: 'string', value: 'SECONDS', help: 'hard bound of the whole run (default: derived from the scenario)' },
  drain: { type: 'string', value: 'SECONDS', help: 'most time to wait for deliveries in flight after the last publication (default 15s)' },
  'connect-timeout': { type: 'string', value: 'SECONDS', help: 'time a connection has to subscribe (default 15s)' },
  quiet: { type: 'boolean', value: '', help: 'no progress bar or phase lines' },
} as const

export type BenchFlag = keyof typeof BENCH_FLAGS

const DEFAULTS = {
  connections: 1000,
  durationS: 10,
  rate: 10,
  size: 64,
  channels: 1,
  ramp: 1000,
  sourceIps: '127.0.0.1-8',
  p95LimitMs: 500,
  step: 1000,
  stepDurationS: 5,
  drainS: 15,
  connectTimeoutS: 15,
} as const

/** Under a 20,000 open-file limit (ulimit -n), less room for the process's own files. */
export const MAX_CONNECTIONS_PER_WORKER = 18_000
/** Connections per worker process when the user does not say: one event loop keeps up with this many at issue-8 rates. */
const DEFAULT_CONNECTIONS_PER_WORKER = 5_000

/** Ephemeral ports one source address offers (Linux picks them from ip_local_port_range). */
function ephemeralPorts(): number {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (lo !== undefined && hi !== undefined && hi > lo) return hi - lo + 1
  } catch {
    // not Linux: assume the IANA range
  }
  return 16_384
}

function parseInteger(flag: string, raw: string, min: number, max: number): number {
  const v = raw.trim()
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new CliError(`--${flag} must be a whole number from ${min} to ${max}, got "${raw}"`)
  return n
}

function parseNumber(flag: string, raw: string, min: number, max: number): number {
  const v = raw.trim()
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(v) ? Number(v) : Number.NaN
  if (!(n >= min && n <= max)) throw new CliError(`--${flag} must be a number from ${min} to ${max}, got "${raw}"`)
  return n
}

function parseSeconds(flag: string, raw: string, min: number, max: number): number {
  const s = parseDuration(`--${flag}`, raw, 's') / 1000
  if (s < min || s > max) throw new CliError(`--${flag} must be from ${min} s to ${max} s, got "${raw}"`)
  return s
}

/** `127.0.0.1-8` (last octet range), `127.0.0.1,127.0.0.5`, or a mix. */
export function parseSourceIps(raw: string, allowRemote: boolean): string[] {
  const out: string[] = []
  for (const part of raw.split(',').map((p) => p.trim())) {
    const m = /^(\d+\.\d+\.\d+\.)(\d+)(?:-(\d+))?$/.exec(part)
    if (m === null) throw new CliError(`--source-ips must list IPv4 addresses or ranges such as 127.0.0.1-8, got "${part}"`)
    const from = Number(m[2])
    const to = m[3] === undefined ? from : Number(m[3])
    if (to < from || to > 255) throw new CliError(`--source-ips range "${part}" must count up and stay within 0-255`)
    for (let i = from; i <= to; i++) {
      const ip = `${m[1]}${i}`
      if (!isIPv4(ip)) throw new CliError(`--source-ips: "${ip}" is not an IPv4 address`)
      if (!allowRemote && !isLoopbackHost(ip)) throw new CliError(`--source-ips: ${ip} is not a loopback address (127.x.x.x)`)
      out.push(ip)
    }
  }
  if (out.length === 0) throw new CliError('--source-ips must name at least one address')
  return [...new Set(out)]
}

function parseUrl(raw: string, allowRemote: boolean): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new CliError(`--url must be a WebSocket URL such as ws://127.0.0.1:8080/ws, got "${raw}"`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new CliError(`--url must use ws:// or wss://, got "${raw}"`)
  if (!allowRemote && !isLoopbackHost(url.hostname)) {
    throw new CliError(
      `refusing --url ${raw}: ${url.hostname} is not a loopback address. A benchmark is a deliberate overload, so ` +
        'holdfast bench loads servers on this host only (127.0.0.1, ::1, localhost) unless told otherwise: a mistyped ' +
        'URL must not turn into an outage of a shared or production server. Pass --allow-remote to load a host you own.',
    )
  }
  return url.toString()
}

function parseList<T extends string>(flag: string, raw: string, choices: readonly T[]): T[] {
  const items = raw.split(',').map((s) => s.trim())
  for (const i of items) {
    if (!(choices as readonly string[]).includes(i)) throw new CliError(`--${flag} must list names from ${choices.join(', ')}, got "${i}"`)
  }
  return [...new Set(items)] as T[]
}

/**
 * Parse and check `holdfast bench` flags. Pure apart from reading the ephemeral port range, so every
 * refusal (a remote URL, a run too big for its processes or addresses) is unit-testable. Only
 * HOLDFAST_TOKEN_SECRET is read from the environment, and only with --url: the bench's other
 * flags share names with serve's (workers, ...) and must not be set behind its back.
 */
export function resolveBenchConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): BenchConfig {
  let v: Record<string, string | boolean | undefined>
  try {
    const options = Object.fromEntries(Object.entries(BENCH_FLAGS).map(([k, f]) => [k, { type: f.type }]))
    v = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new CliError((err as Error).message, { cause: err })
  }
  const str = (f: BenchFlag): string | undefined => (typeof v[f] === 'string' ? (v[f] as string) : undefined)
  const bool = (f: BenchFlag): boolean => v[f] === true

  const allowRemote = bool('allow-remote')
  const compare = bool('compare')
  const rawUrl = str('url')
  const url = rawUrl === undefined ? undefined : parseUrl(rawUrl, allowRemote)
  const serverRaw = str('server')
  if (serverRaw !== undefined && !(SERVER_KINDS as readonly string[]).includes(serverRaw)) {
    throw new CliError(`--server must be one of ${SERVER_KINDS.join(', ')}, got "${serverRaw}"`)
  }
  if (url !== undefined && serverRaw !== undefined) throw new CliError('--server starts a server for the run; it cannot be combined with --url')
  if (compare && url !== undefined) throw new CliError('--compare starts its own servers (each in its own process, measured alike); drop --url')
  if (compare && serverRaw !== undefined) throw new CliError('--compare runs every server in --servers; use --servers instead of --server')
  const serversRaw = str('servers')
  if (serversRaw !== undefined && !compare) throw new CliError('--servers only applies with --compare')
  const servers = serversRaw === undefined ? [...SERVER_KINDS] : parseList('servers', serversRaw, SERVER_KINDS)
  // holdfast first: the ratios are holdfast's to each peer.
  servers.sort((a, b) => (a === 'holdfast' ? -1 : b === 'holdfast' ? 1 : 0))
  if (compare && !servers.includes('holdfast') && !servers.includes('holdfast-uws')) {
    throw new CliError('--servers must include holdfast or holdfast-uws: --compare reports holdfast\'s ratios to each peer')
  }

  const modeRaw = str('mode') ?? 'fanout'
  if (!(BENCH_MODES as readonly string[]).includes(modeRaw)) throw new CliError(`--mode must be one of ${BENCH_MODES.join(', ')}, got "${modeRaw}"`)
  const mode = modeRaw as BenchMode

  const num = <T>(f: BenchFlag, parse: (raw: string) => T, fallback: T): T => {
    const raw = str(f)
    return raw === undefined ? fallback : parse(raw)
  }
  const connections = num('connections', (r) => parseInteger('connections', r, 1, 200_000), DEFAULTS.connections)
  const durationS = num('duration', (r) => parseSeconds('duration', r, 1, 3600), DEFAULTS.durationS)
  const rate = num('rate', (r) => parseNumber('rate', r, 0, 100_000), DEFAULTS.rate)
  // 60,000 keeps the publish command under holdfast's default 64 KiB payload limit.
  const size = num('size', (r) => parseInteger('size', r, 0, 60_000), DEFAULTS.size)
  const channels = num('channels', (r) => parseInteger('channels', r, 1, 100_000), DEFAULTS.channels)
  const ramp = num('ramp', (r) => parseNumber('ramp', r, 1, 100_000), DEFAULTS.ramp)
  const cores = Math.max(2, availableParallelism())
  const defaultWorkers = Math.max(Math.ceil(connections / MAX_CONNECTIONS_PER_WORKER), Math.min(Math.ceil(connections / DEFAULT_CONNECTIONS_PER_WORKER), cores))
  const workers = num('workers', (r) => parseInteger('workers', r, 1, 64), defaultWorkers)
  if (Math.ceil(connections / workers) > MAX_CONNECTIONS_PER_WORKER) {
    throw new CliError(
      `--connections ${connections} over --workers ${workers} is ${Math.ceil(connections / workers)} per process; a process may hold at most ` +
        `${MAX_CONNECTIONS_PER_WORKER} (a 20,000 open-file limit per process). Use --workers ${Math.ceil(connections / MAX_CONNECTIONS_PER_WORKER)} or more.`,
    )
  }
  const sourceIps = parseSourceIps(str('source-ips') ?? DEFAULTS.sourceIps, allowRemote)
  const ports = ephemeralPorts()
  if (connections + 1000 > sourceIps.length * ports * 0.9) {
    throw new CliError(
      `--connections ${connections} needs more source addresses: each offers about ${ports} ephemeral ports, and ` +
        `--source-ips gives ${sourceIps.length}. Use e.g. --source-ips 127.0.0.1-${Math.min(255, Math.ceil((connections + 1000) / (ports * 0.9)) + 1)}.`,
    )
  }
  const token = str('token')
  let tokenSecret = str('token-secret')
  if (tokenSecret === undefined && url !== undefined && token === undefined) {
    const e = env['HOLDFAST_TOKEN_SECRET']
    if (e !== undefined && e !== '') tokenSecret = e
  }
  if (token !== undefined && str('token-secret') !== undefined) throw new CliError('pass either --token or --token-secret, not both')
  if (token === '' || tokenSecret === '') throw new CliError('--token and --token-secret must not be empty')

  const p95LimitMs = num('p95-limit-ms', (r) => parseNumber('p95-limit-ms', r, 0.001, 600_000), DEFAULTS.p95LimitMs)
  const step = num('step', (r) => parseInteger('step', r, 1, 200_000), DEFAULTS.step)
  const stepDurationS = Math.round(num('step-duration', (r) => parseSeconds('step-duration', r, 1, 600), DEFAULTS.stepDurationS))
  if (mode !== 'shootout') {
    for (const f of ['p95-limit-ms', 'step', 'step-duration'] as const) {
      if (str(f) !== undefined) throw new CliError(`--${f} only applies with --mode shootout`)
    }
  }
  const serverPidRaw = str('server-pid')
  const serverPids = serverPidRaw === undefined ? [] : [...new Set(serverPidRaw.split(',').map((p) => parseInteger('server-pid', p, 1, 2 ** 31)))]
  if (serverPidRaw !== undefined && url === undefined) throw new CliError('--server-pid goes with --url; a server the bench starts is measured anyway')
  const drainS = num('drain', (r) => parseSeconds('drain', r, 1, 600), DEFAULTS.drainS)
  const connectTimeoutS = num('connect-timeout', (r) => parseSeconds('connect-timeout', r, 1, 600), DEFAULTS.connectTimeoutS)

  // Long enough for a ramp that runs at half the asked rate, every step, the drain, and server
  // start-up; short enough that a wedged run ends on its own.
  const rampS = connections / ramp
  const derived =
    mode === 'fanout'
      ? 2 * rampS + connectTimeoutS + durationS + drainS + 60
      : Math.ceil(connections / step) * (2 * (step / ramp) + connectTimeoutS + stepDurationS + 3) + drainS + 60
  const timeoutS = num('timeout', (r) => parseSeconds('timeout', r, 5, 86_400), Math.ceil(derived))

  return {
    url,
    server: (serverRaw as ServerKind | undefined) ?? 'holdfast',
    servers,
    mode,
    compare,
    connections,
    durationS,
    rate,
    size,
    channels,
    ramp,
    workers,
    sourceIps,
    token,
    tokenSecret,
    json: str('json'),
    html: str('html'),
    p95LimitMs,
    step,
    stepDurationS,
    serverPids,
    allowRemote,
    quiet: bool('quiet'),
    timeoutS,
    drainS,
    connectTimeoutS,
  }
}
