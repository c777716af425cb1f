import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { CliError } from './cli-error.js'
import { processStartTicks, readStatus, statusPath, type PrimaryStatus } from './cluster/status-file.js'
import { parseDuration } from './duration.js'

export const RELOAD_USAGE = `Usage: holdfast reload --pid-file FILE [--timeout DURATION]

Rolling reload of a "holdfast serve --workers N" primary: its workers are replaced one at a time,
each new one ready before an old one drains. Waits until the reload is over and says how it went.

  --pid-file FILE      the file given to serve --pid-file (default: $HOLDFAST_PID_FILE)
  --timeout DURATION   most time to wait for the reload, e.g. 90s or 5m (default 5m)

Exit codes: 0 the workers were replaced; 1 the reload was aborted (a new worker failed to start;
the old workers keep serving) or did not end in time; 2 the pid file does not name a running
holdfast primary.
`

const DEFAULT_TIMEOUT_MS = 5 * 60_000
const POLL_MS = 100

export interface ReloadIO {
  stdout: NodeJS.WritableStream
  /** Sends SIGHUP; replaceable in tests. */
  signal?: (pid: number) => void
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, but belongs to someone else (it is then not our primary anyway).
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The primary behind the pid file, checked three ways before any signal is sent: the status file
 * the primary writes beside the pid file names the same pid, the process is running, and (on
 * Linux) it is the same process that wrote the status, not a later one that got its number.
 */
function primaryOf(file: string): { pid: number; status: PrimaryStatus } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  const pid = Number(text.trim())
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new CliError(`${file} does not hold a process id`)
  const status = readStatus(file)
  if (status === undefined || status.pid !== pid) {
    throw new CliError(
      `process ${pid} from ${file} is not a holdfast primary: ${statusPath(file)} ${status === undefined ? 'is missing' : `names process ${status.pid}`} ` +
        '(reload works with "holdfast serve --workers N --pid-file FILE"; nothing was signalled)',
    )
  }
  if (!alive(pid)) throw new CliError(`the holdfast primary ${pid} from ${file} is not running (a stale pid file); nothing was signalled`)
  if (status.startTicks !== null && processStartTicks(pid) !== status.startTicks) {
    throw new CliError(`process ${pid} is not the holdfast primary that wrote ${file} (the pid was reused); nothing was signalled`)
  }
  return { pid, status }
}

/**
 * `holdfast reload --pid-file F`: SIGHUP to a `serve --workers N` primary, then wait for the
 * status it publishes to show that the reload (and any it was coalesced with) ended.
 */
export async function runReload(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: ReloadIO = { stdout: process.stdout }): Promise<void> {
  let values: { 'pid-file'?: string | undefined; timeout?: string | undefined }
  try {
    ;({ values } = parseArgs({ args: [...argv], options: { 'pid-file': { type: 'string' }, timeout: { type: 'string' } }, strict: true }))
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${RELOAD_USAGE}`, { cause: err })
  }
  const file = values['pid-file'] ?? env['HOLDFAST_PID_FILE']
  if (file === undefined || file === '') throw new CliError(`reload needs --pid-file FILE (the file given to serve --pid-file)\n\n${RELOAD_USAGE}`)
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration('--timeout', values.timeout, 's')
  const { pid, status: before } = primaryOf(file)

  try {
    ;(io.signal ?? ((p) => process.kill(p, 'SIGHUP')))(pid)
  } catch (err) {
    throw new CliError(`cannot signal process ${pid} from ${file}: ${(err as Error).message}`, { cause: err })
  }
  io.stdout.write(`holdfast: rolling reload requested from process ${pid} (${before.workers} workers)\n`)

  const deadline = performance.now() + timeoutMs
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS))
    const now = readStatus(file)
    if (now === undefined || now.pid !== pid || !alive(pid)) {
      throw new CliError(`the holdfast primary ${pid} stopped during the reload`, { exitCode: 1 })
    }
    // A reload asked for while another ran is run after it: wait until none is left.
    if (now.reloads > before.reloads && !now.reloading && now.last !== null) {
      const { last } = now
      const took = `${(last.ms / 1000).toFixed(1)} s`
      if (last.result === 'finished') {
        io.stdout.write(`holdfast: rolling reload finished: ${last.replaced} worker${last.replaced === 1 ? '' : 's'} replaced in ${took}\n`)
        return
      }
      throw new CliError(`rolling reload aborted after ${took}: ${last.reason ?? 'see the primary\'s log'}`, { exitCode: 1 })
    }
    if (performance.now() > deadline) {
      throw new CliError(`the rolling reload of process ${pid} did not end within ${Math.round(timeoutMs / 1000)} s; it goes on (see the primary's log)`, { exitCode: 1 })
    }
  }
}
