/**
 * A real fleet for the multi-node tests: `holdfast serve --engine redis` child processes sharing a
 * `redis-server` that the test starts on a free port (never the machine's 6379), each node with its
 * own id and config file, that a test can kill -9 and restart on the same port.
 *
 * Missing system binaries (redis-server, nginx) skip a test on a developer machine, but FAIL it in
 * CI (CI=true): a suite that silently skips its scale-out tests would pass without testing them.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient, type ClientOptions } from '@holdfast/client'
import { cleanEnv, runCli, until, within, type CliProcess } from '../../packages/cli/test/helpers.js'
import { RedisServer, type RedisServerOptions } from '../support/redis-server.js'

export { until, within }

export const REDIS_SERVER = process.env['HOLDFAST_REDIS_SERVER'] ?? '/usr/bin/redis-server'
export const NGINX = process.env['HOLDFAST_NGINX'] ?? '/usr/sbin/nginx'
/** Shared by every node of a fleet, so that a session issued by one node resumes on another. */
export const SESSION_SECRET = 'multinode-session-secret-0123456789abcdef'
export const API_KEY = 'multinode-api-key'

/**
 * true when `path` exists. Otherwise: in CI the test fails (throws), elsewhere it is skipped with
 * the reason and false is returned.
 */
export function requireBinary(t: TestContext, path: string, what: string): boolean {
  if (existsSync(path)) return true
  const why = `${what} not found at ${path} (apt-get install ${what}; or point ${what === 'nginx' ? 'HOLDFAST_NGINX' : 'HOLDFAST_REDIS_SERVER'} at it)`
  if (process.env['CI'] === 'true') throw new Error(`${why}: required in CI`)
  t.skip(why)
  return false
}

export async function startRedis(t: TestContext, opts: RedisServerOptions = {}): Promise<RedisServer> {
  const server = await RedisServer.start(opts)
  t.after(() => server.close())
  return server
}

export interface NodeOptions {
  redisUrl: string
  /** Server options for the node's config file (its `nodeId` is added). */
  config?: Record<string, unknown>
  /** Extra serve flags. */
  args?: string[]
  /** Port to bind; 0 picks one (kept for restarts). @default 0 */
  port?: number
}

/** One `holdfast serve --engine redis` process; restartable on the same port. */
export class ServeNode {
  readonly id: string
  readonly #opts: NodeOptions
  readonly #configFile: string
  #proc: CliProcess | undefined
  #port: number

  private constructor(id: string, dir: string, opts: NodeOptions) {
    this.id = id
    this.#opts = opts
    this.#port = opts.port ?? 0
    this.#configFile = join(dir, `${id}.json`)
    writeFileSync(this.#configFile, JSON.stringify({ nodeId: id, ...opts.config }))
  }

  static async start(t: TestContext, id: string, opts: NodeOptions): Promise<ServeNode> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-node-'))
    const node = new ServeNode(id, dir, opts)
    t.after(async () => {
      await node.kill()
      rmSync(dir, { recursive: true, force: true })
    })
    await node.#spawn()
    return node
  }

  get port(): number {
    return this.#port
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.#port}/ws`
  }

  get running(): boolean {
    return this.#proc !== undefined
  }

  get pid(): number | undefined {
    return this.#proc?.child.pid
  }

  /** Everything the process wrote to stderr (for failure messages). */
  stderr(): string {
    return this.#proc?.stderr() ?? ''
  }

  /** Everything the process wrote to stdout (its JSON log lines). */
  stdout(): string {
    return this.#proc?.stdout() ?? ''
  }

  /** Send `signal` (kill -9 by default) and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.#proc
    if (proc === undefined) return
    this.#proc = undefined
    proc.child.kill(signal)
    await within(15_000, `node ${this.id} to exit after ${signal}`, proc.exited)
  }

  /** Send a signal without waiting for anything (e.g. SIGTERM to start a drain). */
  signal(signal: NodeJS.Signals): void {
    this.#proc?.child.kill(signal)
  }

  /** Start again on the same port (after kill). */
  async restart(): Promise<void> {
    if (this.#proc !== undefined) throw new Error(`node ${this.id} is still running`)
    await this.#spawn()
  }

  /** GET /readyz: its status code. */
  async readyz(): Promise<number> {
    return (await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) })).status
  }

  async #spawn(): Promise<void> {
    const args = [
      'serve',
      '--engine',
      'redis',
      '--redis-url',
      this.#opts.redisUrl,
      '--port',
      String(this.#port),
      '--session-secret',
      SESSION_SECRET,
      '--api-key',
      API_KEY,
      '--config',
      this.#configFile,
      '--log-level',
      'warn',
      ...(this.#opts.args ?? []),
    ]
    const proc = runCli(args, cleanEnv())
    try {
      const m = await proc.waitForLine(/^holdfast listening on http:\/\/127\.0\.0\.1:(\d+) \(ws:\/\/\S+\) engine=redis$/, 30_000)
      this.#port = Number(m[1])
    } catch (err) {
      proc.child.kill('SIGKILL')
      throw err
    }
    this.#proc = proc
  }
}

/** Start `n` nodes n1..nN on one Redis, concurrently. */
export async function startFleet(t: TestContext, redisUrl: string, n: number, opts: Omit<NodeOptions, 'redisUrl' | 'port'> = {}): Promise<ServeNode[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => ServeNode.start(t, `n${i + 1}`, { ...opts, redisUrl })))
}

/** A HoldfastClient over `ws`, closed after the test; errors are collected, not thrown. */
export function makeClient(t: TestContext, urls: string | string[], options: ClientOptions = {}): HoldfastClient {
  const client = new HoldfastClient(urls, { WebSocket, ...options })
  client.on('error', () => {})
  t.after(() => client.close())
  return client
}

/** `GET /api/<method>` with the fleet's API key. */
export async function apiGet<T>(node: ServeNode, method: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${node.url}/api/${method}`, { headers: { authorization: `apikey ${API_KEY}` }, signal: AbortSignal.timeout(5000) })
  return { status: r.status, body: (await r.json()) as T }
}
