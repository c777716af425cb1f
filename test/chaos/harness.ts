/**
 * What the chaos scenarios share. The fleet of `serve --engine redis` processes, the private
 * redis-server and the CI rule for missing binaries come from the multi-node harness
 * (test/multinode/fleet.ts); added here: a single memory-engine node, clients over `ws` with a
 * chosen source address and a handle on their current socket, Prometheus reads, latency
 * percentiles, and the `result` line each scenario prints for docs/reliability.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient, type ClientOptions, type WebSocketConstructor } from '@holdfast/client'
import { ChaosProxy, type FaultPatch } from '../../packages/cli/src/chaos/index.js'
import { cleanEnv, startServe } from '../../packages/cli/test/helpers.js'

export { ChaosProxy }
export { API_KEY, REDIS_SERVER, SESSION_SECRET, ServeNode, requireBinary, startFleet, startRedis, until, within } from '../multinode/fleet.js'

/**
 * Every test client of a scenario comes from a handful of loopback addresses, and a failover moves
 * hundreds at once: the per-IP defaults (1,000 connections, 100 connects/s) would rightly refuse
 * them. Lifted on the nodes of the scenarios that are not about those limits.
 */
export const OPEN_LIMITS = {
  maxConnectionsPerIp: 1_000_000,
  connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
  commandRate: { perSecond: 10_000, burst: 10_000 },
  inboundByteRate: { perSecond: 1_000_000_000, burst: 1_000_000_000 },
}

/** History deep enough that no scenario's outage outruns it: a loss must be the product's, not the window's. */
export const DEEP_HISTORY = { channels: { default: { historySize: 20_000, historyTtlMs: 600_000 } } }

/** A `holdfast serve` process on the memory engine (one node, no Redis), killed after the test. */
export interface SingleNode {
  url: string
  wsUrl: string
  port: number
  pid: number
  stderr(): string
  kill(signal?: NodeJS.Signals): void
}

export async function startSingle(t: TestContext, config: Record<string, unknown>, args: string[] = []): Promise<SingleNode> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-chaos-'))
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(config))
  const p = await startServe(['--config', file, '--log-level', 'warn', ...args], cleanEnv())
  t.after(() => {
    p.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  const port = Number(new URL(p.url).port)
  return {
    url: p.url,
    wsUrl: p.wsUrl,
    port,
    pid: p.child.pid as number,
    stderr: () => p.stderr(),
    kill: (signal = 'SIGKILL') => void p.child.kill(signal),
  }
}

/** A chaos proxy in front of `127.0.0.1:port`, stopped after the test. */
export async function startProxy(t: TestContext, port: number, faults: FaultPatch = {}): Promise<ChaosProxy> {
  const proxy = new ChaosProxy({ target: { host: '127.0.0.1', port }, faults })
  await proxy.start()
  t.after(() => proxy.stop())
  return proxy
}

/** Where a client's sockets come from, and a way to reach the one in use (to pause its reads). */
export interface SocketOptions {
  /** Source address, e.g. 127.0.0.7: spreads clients over addresses as real ones are. */
  localAddress?: string
  /** Called with every socket the client opens. */
  onSocket?: (ws: WebSocket) => void
}

/** A `ws` WebSocket class bound to these socket options, for the client's `WebSocket` option. */
export function wsClass(opts: SocketOptions = {}): WebSocketConstructor {
  const { localAddress, onSocket } = opts
  if (localAddress === undefined && onSocket === undefined) return WebSocket
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, localAddress === undefined ? {} : { localAddress })
      onSocket?.(this)
    }
  }
}

/** A HoldfastClient over `ws`, closed after the test; SDK errors are expected under faults and only counted. */
export function makeClient(t: TestContext, urls: string | string[], options: ClientOptions = {}, socket: SocketOptions = {}): HoldfastClient {
  const client = new HoldfastClient(urls, { WebSocket: wsClass(socket), ...options })
  client.on('error', () => {})
  t.after(() => client.close())
  return client
}

/** `urls` starting at index `i`: spreads clients over the nodes while keeping every node in each list. */
export function rotate<T>(urls: readonly T[], i: number): T[] {
  const k = i % urls.length
  return [...urls.slice(k), ...urls.slice(0, k)]
}

/** The sum of a Prometheus metric's samples whose labels contain `labels` (e.g. `code="slow_consumer"`). */
export async function metric(baseUrl: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue
    if (labels !== '' && !line.includes(labels)) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

export interface Latency {
  n: number
  p50: number
  p99: number
  max: number
}

/** Percentiles (nearest rank) of a list of ms values. */
export function latency(values: readonly number[]): Latency {
  const s = [...values].sort((a, b) => a - b)
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? Number.NaN
  return { n: s.length, p50: round(at(0.5)), p99: round(at(0.99)), max: round(s.at(-1) ?? Number.NaN) }
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/**
 * Print the scenario's numbers as one `result <name> {json}` diagnostic line: the runner
 * (test/chaos/run.ts) collects them into its summary, which is where docs/reliability.md's
 * tables come from.
 */
export function result(t: TestContext, name: string, numbers: Record<string, unknown>): void {
  t.diagnostic(`result ${name} ${JSON.stringify(numbers)}`)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
