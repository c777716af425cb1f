/**
 * `holdfast serve --workers N` as a real process tree for the operations tests: the primary, its
 * JSON log lines (pino writes every process's log to the one stdout), and its worker processes as
 * the kernel sees them (/proc), so that a test can kill -9 a worker, SIGHUP the primary and check
 * which processes serve afterwards.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanEnv, runCli, until, within, type CliProcess } from '../../packages/cli/test/helpers.js'

export { until, within }

/** One parsed log line of the primary or a worker. */
export interface LogLine {
  level: number
  msg: string
  /** The worker's ordinal (worker lines), or undefined (primary lines). */
  worker?: number
  role?: string
  pid?: number
  code?: number | null
  signal?: string | null
  err?: unknown
  [key: string]: unknown
}

/** The direct children of `pid` (every thread's), from /proc: Linux only, like the rest of these tests. */
export function childPids(pid: number): number[] {
  const out: number[] = []
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const task of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ')) if (c.trim() !== '') out.push(Number(c))
    } catch {
      // The thread ended while we read.
    }
  }
  return out
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/** true while a process with this pid exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The state follows the parenthesised command name, which may itself hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** Where cleanups go: a test's context (`t.after`), or a suite's list run by its `after` hook. */
export interface Cleanup {
  after(fn: () => unknown): void
}

/** For a resource shared by a describe block: `const c = suiteCleanup(); after(c.run)`. */
export function suiteCleanup(): Cleanup & { run: () => Promise<void> } {
  const fns: Array<() => unknown> = []
  return {
    after: (fn) => void fns.push(fn),
    run: async () => {
      for (const fn of fns.reverse()) await fn()
    },
  }
}

export interface ClusterOptions {
  workers?: number
  /** Written to the config file (`--config`); rewrite it with `writeConfig` before a reload. */
  config?: Record<string, unknown>
  args?: string[]
  env?: Record<string, string>
}

/**
 * Per-IP limits lifted: every test client comes from 127.0.0.1, and a reload moves hundreds of
 * them in a second, which the defaults (100 connects/s per IP) would rightly refuse.
 */
export const OPEN_LIMITS = {
  maxConnectionsPerIp: 1_000_000,
  connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
  commandRate: { perSecond: 10_000, burst: 10_000 },
}

export class ServeCluster {
  readonly proc: CliProcess
  readonly url: string
  readonly wsUrl: string
  readonly pidFile: string
  readonly configFile: string
  readonly #dir: string
  #parsed = 0
  readonly #lines: LogLine[] = []

  private constructor(proc: CliProcess, url: string, wsUrl: string, dir: string) {
    this.proc = proc
    this.url = url
    this.wsUrl = wsUrl
    this.#dir = dir
    this.pidFile = join(dir, 'holdfast.pid')
    this.configFile = join(dir, 'holdfast.json')
  }

  /** Start `holdfast serve --workers N --port 0 --pid-file F --config C`; killed (with its workers) after the test. */
  static async start(t: Cleanup, opts: ClusterOptions = {}): Promise<ServeCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-cluster-'))
    writeFileSync(join(dir, 'holdfast.json'), JSON.stringify(opts.config ?? {}))
    const args = [
      'serve',
      '--port',
      '0',
      '--workers',
      String(opts.workers ?? 2),
      '--pid-file',
      join(dir, 'holdfast.pid'),
      '--config',
      join(dir, 'holdfast.json'),
      '--log-level',
      'info',
      ...(opts.args ?? []),
    ]
    const proc = runCli(args, cleanEnv(opts.env ?? {}))
    const cleanup = (): void => {
      // Workers first: once the primary is gone they are orphans nobody would reap.
      const pid = proc.child.pid
      if (pid !== undefined) for (const w of childPids(pid)) killQuietly(w)
      proc.child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
    t.after(cleanup)
    let m: RegExpExecArray
    try {
      m = await proc.waitForLine(/^holdfast listening on (http:\/\/\S+) \((ws:\/\/\S+)\) engine=\w+ workers=\d+(?: transport=uws)?$/, 60_000)
    } catch (err) {
      cleanup()
      throw err
    }
    return new ServeCluster(proc, m[1] as string, m[2] as string, dir)
  }

  get pid(): number {
    return this.proc.child.pid as number
  }

  /** The worker processes now (children of the primary running the CLI; tsx's esbuild helper is a child too). */
  workerPids(): number[] {
    return childPids(this.pid)
      .filter((p) => /bin\.[jt]s serve/.test(cmdline(p)) && alive(p))
      .sort((a, b) => a - b)
  }

  writeConfig(config: Record<string, unknown> | string): void {
    writeFileSync(this.configFile, typeof config === 'string' ? config : JSON.stringify(config))
  }

  /** Every JSON log line so far, in the order written. */
  logs(): readonly LogLine[] {
    const text = this.proc.stdout()
    const end = text.lastIndexOf('\n') + 1
    if (end > this.#parsed) {
      for (const line of text.slice(this.#parsed, end).split('\n')) {
        if (!line.startsWith('{')) continue
        try {
          this.#lines.push(JSON.parse(line) as LogLine)
        } catch {
          // Not a log line (never expected: pino writes whole lines).
        }
      }
      this.#parsed = end
    }
    return this.#lines
  }

  /** The current number of log lines: a mark to search after. */
  mark(): number {
    return this.logs().length
  }

  /** Log lines after `mark` whose message matches. */
  linesSince(mark: number, msg: RegExp): LogLine[] {
    return this.logs()
      .slice(mark)
      .filter((l) => msg.test(l.msg))
  }

  /** The first log line after `mark` whose message matches `msg` (and `where`, if given). */
  async waitForLog(mark: number, msg: RegExp, ms: number, where: (l: LogLine) => boolean = () => true): Promise<LogLine> {
    let found: LogLine | undefined
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
    void this.proc.exited.then((e) => (exited = e))
    await until(
      `a log line matching ${msg}`,
      () => {
        found = this.linesSince(mark, msg).find(where)
        // A primary that died will never log it: fail now, with its last words.
        if (found === undefined && exited !== undefined) {
          throw new Error(`the primary exited (${JSON.stringify(exited)}) before logging ${msg}; stderr: ${this.proc.stderr().slice(-2000)}`)
        }
        return found !== undefined
      },
      ms,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (last lines: ${JSON.stringify(this.logs().slice(-5).map((l) => l.msg))}; stderr: ${this.proc.stderr().slice(-800)})`)
    })
    return found as LogLine
  }

  /** Wait until exactly `n` workers run and none of `gone` is among them. */
  async waitForWorkers(n: number, ms: number, gone: readonly number[] = []): Promise<number[]> {
    let pids: number[] = []
    await until(
      `${n} workers without ${gone.join(',')}`,
      () => {
        pids = this.workerPids()
        return pids.length === n && !pids.some((p) => gone.includes(p))
      },
      ms,
    )
    return pids
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}

/** The pid a gateway node id carries (`<host>-<pid>-<random>`), or undefined. */
export function pidOfNode(node: string): number | undefined {
  const m = /-(\d+)-[0-9a-f]+$/.exec(node)
  return m === null ? undefined : Number(m[1])
}
