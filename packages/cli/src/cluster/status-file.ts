import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'

/**
 * What a `serve --workers N` primary tells `holdfast reload` through a file beside its pid file
 * (`<pid-file>.status`): that the pid is a holdfast primary (and the same process, not a later
 * one that reused the number), whether a reload is running, and how the last one went. A file,
 * not a socket: the pid file is already the contract between the two, and it needs no listener.
 */
export interface PrimaryStatus {
  holdfast: 'primary'
  pid: number
  /** The process's start time as the kernel counts it (Linux), to tell a reused pid; null elsewhere. */
  startTicks: number | null
  workers: number
  reloading: boolean
  /** Reloads that ended (finished or aborted) since the primary started. */
  reloads: number
  last: ReloadOutcome | null
}

export interface ReloadOutcome {
  result: 'finished' | 'aborted'
  /** Workers replaced by this reload. */
  replaced: number
  ms: number
  /** Why an aborted reload stopped. */
  reason?: string
}

export function statusPath(pidFile: string): string {
  return `${pidFile}.status`
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[19])
    return Number.isSafeInteger(ticks) ? ticks : null
  } catch {
    return null
  }
}

/** Written whole (a temporary file renamed over it), so a reader never sees half of it. */
export function writeStatus(pidFile: string, status: PrimaryStatus): void {
  const file = statusPath(pidFile)
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(status)}\n`)
  renameSync(tmp, file)
}

export function removeStatus(pidFile: string): void {
  rmSync(statusPath(pidFile), { force: true })
}

/** The status, or undefined when there is none or it is not one. */
export function readStatus(pidFile: string): PrimaryStatus | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(statusPath(pidFile), 'utf8'))
  } catch {
    return undefined
  }
  const s = parsed as Partial<PrimaryStatus> | null
  if (s === null || typeof s !== 'object' || s.holdfast !== 'primary' || typeof s.pid !== 'number' || typeof s.reloads !== 'number') return undefined
  return s as PrimaryStatus
}
