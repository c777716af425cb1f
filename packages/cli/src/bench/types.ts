/**
 * Shared shapes of `holdfast bench`: what the command resolves its flags into, what the main
 * process and its worker processes say to each other, and what a run reports. Kept apart from the
 * code so that the worker (a separate process) imports types only, not the orchestration.
 */

/** Servers the bench can start itself (`--server`, `--compare`). */
/** A bench server that started (servers/server-process.ts starts them). */
export interface StartedServer {
  /** The URL clients connect to. */
  url: string
}

export const SERVER_KINDS = ['holdfast', 'holdfast-uws', 'ws', 'socketio', 'uws'] as const
export type ServerKind = (typeof SERVER_KINDS)[number]

export const BENCH_MODES = ['fanout', 'shootout'] as const
export type BenchMode = (typeof BENCH_MODES)[number]

/**
 * How bench clients talk to a server: the holdfast wire protocol, the minimal JSON adapter that
 * the raw `ws` and uWebSockets.js peers speak, or Socket.IO events.
 */
export type ClientProtocol = 'holdfast' | 'json' | 'socketio'

export function protocolFor(kind: ServerKind): ClientProtocol {
  if (kind === 'holdfast' || kind === 'holdfast-uws') return 'holdfast'
  if (kind === 'socketio') return 'socketio'
  return 'json'
}

/** Human names for tables and charts. */
export const SERVER_LABELS: Readonly<Record<ServerKind, string>> = {
  holdfast: 'holdfast',
  'holdfast-uws': 'holdfast on uWebSockets.js',
  ws: 'raw ws (naive send loop)',
  socketio: 'Socket.IO (websocket only)',
  uws: 'uWebSockets.js pub/sub',
}

/** `holdfast bench` settings after the flags are parsed and checked (see resolveBenchConfig). */
export interface BenchConfig {
  /** A holdfast server to load; undefined: the bench starts `server` itself. */
  url: string | undefined
  /** The server the bench starts when there is no `url`. */
  server: ServerKind
  /** For `--compare`: the servers to run the scenario against, holdfast first. */
  servers: ServerKind[]
  mode: BenchMode
  compare: boolean
  /** Connections to open (fanout), or the most clients to reach (shootout). */
  connections: number
  /** Publishing time in seconds (fanout); the whole run is bounded by `timeoutS`. */
  durationS: number
  /** Publications per second over all channels. */
  rate: number
  /** Size of a publication's data, `{"seq":..,"t":..,"pad":".."}`, in bytes. */
  size: number
  channels: number
  /** New connections per second over all workers. */
  ramp: number
  workers: number
  sourceIps: string[]
  token: string | undefined
  tokenSecret: string | undefined
  json: string | undefined
  html: string | undefined
  p95LimitMs: number
  /** Shootout: clients added per step. */
  step: number
  /** Shootout: seconds of broadcasting measured after each step. */
  stepDurationS: number
  /** Local processes of a `--url` server to measure from /proc (a primary and its workers); empty: none. */
  serverPids: number[]
  allowRemote: boolean
  quiet: boolean
  /** Hard bound of the whole run, in seconds. */
  timeoutS: number
  /** Most seconds to wait for deliveries still in flight after the last publication. */
  drainS: number
  connectTimeoutS: number
}

// ---------------------------------------------------------------- main <-> worker messages

export interface WorkerSetup {
  workerId: number
  workers: number
  url: string
  protocol: ClientProtocol
  /** Channel names; connection `i` (global index) subscribes to `channels[i % length]`. */
  channels: string[]
  sourceIps: string[]
  token: string | undefined
  connectTimeoutMs: number
}

/** Per channel: the send time of every publication by sequence number; NaN where the server refused it. */
export interface ChannelLog {
  t: Float64Array
}

export type ToWorker =
  | { type: 'setup'; setup: WorkerSetup }
  /** Open `count` more connections at `perSecond`; answered by `opened` once each has succeeded or failed. */
  | { type: 'open'; count: number; perSecond: number }
  /** Answered by a `tick`. */
  | { type: 'sample' }
  /** Publishing stopped: from now on ticks count the connections that have not caught up with `last`. */
  | { type: 'drain'; last: DrainTarget[] }
  /** Stop counting, check sequences against the logs, answer with `result`. */
  | { type: 'finish'; logs: ChannelLog[]; quiescent: boolean }

/** Per channel: how many publications were sent and when the last one was. */
export interface DrainTarget {
  count: number
  t: number
}

export interface WorkerTick {
  type: 'tick'
  /** Cumulative deliveries. */
  delivered: number
  /** Subscribed and still open. */
  open: number
  failed: number
  /** Latency histogram (µs) of the deliveries since the previous tick, compressed base64. */
  latency: string
  /** Cumulative CPU of this worker process, µs (user + system). */
  cpuUs: number
  /** While draining: open connections still short of their channel's last publication; -1 before. */
  behind: number
}

export interface WorkerResult {
  type: 'result'
  attempted: number
  connected: number
  failed: number
  failures: Record<string, number>
  /** Connections closed by the server after they subscribed, by reason. */
  disconnected: Record<string, number>
  delivered: number
  owed: number
  lost: number
  inFlight: number
  cutOff: number
  duplicated: number
  outOfOrder: number
  /** Connections whose gap list hit its cap (their duplicate count may include late fills). */
  checkerOverflow: number
  handshake: string
  ready: string
  cpuUs: number
}

export type FromWorker =
  | { type: 'ready' }
  | WorkerTick
  | { type: 'opened'; connected: number; failed: number }
  | WorkerResult
  | { type: 'error'; message: string }

// ---------------------------------------------------------------- reports

/** Latency summary in milliseconds. */
export interface Percentiles {
  count: number
  mean: number
  p50: number
  p95: number
  p99: number
  p999: number
  max: number
}

export interface TimelinePoint {
  /** Seconds since the run started. */
  t: number
  phase: string
  /** Connections subscribed and open. */
  connections: number
  /** Deliveries per second in this interval. */
  deliveriesPerSecond: number
  /** Delivery latency in this interval (null when nothing was delivered). */
  latency: Percentiles | null
  serverCpuPercent: number | null
  serverRssBytes: number | null
  clientCpuPercent: number
  /** false when a worker was too busy to answer this sample in time (its figures arrive with the next one). */
  allWorkersAnswered: boolean
  /** During the drain: open connections that have not yet received their channel's last publication. */
  connectionsBehind: number | null
}

/** An RSS growth per connection below this is within the noise of two readings. */
export const RSS_NOISE_BYTES = 100

/** One process of a server made of several (`serve --workers N`). */
export interface ServerProcessStats {
  pid: number
  /** Over the same window as ServerStats.cpuSeconds. */
  cpuSeconds: number
  cpuPercent: number
  rssBaselineBytes: number
  rssAfterRampBytes: number
  rssPeakBytes: number
}

/** The server's figures; for several processes, their sums (and each in `processes`). */
export interface ServerStats {
  /** The first measured process (the primary of `serve --workers N` when given first). */
  pid: number
  /** Every measured process, in --server-pid order. */
  pids: number[]
  /** Per process, in the order of `pids`. */
  processes: ServerProcessStats[]
  /** Server CPU (user + system) from the first publication to the end of the drain, seconds. */
  cpuSeconds: number
  /** Average over that window; 100 = one core. */
  cpuPercent: number
  cpuMicrosPerDelivery: number | null
  /** Server CPU during the ramp / connections subscribed in it (fanout): the cost of a handshake and a subscribe. */
  cpuMicrosPerConnect: number | null
  rssBaselineBytes: number
  rssAfterRampBytes: number
  rssPeakBytes: number
  /** (RSS after the ramp - RSS before any client) / connections. */
  rssPerConnectionBytes: number | null
  /** true when the bench forced a GC before each memory reading (servers it started itself). */
  gcBeforeReadings: boolean
}

export interface ShootoutStep {
  clients: number
  connectFailures: number
  latency: Percentiles | null
  deliveriesPerSecond: number
  serverCpuPercent: number | null
}

export interface ShootoutResult {
  p95LimitMs: number
  step: number
  stepDurationS: number
  /** The most clients at which broadcast latency p95 stayed within the limit (0: not even the first step). */
  reached: number
  stoppedBecause: string
  steps: ShootoutStep[]
}

export interface BenchReport {
  tool: 'holdfast bench'
  version: string
  startedAt: string
  mode: BenchMode
  /** The server under load. */
  target: { kind: ServerKind | 'external'; label: string; url: string; pid: number | null; startedByBench: boolean }
  scenario: {
    connections: number
    durationS: number
    rate: number
    size: number
    channels: number
    ramp: number
    workers: number
    sourceIps: string[]
    publishers: number
  }
  connect: {
    attempted: number
    connected: number
    failed: number
    /** connected / attempted, 0-1. */
    successRate: number
    failures: Record<string, number>
    disconnectedDuringRun: Record<string, number>
    /** Socket creation to the server's connect result (holdfast) or the open event (peers). */
    handshakeMs: Percentiles | null
    /** Socket creation to the subscription confirmed. */
    subscribedMs: Percentiles | null
    /** Fanout: from the first connection attempt until every connection had subscribed or failed. */
    rampSeconds: number | null
    /** Fanout: connections subscribed per second over the ramp. */
    perSecond: number | null
  }
  delivery: {
    published: number
    publishErrors: Record<string, number>
    /** Deliveries the connections were owed (publications sent after their subscription was confirmed). */
    expected: number
    delivered: number
    lost: number
    /** Owed deliveries still missing when the drain ran out of time while deliveries were still arriving. */
    inFlightAtEnd: number
    /** Not delivered to connections the server closed during the run, after their last delivery (see disconnectedDuringRun). */
    cutOffByDisconnect: number
    duplicated: number
    outOfOrder: number
    checkerOverflow: number
    /** Deliveries per second over the publishing window (first publication to the end of the drain). */
    perSecond: number
    latencyMs: Percentiles | null
    /** Seconds from the first publication to the end of the drain. */
    windowSeconds: number
    drainSeconds: number
    quiescent: boolean
  }
  server: ServerStats | null
  clients: { processes: number; cpuPercent: number }
  shootout: ShootoutResult | null
  timeline: TimelinePoint[]
  warnings: string[]
}

export interface CompareRatio {
  /** The holdfast run the ratio is of: `holdfast` (ws transport) against every peer, `holdfast-uws` against `uws`. */
  holdfast: ServerKind
  peer: ServerKind
  /** holdfast / peer; below 1 means holdfast uses less. null when either side lacks the figure. */
  cpuPerDelivery: number | null
  rssPerConnection: number | null
  p99: number | null
  /** holdfast / peer; above 1 means holdfast delivered more per second. */
  deliveriesPerSecond: number | null
  /** Shootout only: clients reached, holdfast / peer. */
  clientsReached: number | null
}

export interface CompareReport {
  tool: 'holdfast bench'
  version: string
  startedAt: string
  mode: 'compare'
  benchMode: BenchMode
  runs: BenchReport[]
  ratios: CompareRatio[]
  /** Servers that could not run, with the reason. */
  skipped: Record<string, string>
}
