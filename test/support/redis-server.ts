/**
 * A real `redis-server` for tests, on a free port of 127.0.0.1 (never the machine's 6379), with
 * or without persistence, that a test can stop, kill -9, restart on the same port and data
 * directory, and freeze (SIGSTOP) and thaw (SIGCONT) — the failures the Redis engine must survive.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './ports.js'

const REDIS_SERVER = process.env['HOLDFAST_REDIS_SERVER'] ?? '/usr/bin/redis-server'
const REDIS_CLI = process.env['HOLDFAST_REDIS_CLI'] ?? 'redis-cli'
const READY_TIMEOUT_MS = 10_000

export interface RedisServerOptions {
  /** AOF on (`appendfsync always`, so even kill -9 loses nothing acknowledged); otherwise no persistence at all. @default false */
  persistence?: boolean
  /** More arguments (`--replicaof host port`, `--cluster-enabled yes`...). @default [] */
  args?: string[]
  /**
   * Run as a Sentinel with this configuration (its lines; `port` and `dir` are added). The file
   * is the Sentinel's to rewrite, in the server's own directory. @default undefined
   */
  sentinel?: string[]
}

/** Every server still running when the test process exits is killed with it. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

export class RedisServer {
  readonly port: number
  readonly persistence: boolean
  readonly #args: string[]
  readonly #sentinel: string[] | undefined
  readonly #dir: string
  #child: ChildProcess | undefined
  #firstSpawn = true
  #exited: Promise<void> = Promise.resolve()

  private constructor(port: number, opts: RedisServerOptions) {
    this.port = port
    this.persistence = opts.persistence ?? false
    this.#args = opts.args ?? []
    this.#sentinel = opts.sentinel
    this.#dir = mkdtempSync(join(tmpdir(), 'holdfast-redis-'))
  }

  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), opts)
    await server.#spawn()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.#child !== undefined
  }

  /** `127.0.0.1:port`, as Redis names its nodes. */
  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** Start again on the same port and data directory (after stop or kill). */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error('redis-server is still running')
    await this.#spawn()
  }

  /** Graceful shutdown (SIGTERM); thaws a frozen server first, or the signal would wait. */
  async stop(): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    child.kill('SIGCONT')
    child.kill('SIGTERM')
    await this.#exited
  }

  /** kill -9: no shutdown work, connections reset at once. */
  async kill(): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    child.kill('SIGKILL')
    await this.#exited
  }

  /** The process id while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** Freeze the process: connections stay open, nothing is answered. */
  pause(): void {
    this.#child?.kill('SIGSTOP')
  }

  resume(): void {
    this.#child?.kill('SIGCONT')
  }

  /** Run redis-cli against this server; returns its output lines. */
  async cli(...args: string[]): Promise<string[]> {
    const { stdout } = await promisify(execFile)(REDIS_CLI, ['-p', String(this.port), ...args], { timeout: 5000 })
    return stdout.split('\n').filter((l) => l.length > 0)
  }

  /** Kill it and remove its data directory. */
  async close(): Promise<void> {
    await this.kill()
    rmSync(this.#dir, { recursive: true, force: true })
  }

  #spawn(): Promise<void> {
    let args: string[]
    let ready = 'Ready to accept connections'
    if (this.#sentinel !== undefined) {
      const file = join(this.#dir, 'sentinel.conf')
      // Written once: a restarted Sentinel keeps what it learnt (the current primary, its replicas).
      if (!this.running && this.#firstSpawn) writeFileSync(file, [`port ${this.port}`, 'bind 127.0.0.1', `dir ${this.#dir}`, ...this.#sentinel, ''].join('\n'))
      args = [file, '--sentinel']
      ready = '+monitor master'
    } else {
      args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.#dir, '--save', '', '--daemonize', 'no', '--loglevel', 'notice']
      if (this.persistence) args.push('--appendonly', 'yes', '--appendfsync', 'always')
      else args.push('--appendonly', 'no')
      args.push(...this.#args)
    }
    this.#firstSpawn = false
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    running.add(child)
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        running.delete(child)
        if (this.#child === child) this.#child = undefined
        resolve()
      })
    })
    let output = ''
    let settled = false
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        child.kill('SIGKILL')
        reject(new Error(`redis-server on port ${this.port} ${why}:\n${output}`))
      }
      const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS)
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        if (!settled && output.includes(ready)) {
          settled = true
          clearTimeout(timer)
          child.stdout?.off('data', onData)
          // Keep draining, or a full pipe would block the server.
          child.stdout?.resume()
          resolve()
        }
      }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.once('exit', (code, signal) => fail(`exited (${code ?? signal})`))
    })
  }
}
