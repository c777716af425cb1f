import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import WebSocket from 'ws'

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const BIN_SOURCE = 'packages/cli/src/bin.ts'
const BIN_BUILT = 'packages/cli/dist/bin.js'
/** The packages the CLI's build is made of: each must have been built after its src/ last changed. */
const CLI_PACKAGES = ['protocol', 'server', 'client', 'cli']

/** Where browser tests leave their screenshots. */
export const ARTIFACTS = join(ROOT, 'test-artifacts')

/** Build the demo and dashboard bundles (not committed; fast, and a no-op when up to date) and make the artifacts folder. */
export async function buildPages(): Promise<void> {
  await promisify(execFile)(process.execPath, [join(ROOT, 'packages/cli/scripts/build-demo.mjs')], { cwd: ROOT, timeout: 60_000 })
  mkdirSync(ARTIFACTS, { recursive: true })
}

/** `tsc -p project` (strict, as configured there): its diagnostics, or '' when it type-checks. */
export function tscErrors(project: string): Promise<string> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  return promisify(execFile)(process.execPath, [tsc, '-p', project, '--pretty', 'false'], { cwd: ROOT, timeout: 120_000 }).then(
    () => '',
    (err: { stdout?: string; message: string }) => err.stdout || err.message,
  )
}

/** Reject after `ms` with a message saying what was awaited: every wait in these tests is bounded. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** Resolve when `cond()` holds, polling every `everyMs`; reject after `ms` naming `what`. For state that has no event (/proc, HTTP probes, Redis). */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number, everyMs = 20): Promise<void> {
  const deadline = performance.now() + ms
  for (;;) {
    if (await cond()) return
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** The environment without HOLDFAST_* and NODE_ENV from the outer shell, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('HOLDFAST_') && k !== 'NODE_ENV') env[k] = v
  }
  return { ...env, ...extra }
}

export interface CliProcess {
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first stdout line matching `re`. */
  waitForLine(re: RegExp, ms?: number): Promise<RegExpExecArray>
  /** Resolves when the process has exited and its stdout and stderr are read to the end. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** The newest modification time of the files under `dir` (0 when it does not exist). */
function newestIn(dir: string): number {
  let newest = 0
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return 0
  }
  for (const name of names) {
    const full = join(dir, name)
    const st = statSync(full)
    newest = Math.max(newest, st.isDirectory() ? newestIn(full) : st.mtimeMs)
  }
  return newest
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs
  } catch {
    return 0
  }
}

let builtIsCurrent: boolean | undefined
/**
 * How the CLI runs: from the build (`packages/cli/dist/bin.js`, what ships, and a second or more
 * faster to start than through tsx) when every package it is built from was built after its src/
 * last changed, as after `npm run build` (CI builds before it tests); from the TypeScript sources otherwise,
 * so an edit is tested without a build. HOLDFAST_TEST_CLI=src or =dist chooses.
 */
export function cliCommand(): string[] {
  const mode = process.env['HOLDFAST_TEST_CLI']
  if (mode !== undefined && mode !== 'src' && mode !== 'dist') throw new Error(`HOLDFAST_TEST_CLI must be src or dist, got ${mode}`)
  if (mode === 'dist' && !existsSync(join(ROOT, BIN_BUILT))) throw new Error(`HOLDFAST_TEST_CLI=dist, but ${BIN_BUILT} is missing: run npm run build`)
  // `tsc -b` leaves up-to-date outputs alone but writes the project's build info on every build.
  builtIsCurrent ??= CLI_PACKAGES.every((p) => newestIn(join(ROOT, 'packages', p, 'src')) <= mtimeOf(join(ROOT, 'packages', p, 'tsconfig.tsbuildinfo')))
  const built = mode === 'dist' || (mode === undefined && builtIsCurrent)
  return built ? [BIN_BUILT] : ['--conditions=source', '--import', 'tsx', BIN_SOURCE]
}

/** Run the CLI: built when the build is current, from its TypeScript source otherwise (cliCommand). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): CliProcess {
  const child = spawn(process.execPath, [...cliCommand(), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const waiters = new Set<() => void>()
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d
    for (const w of waiters) w()
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d
  })
  // 'exit' can come before the last output has been read from the pipe, and a test that checks the
  // last log line after the exit would miss it: wait for the end of stdout too, bounded (a child
  // process of the CLI's, such as a compiler service, may hold the pipes open a little longer).
  const stdoutEnded = new Promise<void>((resolve) => child.stdout?.once('end', resolve) ?? resolve())
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      const done = (): void => resolve({ code, signal })
      const timer = setTimeout(done, 2_000)
      void stdoutEnded.then(() => {
        clearTimeout(timer)
        done()
      })
    })
  })
  const waitForLine = (re: RegExp, ms = 30_000): Promise<RegExpExecArray> =>
    within(
      ms,
      `a stdout line matching ${re} (stdout: ${JSON.stringify(out.slice(-500))}, stderr: ${JSON.stringify(err.slice(-500))})`,
      new Promise<RegExpExecArray>((resolve, reject) => {
        const check = (): void => {
          for (const line of out.split('\n')) {
            const m = re.exec(line)
            if (m !== null) {
              waiters.delete(check)
              resolve(m)
              return
            }
          }
        }
        waiters.add(check)
        check()
        void exited.then(({ code, signal }) => {
          waiters.delete(check)
          reject(new Error(`CLI exited (code ${code}, signal ${signal}) before printing ${re}; stderr: ${err.slice(-2000)}`))
        })
      }),
    )
  return { child, stdout: () => out, stderr: () => err, waitForLine, exited }
}

/** Run the CLI to completion (for commands that exit by themselves). */
export async function runCliToEnd(args: string[], env?: NodeJS.ProcessEnv, ms = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = runCli(args, env)
  try {
    const { code } = await within(ms, `holdfast ${args.join(' ')} to exit`, p.exited)
    return { code, stdout: p.stdout(), stderr: p.stderr() }
  } finally {
    p.child.kill('SIGKILL')
  }
}

/** Start `holdfast serve --port 0 ...` and wait for its listening line. */
export async function startServe(args: string[], env?: NodeJS.ProcessEnv): Promise<CliProcess & { url: string; wsUrl: string }> {
  const p = runCli(['serve', '--port', '0', ...args], env)
  try {
    const m = await p.waitForLine(/^holdfast listening on (http:\/\/\S+) \((ws:\/\/\S+)\) engine=memory$/)
    return { ...p, url: m[1] as string, wsUrl: m[2] as string }
  } catch (err) {
    p.child.kill('SIGKILL')
    throw err
  }
}

export interface TestClient {
  ws: WebSocket
  /** The reply to the connect command. */
  reply: { id: number; result?: { client?: unknown }; error?: unknown }
  closed: Promise<{ code: number; reason: string }>
}

/** Open a raw `ws` connection and send the protocol's connect command. */
export async function connectClient(wsUrl: string, token?: string): Promise<TestClient> {
  const ws = new WebSocket(wsUrl)
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  await within(10_000, `WebSocket open to ${wsUrl}`, new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  }))
  const reply = await within(10_000, 'the connect reply', new Promise<TestClient['reply']>((resolve, reject) => {
    void closed.then(({ code, reason }) => reject(new Error(`closed before the connect reply: ${code} ${reason}`)))
    ws.on('message', (data) => {
      // A JSON frame may batch several messages, one per line.
      for (const line of data.toString().split('\n')) {
        if (line.trim() === '') continue
        const msg = JSON.parse(line) as TestClient['reply']
        if (msg.id === 1) resolve(msg)
      }
    })
    ws.send(JSON.stringify({ id: 1, type: 'connect', version: 1, ...(token === undefined ? {} : { token }) }))
  }))
  return { ws, reply, closed }
}
