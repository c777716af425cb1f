import { parseArgs } from 'node:util'
import { ChaosProxy, type Endpoint } from './chaos/proxy.js'
import { startControlApi, type ControlApi } from './chaos/control-api.js'
import type { FaultPatch } from './chaos/faults.js'
import { isLoopbackHost } from './chaos/loopback.js'
import { CliError } from './cli-error.js'
import { parseDuration } from './duration.js'

/** Every `holdfast chaos` flag; the env var is HOLDFAST_ + the flag in upper snake case, as for serve. */
const FLAGS = {
  listen: { type: 'string', value: 'PORT', help: 'port (or HOST:PORT) clients connect to; 0 picks a free one; required' },
  target: { type: 'string', value: 'HOST:PORT', help: 'server to forward to; loopback only unless --allow-remote; required' },
  control: { type: 'string', value: 'PORT', help: 'serve the HTTP control API on 127.0.0.1:PORT (0 picks a free one)' },
  latency: { type: 'string', value: 'MS', help: 'delay added each way, e.g. 100 or 250ms or 1s' },
  jitter: { type: 'string', value: 'MS', help: 'random +/- added to the latency (order is kept)' },
  bandwidth: { type: 'string', value: 'BYTES/S', help: 'throughput cap each way, in bytes per second' },
  'reset-rate': { type: 'string', value: 'P', help: 'chance per second that a connection is reset, 0-1' },
  'drop-rate': { type: 'string', value: 'P', help: 'chance that a new connection is refused (RST), 0-1' },
  slice: { type: 'string', value: 'BYTES', help: 'split every chunk into TCP writes of at most BYTES' },
  'allow-remote': { type: 'boolean', value: '', help: 'allow a target that is not on this machine' },
} as const

type FlagName = keyof typeof FLAGS

export function chaosEnvName(flag: FlagName): string {
  return `HOLDFAST_${flag.toUpperCase().replace(/-/g, '_')}`
}

export function chaosUsage(): string {
  const rows = (Object.keys(FLAGS) as FlagName[]).map((f) => [`  --${f}${FLAGS[f].value ? ` ${FLAGS[f].value}` : ''}`, chaosEnvName(f), FLAGS[f].help] as const)
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.max(...rows.map((r) => r[1].length))
  return `Usage: holdfast chaos --listen PORT --target HOST:PORT [--control PORT] [faults]

A TCP proxy that injects latency, jitter, bandwidth limits, resets, refused connections,
blackholes and sliced writes between clients and --target. Faults given here apply both ways
from the start; the control API changes any of them at run time (GET/PUT /faults, POST /heal,
POST /reset, GET /stats). Every flag can also be set by its environment variable.

${rows.map(([flag, env, help]) => `${flag.padEnd(w0)}  ${env.padEnd(w1)}  ${help}`).join('\n')}

SIGTERM/SIGINT close every connection and exit 0. Docs: docs/chaos.md
`
}

/** `holdfast chaos` settings after flags and env vars are merged and checked. */
export interface ChaosConfig {
  listen: Endpoint
  target: Endpoint
  /** Control API port on 127.0.0.1; undefined: no control API. */
  control: number | undefined
  /** Faults from the flags, for both directions. */
  faults: FaultPatch
}

interface Raw {
  value: string
  label: string
}

function parsePort(r: Raw, min: number): number {
  const v = r.value.trim()
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isInteger(n) || n < min || n > 65535) throw new CliError(`${r.label} must be a port from ${min} to 65535, got "${r.value}"`)
  return n
}

/** `HOST:PORT`, `[v6]:PORT`, or (when `defaultHost` is given) a bare `PORT`. */
function parseEndpoint(r: Raw, defaultHost: string | undefined, minPort: number): Endpoint {
  const v = r.value.trim()
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s/]+)):(\d+)$/.exec(v)
  if (m !== null) return { host: (m[1] ?? m[2]) as string, port: parsePort({ value: m[3] as string, label: r.label }, minPort) }
  if (defaultHost !== undefined && /^\d+$/.test(v)) return { host: defaultHost, port: parsePort(r, minPort) }
  const shape = defaultHost === undefined ? 'HOST:PORT' : 'PORT or HOST:PORT'
  throw new CliError(`${r.label} must be ${shape}, e.g. 127.0.0.1:8080, got "${r.value}"`)
}

function parseMs(r: Raw): number {
  const ms = parseDuration(r.label, r.value, 'ms')
  if (ms > 600_000) throw new CliError(`${r.label} must be at most 10m, got "${r.value}"`)
  return ms
}

function parseCount(r: Raw): number {
  const v = r.value.trim()
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new CliError(`${r.label} must be a whole number of bytes, got "${r.value}"`)
  return n
}

function parseProbability(r: Raw): number {
  const v = r.value.trim()
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(v) ? Number(v) : Number.NaN
  if (!(n >= 0 && n <= 1)) throw new CliError(`${r.label} must be a probability from 0 to 1, e.g. 0.01, got "${r.value}"`)
  return n
}

function parseBoolean(r: Raw): boolean {
  const v = r.value.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false
  throw new CliError(`${r.label} must be true or false, got "${r.value}"`)
}

function endpointText(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}

/**
 * Merge `holdfast chaos` flags and HOLDFAST_* env vars (a flag beats the variable; an empty
 * variable counts as unset) and check them. Pure, so every error message can be unit-tested.
 */
export function resolveChaosConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ChaosConfig {
  let values: Record<string, string | boolean | undefined>
  try {
    const options = Object.fromEntries(Object.entries(FLAGS).map(([k, f]) => [k, { type: f.type }]))
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new CliError((err as Error).message, { cause: err })
  }
  const raw = (flag: FlagName): Raw | undefined => {
    const v = values[flag]
    if (typeof v === 'string') return { value: v, label: `--${flag}` }
    if (v === true) return { value: 'true', label: `--${flag}` }
    const e = env[chaosEnvName(flag)]
    if (e !== undefined && e !== '') return { value: e, label: chaosEnvName(flag) }
    return undefined
  }
  const required = (flag: FlagName, example: string): Raw => {
    const r = raw(flag)
    if (r === undefined) throw new CliError(`--${flag} is required (or ${chaosEnvName(flag)}), e.g. --${flag} ${example}`)
    return r
  }

  const listen = parseEndpoint(required('listen', '9000'), '127.0.0.1', 0)
  const targetRaw = required('target', '127.0.0.1:8080')
  const target = parseEndpoint(targetRaw, undefined, 1)
  const allowRemoteRaw = raw('allow-remote')
  const allowRemote = allowRemoteRaw === undefined ? false : parseBoolean(allowRemoteRaw)
  if (!allowRemote && !isLoopbackHost(target.host)) {
    throw new CliError(
      `refusing ${targetRaw.label} ${endpointText(target)}: it is not a loopback address. holdfast chaos breaks the ` +
        'network on purpose, so by default it only proxies to servers on this host (127.0.0.1, ::1, localhost): a ' +
        'mistyped target must not turn a test into an outage of a shared or production service. Pass --allow-remote ' +
        'to proxy to another host you own.',
    )
  }
  const controlRaw = raw('control')
  const control = controlRaw === undefined ? undefined : parsePort(controlRaw, 0)

  const faults: FaultPatch = {}
  const latency = raw('latency')
  if (latency !== undefined) faults.latencyMs = parseMs(latency)
  const jitter = raw('jitter')
  if (jitter !== undefined) faults.jitterMs = parseMs(jitter)
  const bandwidth = raw('bandwidth')
  if (bandwidth !== undefined) faults.bandwidthBytesPerSec = parseCount(bandwidth)
  const slice = raw('slice')
  if (slice !== undefined) faults.sliceBytes = parseCount(slice)
  const resetRate = raw('reset-rate')
  if (resetRate !== undefined) faults.resetProbability = parseProbability(resetRate)
  const dropRate = raw('drop-rate')
  if (dropRate !== undefined) faults.dropProbability = parseProbability(dropRate)

  return { listen, target, control, faults }
}

export interface RunningChaos {
  proxy: ChaosProxy
  control: ControlApi | undefined
  /** The line printed on stdout once listening. */
  line: string
  close(): Promise<void>
}

/** Start the proxy (and the control API) for a resolved config, and print the listening line. */
export async function startChaos(config: ChaosConfig, stdout: { write(s: string): unknown }): Promise<RunningChaos> {
  let proxy: ChaosProxy
  try {
    proxy = new ChaosProxy({ listen: config.listen, target: config.target, faults: config.faults })
  } catch (err) {
    if (err instanceof TypeError) throw new CliError(err.message, { cause: err })
    throw err
  }
  try {
    await proxy.start()
  } catch (err) {
    throw new CliError(`cannot listen on ${endpointText(config.listen)}: ${(err as Error).message}`, { cause: err, exitCode: 1 })
  }
  let control: ControlApi | undefined
  if (config.control !== undefined) {
    try {
      control = await startControlApi(proxy, { port: config.control })
    } catch (err) {
      await proxy.stop()
      throw new CliError(`cannot start the control API on 127.0.0.1:${config.control}: ${(err as Error).message}`, { cause: err, exitCode: 1 })
    }
  }
  const listening = endpointText({ host: config.listen.host, port: proxy.port })
  const line = `holdfast chaos listening on ${listening} -> ${endpointText(config.target)}${control === undefined ? '' : ` (control ${control.url})`}`
  stdout.write(`${line}\n`)
  return {
    proxy,
    control,
    line,
    close: async () => {
      await Promise.all([proxy.stop(), control?.close()])
    },
  }
}

const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 }
/** Stopping only closes sockets; if that hangs, something is wrong and waiting will not help. */
const STOP_DEADLINE_MS = 5_000

/** `holdfast chaos`: run until SIGTERM/SIGINT, then close everything and exit 0. */
export async function runChaos(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<void> {
  const config = resolveChaosConfig(argv, env)
  let running: RunningChaos | undefined
  let stopping = false
  // Installed before startup, as in serve: a signal while binding must still end cleanly.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping || running === undefined) process.exit(stopping ? (SIGNAL_EXIT[signal] ?? 1) : 0)
    stopping = true
    setTimeout(() => {
      process.stderr.write(`holdfast: chaos did not stop within ${STOP_DEADLINE_MS} ms, exiting\n`)
      process.exit(1)
    }, STOP_DEADLINE_MS).unref()
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`holdfast: stopping chaos failed: ${err instanceof Error ? err.message : String(err)}\n`)
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  running = await startChaos(config, process.stdout)
}
